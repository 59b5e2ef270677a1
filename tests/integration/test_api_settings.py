"""/api/settings over real PostgreSQL and NATS: auth, validation, audit rows, the NATS event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from spendwatch.common.events import SettingsUpdatedV1
from spendwatch.common.messaging import subjects
from spendwatch.common.thresholds import DetectionSettings
from tests.integration.test_api_incidents import ADMIN_TOKEN, add_token, bearer, settings_for
from tests.integration.test_api_slack import running_api, subscriptions_live

pytestmark = pytest.mark.timeout(60)

ADMIN = bearer(ADMIN_TOKEN)


@pytest.fixture
async def api(
    database_url: str, nats_url: str, pool: asyncpg.Pool, nc: NatsClient
) -> AsyncIterator[aiohttp.ClientSession]:
    async with running_api(settings_for(database_url, nats_url), db=pool, nc=nc) as http:
        yield http


class Announcements(list[SettingsUpdatedV1]):
    """SettingsUpdatedV1 events received so far; `wait_for(n)` until there are n."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def announced(nc: NatsClient) -> AsyncIterator[Announcements]:
    """Every SettingsUpdatedV1 published while the test runs."""
    received = Announcements()

    async def on_message(msg: Msg) -> None:
        received.append(SettingsUpdatedV1.model_validate_json(msg.data))
        received.arrived.set()

    sub = await nc.subscribe(subjects.SETTINGS_UPDATED, cb=on_message)
    await subscriptions_live(nc)
    yield received
    await sub.unsubscribe()


def defaults() -> dict[str, Any]:
    document: dict[str, Any] = DetectionSettings().model_dump(mode="json")
    return document


async def put(http: aiohttp.ClientSession, body: Any, **kw: Any) -> aiohttp.ClientResponse:
    data = body if isinstance(body, str) else json.dumps(body)
    return await http.put("/api/settings", data=data, headers=kw.get("headers", ADMIN))


async def audit_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT key, old_value, new_value, actor FROM settings_audit ORDER BY audit_id"
    )
    return rows


async def test_reads_need_a_token_and_writes_an_admin(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    reader = bearer(await add_token(pool, "reader", admin=False))
    for path in ("/api/settings", "/api/settings/audit"):
        async with api.get(path) as resp:
            assert resp.status == 401
        async with api.get(path, headers=reader) as resp:
            assert resp.status == 200
    async with await put(api, defaults(), headers={}) as resp:
        assert resp.status == 401
    body = defaults()
    body["spend_spike"]["multiplier"] = "9"
    async with await put(api, body, headers=reader) as resp:
        assert resp.status == 403
    assert await pool.fetchval("SELECT count(*) FROM settings") == 0
    assert await audit_rows(pool) == []


async def test_get_answers_the_defaults_before_any_change(api: aiohttp.ClientSession) -> None:
    async with api.get("/api/settings", headers=ADMIN) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["detection"]["spend_spike"]["multiplier"] == "5.0"
    assert body["detection"]["zscore"]["min_users"] == 5
    assert body["detection"] == defaults()
    assert body["updated_at"] is None
    assert body["updated_by"] is None
    assert body["fields"] == {}


@pytest.mark.parametrize(
    ("body", "status", "in_detail"),
    [
        ({"spend_spike": {"multiplier": -1}}, 422, "spend_spike.multiplier"),
        ({"zscore": {"min_users": 1}}, 422, "zscore.min_users"),
        ({"spend_spike": {"lookback": 7}}, 422, "spend_spike.lookback"),
        ({"nonsense": 1}, 422, "nonsense"),
        ({"runaway": {"headless_hours": False}}, 422, "runaway.headless_hours"),
        ({"runaway": {"window_minutes": 15.5}}, 422, "runaway.window_minutes"),
        ({"plan_exhaustion": {"enabled": "yes"}}, 422, "plan_exhaustion.enabled"),
        (
            {"static_caps": {"team_cycle_budget_usd": 100, "team_budget_critical_ratio": "0.5"}},
            422,
            "team_budget_critical_ratio must be above 1",
        ),
        ("{not json", 400, "not JSON"),
    ],
)
async def test_invalid_thresholds_are_refused_with_the_field_path(
    api: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    announced: Announcements,
    body: Any,
    status: int,
    in_detail: str,
) -> None:
    async with await put(api, body) as resp:
        assert resp.status == status
        assert resp.content_type == "application/problem+json"
        assert in_detail in (await resp.json())["detail"]
    assert await pool.fetchval("SELECT count(*) FROM settings") == 0
    assert await audit_rows(pool) == []
    await asyncio.sleep(0.1)
    assert announced == []


async def test_put_stores_audits_each_changed_value_and_announces(
    api: aiohttp.ClientSession, pool: asyncpg.Pool, announced: Announcements
) -> None:
    body = defaults()
    body["spend_spike"]["multiplier"] = "6"
    body["zscore"]["min_users"] = 7
    async with await put(api, body) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert [(c["key"], c["old_value"], c["new_value"], c["actor"]) for c in answer["changes"]] == [
        ("detection.zscore.min_users", 5, 7, "api:admin"),
        ("detection.spend_spike.multiplier", "5.0", "6", "api:admin"),
    ]
    assert answer["settings"]["detection"]["spend_spike"]["multiplier"] == "6"
    assert answer["settings"]["updated_by"] == "api:admin"
    assert set(answer["settings"]["fields"]) == {"zscore.min_users", "spend_spike.multiplier"}

    # The row holds only what differs from the defaults, in the shape the detector merges.
    stored = await pool.fetchval("SELECT value FROM settings WHERE key = 'detection'")
    assert stored == {"zscore": {"min_users": 7}, "spend_spike": {"multiplier": "6"}}
    merged = DetectionSettings.merged(stored)
    assert merged.spend_spike.multiplier == Decimal(6)
    assert merged.zscore.min_users == 7
    assert merged.cycle_outlier == DetectionSettings().cycle_outlier
    assert len(await audit_rows(pool)) == 2

    await announced.wait_for(1)
    assert announced[0].key == "detection"
    assert announced[0].actor == "api:admin"

    # The same values again ("6.00" is 6): nothing written, nothing audited, nothing announced.
    body["spend_spike"]["multiplier"] = "6.00"
    async with await put(api, body) as resp:
        assert resp.status == 200
        assert (await resp.json())["changes"] == []
    assert len(await audit_rows(pool)) == 2
    await asyncio.sleep(0.2)
    assert len(announced) == 1

    # Back to the defaults: the stored document is empty again, two more audit rows.
    async with await put(api, {}) as resp:
        assert resp.status == 200
        changes = (await resp.json())["changes"]
    assert {(c["key"], c["old_value"], c["new_value"]) for c in changes} == {
        ("detection.zscore.min_users", 7, 5),
        ("detection.spend_spike.multiplier", "6", "5.0"),
    }
    assert await pool.fetchval("SELECT value FROM settings WHERE key = 'detection'") == {}
    assert len(await audit_rows(pool)) == 4
    await announced.wait_for(2)


async def test_get_names_who_changed_each_threshold(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    boss = bearer(await add_token(pool, "boss", admin=True))
    body = defaults()
    body["runaway"]["window_minutes"] = 30
    async with await put(api, body, headers=boss) as resp:
        assert resp.status == 200
    body["seasonal"]["k"] = "5"
    async with await put(api, body) as resp:
        assert resp.status == 200
    async with api.get("/api/settings", headers=ADMIN) as resp:
        got = await resp.json()
    assert got["detection"]["runaway"]["window_minutes"] == 30
    assert got["detection"]["seasonal"]["k"] == "5"
    assert got["updated_by"] == "api:admin"
    assert {k: v["updated_by"] for k, v in got["fields"].items()} == {
        "runaway.window_minutes": "api:boss",
        "seasonal.k": "api:admin",
    }


async def test_audit_is_paginated_newest_first_and_filtered(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    body = defaults()
    for minutes in (20, 25, 30):
        body["runaway"]["window_minutes"] = minutes
        async with await put(api, body) as resp:
            assert resp.status == 200
    body["zscore"]["min_users"] = 9
    async with await put(api, body) as resp:
        assert resp.status == 200

    async with api.get("/api/settings/audit?limit=2", headers=ADMIN) as resp:
        page = await resp.json()
    assert [(i["key"], i["new_value"]) for i in page["items"]] == [
        ("detection.zscore.min_users", 9),
        ("detection.runaway.window_minutes", 30),
    ]
    assert page["next_before"] == page["items"][-1]["audit_id"]
    async with api.get(
        f"/api/settings/audit?limit=2&before={page['next_before']}", headers=ADMIN
    ) as resp:
        page = await resp.json()
    assert [i["new_value"] for i in page["items"]] == [25, 20]
    assert [i["old_value"] for i in page["items"]] == [20, 15]
    assert page["next_before"] is None

    async with api.get("/api/settings/audit?key=detection.zscore", headers=ADMIN) as resp:
        items = (await resp.json())["items"]
    assert [(i["key"], i["old_value"], i["new_value"]) for i in items] == [
        ("detection.zscore.min_users", 5, 9)
    ]
    for bad in ("limit=0", "limit=201", "before=x", f"before={2**63}", "page=2", "limit=1&limit=2"):
        async with api.get(f"/api/settings/audit?{bad}", headers=ADMIN) as resp:
            assert resp.status == 400, bad
            assert resp.content_type == "application/problem+json"


async def test_an_unusable_stored_document_is_shown_and_can_be_replaced(
    api: aiohttp.ClientSession, pool: asyncpg.Pool, announced: Announcements
) -> None:
    # Written around the API: a JSON string instead of an object, as a double-encoding would.
    await pool.execute(
        "INSERT INTO settings (key, value) VALUES ('detection', $1::jsonb)",
        '{"zscore": {"min_users": 7}}',
    )
    async with api.get("/api/settings", headers=ADMIN) as resp:
        assert resp.status == 200
        got = await resp.json()
    assert got["stored_error"] == "the stored document cannot be used (not a JSON object but str)"
    assert got["detection"] == defaults()

    async with await put(api, {}) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert [(c["key"], c["old_value"], c["new_value"]) for c in answer["changes"]] == [
        ("detection", '{"zscore": {"min_users": 7}}', {})
    ]
    assert answer["settings"]["stored_error"] is None
    assert await pool.fetchval("SELECT value FROM settings WHERE key = 'detection'") == {}
    await announced.wait_for(1)

    # A stored value out of range is reported with its field path.
    await pool.execute(
        "UPDATE settings SET value = $1::jsonb WHERE key = 'detection'",
        {"zscore": {"min_users": 1}},
    )
    async with api.get("/api/settings", headers=ADMIN) as resp:
        assert "zscore.min_users" in (await resp.json())["stored_error"]
