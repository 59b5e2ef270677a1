"""The incidents REST API over real PostgreSQL and NATS: auth, list, detail, commands, metrics.

Incidents and transitions are inserted directly; a tiny responder on `incidents.commands.v1.*`
stands in for the incidents service (made live the way test_api_slack.py does).
"""

from __future__ import annotations

import asyncio
import decimal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiohttp
import asyncpg
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from typer.testing import CliRunner

from spendwatch.api.auth import generate_token, hash_token
from spendwatch.api.settings import ApiSettings
from spendwatch.cli.main import app as cli
from spendwatch.common.events import IncidentCommandReplyV1, IncidentCommandV1
from spendwatch.common.events.base import utc_now
from spendwatch.common.messaging import subjects
from tests.integration.test_api_slack import running_api, subscriptions_live

pytestmark = pytest.mark.timeout(60)

ADMIN_TOKEN = "integration-admin-token"
PROBLEM = "application/problem+json"

Mode = Literal["ok", "not_found", "invalid_transition", "invalid_command", "silent"]


@dataclass
class Responder:
    """Answers incident commands and records them."""

    mode: Mode = "ok"
    received: list[IncidentCommandV1] = field(default_factory=list)

    async def handle(self, msg: Msg) -> None:
        command = IncidentCommandV1.model_validate_json(msg.data)
        self.received.append(command)
        if self.mode == "silent":
            return
        if self.mode == "ok":
            reply = IncidentCommandReplyV1(ok=True, changed=True)
        else:
            reply = IncidentCommandReplyV1(ok=False, code=self.mode)
        await msg.respond(reply.model_dump_json().encode())


@pytest.fixture
async def responder(nc: NatsClient) -> AsyncIterator[Responder]:
    responder = Responder()
    sub = await nc.subscribe(subjects.INCIDENT_COMMANDS_ALL, cb=responder.handle)
    await subscriptions_live(nc)
    yield responder
    await sub.unsubscribe()


def settings_for(database_url: str, nats_url: str, **extra: Any) -> ApiSettings:
    return ApiSettings.model_validate(
        {
            "DATABASE_URL": database_url,
            "NATS_URL": nats_url,
            "API_ADMIN_TOKEN": ADMIN_TOKEN,
            "INCIDENT_COMMAND_TIMEOUT_SECONDS": 0.5,
            **extra,
        }
    )


@pytest.fixture
async def api(
    database_url: str, nats_url: str, pool: asyncpg.Pool
) -> AsyncIterator[aiohttp.ClientSession]:
    async with running_api(settings_for(database_url, nats_url), db=pool) as http:
        yield http


async def add_token(pool: asyncpg.Pool, name: str, *, admin: bool) -> str:
    token = generate_token()
    await pool.execute(
        "INSERT INTO api_tokens (token_id, name, token_hash, is_admin) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(),
        name,
        hash_token(token),
        admin,
    )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


BASE = datetime(2026, 11, 1, 12, tzinfo=UTC)


async def add_incident(
    pool: asyncpg.Pool,
    *,
    detected_at: datetime,
    state: str = "open",
    detector: str = "budget",
    **extra: Any,
) -> str:
    incident_id = str(uuid.uuid4())
    columns = {
        "incident_id": uuid.UUID(incident_id),
        "fingerprint": f"{detector}:{incident_id}",
        "detector": detector,
        "subject": "team",
        "state": state,
        "severity": "warning",
        "message": "spend is high",
        "detected_at": detected_at,
        "value": "12.345000000",
        **extra,
    }
    names = ", ".join(columns)
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await pool.execute(
        f"INSERT INTO incidents ({names}) VALUES ({marks})",
        *[v if k != "value" else decimal.Decimal(v) for k, v in columns.items()],
    )
    return incident_id


async def test_reads_need_a_token_and_writes_an_admin_token(
    api: aiohttp.ClientSession, pool: asyncpg.Pool, responder: Responder
) -> None:
    incident = await add_incident(pool, detected_at=BASE)
    user = await add_token(pool, "ci", admin=False)
    admin = await add_token(pool, "ops", admin=True)

    async with api.get("/api/incidents") as resp:
        assert (resp.status, resp.content_type) == (401, PROBLEM)
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    async with api.get("/api/incidents", headers=bearer("sw_nope")) as resp:
        assert resp.status == 401
        assert "invalid_token" in resp.headers["WWW-Authenticate"]
    async with api.get("/api/incidents", headers=bearer(user)) as resp:
        assert resp.status == 200
    async with api.post(f"/api/incidents/{incident}/ack", headers=bearer(user)) as resp:
        assert (resp.status, resp.content_type) == (403, PROBLEM)
    assert responder.received == []
    async with api.post(f"/api/incidents/{incident}/ack", headers=bearer(admin)) as resp:
        assert resp.status == 200
    async with api.post(f"/api/incidents/{incident}/ack", headers=bearer(ADMIN_TOKEN)) as resp:
        assert resp.status == 200
    assert [c.actor for c in responder.received] == ["api:ops", "api:admin"]
    async with api.get("/healthz") as resp:
        assert resp.status == 200  # open
    used = await pool.fetchval("SELECT last_used_at FROM api_tokens WHERE name = 'ci'")
    assert used is not None
    await pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'ci'")
    async with api.get("/api/incidents", headers=bearer(user)) as resp:
        assert resp.status == 401


async def test_auth_off_lets_anonymous_read_and_write(
    database_url: str, nats_url: str, pool: asyncpg.Pool, responder: Responder
) -> None:
    incident = await add_incident(pool, detected_at=BASE)
    settings = settings_for(database_url, nats_url, API_AUTH="off")
    async with running_api(settings, db=pool) as http:
        async with http.get("/api/incidents") as resp:
            assert resp.status == 200
        async with http.post(f"/api/incidents/{incident}/resolve", json={"note": "x"}) as resp:
            assert resp.status == 200
    assert [(c.action, c.actor, c.note) for c in responder.received] == [
        ("resolve", "api:anonymous", "x")
    ]


async def test_list_is_newest_first_filtered_and_paginated(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    ids = [await add_incident(pool, detected_at=BASE + timedelta(minutes=i)) for i in range(5)]
    # two incidents at the same instant: the keyset's incident_id breaks the tie
    same = [await add_incident(pool, detected_at=BASE + timedelta(minutes=10)) for _ in range(2)]
    resolved = await add_incident(
        pool, detected_at=BASE - timedelta(days=1), state="resolved", detector="runaway"
    )
    expected = [*sorted(same, reverse=True), *reversed(ids), resolved]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        async with api.get("/api/incidents", params=params, headers=bearer(ADMIN_TOKEN)) as resp:
            assert resp.status == 200
            page = await resp.json()
        pages += 1
        seen += [item["incident_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3

    async with api.get(
        "/api/incidents", params={"state": "resolved"}, headers=bearer(ADMIN_TOKEN)
    ) as resp:
        body = await resp.json()
    assert [i["incident_id"] for i in body["items"]] == [resolved]
    assert body["items"][0]["value"] == "12.345000000"  # Decimal as a string
    async with api.get(
        "/api/incidents", params={"detector": "budget", "limit": "1"}, headers=bearer(ADMIN_TOKEN)
    ) as resp:
        body = await resp.json()
    assert len(body["items"]) == 1
    assert body["next_cursor"]

    for bad in ({"state": "closed"}, {"limit": "0"}, {"cursor": "zzz"}):
        async with api.get("/api/incidents", params=bad, headers=bearer(ADMIN_TOKEN)) as resp:
            assert (resp.status, resp.content_type) == (400, PROBLEM)


async def test_detail_has_the_timeline_and_metrics(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    incident = await add_incident(
        pool,
        detected_at=BASE,
        state="acknowledged",
        evidence_first_at=BASE - timedelta(seconds=60),
        alerted_at=BASE + timedelta(seconds=5),
        acknowledged_at=BASE + timedelta(seconds=125),
        acknowledged_by="api:ops",
        cost_micros=2_500_000,
    )
    for n, (transition, from_state, to_state) in enumerate(
        [
            ("opened", None, "open"),
            ("alerted", "open", "alerted"),
            ("acknowledged", "alerted", "acknowledged"),
        ]
    ):
        await pool.execute(
            "INSERT INTO incident_transitions (incident_id, transition, from_state, to_state, "
            "actor, at) VALUES ($1, $2, $3, $4, 'system', $5)",
            uuid.UUID(incident),
            transition,
            from_state,
            to_state,
            BASE + timedelta(seconds=n),
        )
    async with api.get(f"/api/incidents/{incident}", headers=bearer(ADMIN_TOKEN)) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["incident"]["incident_id"] == incident
    assert body["incident"]["state"] == "acknowledged"
    assert [t["transition"] for t in body["transitions"]] == ["opened", "alerted", "acknowledged"]
    assert body["metrics"] == {
        "mttd_seconds": 60.0,
        "mtti_seconds": 120.0,
        "mttr_seconds": None,
        "cost_micros": 2_500_000,
    }
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        async with api.get(f"/api/incidents/{missing}", headers=bearer(ADMIN_TOKEN)) as resp:
            assert (resp.status, resp.content_type) == (404, PROBLEM)


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("ok", 200),
        ("not_found", 404),
        ("invalid_transition", 409),
        ("invalid_command", 422),
        ("silent", 504),
    ],
)
async def test_commands_map_the_incidents_service_answer(
    api: aiohttp.ClientSession, pool: asyncpg.Pool, responder: Responder, mode: Mode, status: int
) -> None:
    incident = await add_incident(pool, detected_at=BASE)
    responder.mode = mode
    async with api.post(
        f"/api/incidents/{incident}/resolve", json={"note": "done"}, headers=bearer(ADMIN_TOKEN)
    ) as resp:
        assert resp.status == status
        body = await resp.json()
    if status == 200:
        assert body["incident_id"] == incident
    else:
        assert resp.content_type == PROBLEM
        assert body["status"] == status
    assert [(c.action, c.incident_id, c.note) for c in responder.received] == [
        ("resolve", incident, "done")
    ]


async def test_patch_snoozes_and_validates(
    api: aiohttp.ClientSession, pool: asyncpg.Pool, responder: Responder
) -> None:
    incident = await add_incident(pool, detected_at=BASE)
    url = f"/api/incidents/{incident}"
    async with api.patch(
        url, json={"action": "snooze", "minutes": 30}, headers=bearer(ADMIN_TOKEN)
    ) as resp:
        assert resp.status == 200
    async with api.patch(url, json={"action": "acknowledge"}, headers=bearer(ADMIN_TOKEN)) as resp:
        assert resp.status == 200
    assert [(c.action, c.snooze_minutes) for c in responder.received] == [
        ("snooze", 30),
        ("acknowledge", None),
    ]
    for bad in ({"action": "snooze"}, {"action": "close"}, {"action": "resolve", "minutes": 5}):
        async with api.patch(url, json=bad, headers=bearer(ADMIN_TOKEN)) as resp:
            assert (resp.status, resp.content_type) == (422, PROBLEM)
    async with api.patch(url, data=b"{nope", headers=bearer(ADMIN_TOKEN)) as resp:
        assert resp.status == 400
    assert len(responder.received) == 2


async def test_no_incidents_service_is_503(api: aiohttp.ClientSession, pool: asyncpg.Pool) -> None:
    incident = await add_incident(pool, detected_at=BASE)
    async with api.post(f"/api/incidents/{incident}/ack", headers=bearer(ADMIN_TOKEN)) as resp:
        assert (resp.status, resp.content_type) == (503, PROBLEM)


async def test_metrics_summarise_the_last_days(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    now = utc_now()
    for detector, mttr in (("budget", 100), ("budget", 300), ("runaway", 50)):
        detected = now - timedelta(days=1)
        await add_incident(
            pool,
            detected_at=detected,
            state="resolved",
            detector=detector,
            resolved_at=detected + timedelta(seconds=mttr),
            cost_micros=1_000_000,
        )
    await add_incident(pool, detected_at=now - timedelta(days=40), detector="old")
    async with api.get("/api/incidents/metrics", headers=bearer(ADMIN_TOKEN)) as resp:
        assert resp.status == 200
        body = await resp.json()
    rows = {row["detector"]: row for row in body["rows"]}
    assert set(rows) == {"budget", "runaway", None}
    assert rows["budget"]["incidents"] == 2
    assert rows["budget"]["mttr_mean"] == 200.0
    assert rows[None]["incidents"] == 3
    assert rows[None]["cost_micros"] == "3000000"
    async with api.get(
        "/api/incidents/metrics", params={"days": "60"}, headers=bearer(ADMIN_TOKEN)
    ) as resp:
        assert {r["detector"] for r in (await resp.json())["rows"]} >= {"old"}
    async with api.get(
        "/api/incidents/metrics", params={"days": "0"}, headers=bearer(ADMIN_TOKEN)
    ) as resp:
        assert resp.status == 400


async def test_cli_token_create_makes_a_working_token(
    api: aiohttp.ClientSession, database_url: str, pool: asyncpg.Pool
) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": database_url}
    # CliRunner runs the command in this thread; asyncio.run needs a thread without a loop.
    result = await _in_thread(runner, ["token", "create", "grafana"], env)
    assert result.exit_code == 0, result.output
    token = next(word for word in result.output.split() if word.startswith("sw_"))
    stored = await pool.fetchrow(
        "SELECT token_hash, is_admin FROM api_tokens WHERE name = 'grafana'"
    )
    assert stored is not None
    assert stored["token_hash"] == hash_token(token)
    assert stored["is_admin"] is False
    async with api.get("/api/incidents", headers=bearer(token)) as resp:
        assert resp.status == 200
    async with api.post(f"/api/incidents/{uuid.uuid4()}/ack", headers=bearer(token)) as resp:
        assert resp.status == 403

    again = await _in_thread(runner, ["token", "create", "grafana", "--admin"], env)
    assert again.exit_code == 1
    assert "already exists" in again.output
    admin = await _in_thread(runner, ["token", "create", "ops", "--admin"], env)
    assert admin.exit_code == 0, admin.output
    assert await pool.fetchval("SELECT is_admin FROM api_tokens WHERE name = 'ops'") is True

    listed = await _in_thread(runner, ["token", "list"], env)
    assert listed.exit_code == 0, listed.output
    assert "grafana" in listed.output
    assert "ops" in listed.output
    assert "sw_" not in listed.output  # never the token, never the hash
    revoked = await _in_thread(runner, ["token", "revoke", "grafana"], env)
    assert (revoked.exit_code, "revoked 'grafana'" in revoked.output) == (0, True)
    async with api.get("/api/incidents", headers=bearer(token)) as resp:
        assert resp.status == 401  # refused from now on
    twice = await _in_thread(runner, ["token", "revoke", "grafana"], env)
    assert "already revoked" in twice.output
    missing = await _in_thread(runner, ["token", "revoke", "nobody"], env)
    assert missing.exit_code == 1
    assert "no token named 'nobody'" in missing.output


async def _in_thread(runner: CliRunner, args: list[str], env: dict[str, str]) -> Any:
    return await asyncio.to_thread(runner.invoke, cli, args, env=env)
