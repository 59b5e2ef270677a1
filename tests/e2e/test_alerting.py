"""Simulator anomaly → incident → Slack root message → button → acknowledged → message updated.

Every service runs as its real process (`python -m spendwatch.<service>`): the collector polls
the Cursor simulator, the detector, incidents and notifier do their work over NATS and
PostgreSQL, the notifier posts to the fake Slack Web API, and the button press goes through the
API's signed `/api/slack/interactions`, exactly as Slack would send it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from spendwatch.common.localstack import free_port
from spendwatch.simulator import DEFAULT_ADMIN_KEY, SimulatedTeam, run_simulator
from tests.fakes.slack import CHANNEL, TOKEN, FakeSlack, SlackMessage, fake_slack
from tests.integration.sinkkit import wait_for
from tests.processes import Service
from tests.unit.api.payloads import SECRET, block_actions, form_body, signed_headers

pytestmark = pytest.mark.timeout(300)
__all__ = ["fake_slack"]  # the fixture, used by name below

NOW = datetime.now(UTC).replace(microsecond=0)
SERVICES = ("collector", "detector", "incidents", "notifier", "api")


@pytest.fixture
def team() -> SimulatedTeam:
    return SimulatedTeam(seed=7, developers=25, days=20, now=NOW)


@pytest.fixture
def api_port() -> int:
    return free_port()


@pytest.fixture
async def stack(
    team: SimulatedTeam,
    database_url: str,
    nats_url: str,
    fake_slack: FakeSlack,
    api_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[None]:
    """The simulator and all five services, until the test ends (each must stop cleanly)."""
    async with run_simulator(team, rate_limit_per_minute=10_000) as sim_url:
        env = os.environ | {
            "DATABASE_URL": database_url,
            "NATS_URL": nats_url,
            "LOG_LEVEL": "INFO",
            "METRICS_PORT": "0",
            "CURSOR_ADMIN_API_KEY": DEFAULT_ADMIN_KEY,
            "CURSOR_API_BASE_URL": sim_url,
            "CURSOR_REQUESTS_PER_MINUTE": "6000",
            "COLLECT_BACKFILL_DAYS": "25",
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_CHANNEL_ID": CHANNEL,
            "SLACK_API_BASE_URL": fake_slack.url,
            "SLACK_SIGNING_SECRET": SECRET,
            "NOTIFY_GROUP_WINDOW_SECONDS": "2",
            "DASHBOARD_URL": "http://grafana.local",
            "API_LISTEN": f"127.0.0.1:{api_port}",
            "DETECT_TICK_SECONDS": "2",
        }
        logs = tmp_path_factory.mktemp("logs")
        with ExitStack() as stop:
            procs = {
                name: stop.enter_context(Service(name, env, logs / f"{name}.log"))
                for name in SERVICES
            }
            try:
                yield
            finally:
                for name, proc in procs.items():
                    proc.terminate()
                    code = proc.wait(30)
                    assert code == 0, f"{name} exited {code}: {(logs / f'{name}.log').read_text()}"


def message_with(slack: FakeSlack, incident_id: str) -> SlackMessage | None:
    """The top-level message carrying this incident's buttons (its root or a grouped message)."""
    for message in slack.top_level():
        for block in message.blocks:
            if (
                block.get("type") == "actions"
                and block.get("block_id") == f"incident:{incident_id}"
            ):
                return message
    return None


async def test_an_anomaly_reaches_slack_and_a_button_acknowledges_it(
    stack: None, team: SimulatedTeam, fake_slack: FakeSlack, pool: asyncpg.Pool, api_port: int
) -> None:
    injected = {a.user_email for a in team.anomalies}

    async def incident_of_an_injected_anomaly() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM incidents WHERE subject = ANY($1::text[])"
                " AND evidence_first_at IS NOT NULL",
                list(injected),
            )
        )

    await wait_for(incident_of_an_injected_anomaly, timeout=150, what="an incident")
    rows = await pool.fetch(
        "SELECT incident_id::text FROM incidents WHERE subject = ANY($1::text[])"
        " AND evidence_first_at IS NOT NULL ORDER BY detected_at",
        list(injected),
    )
    ids = [r["incident_id"] for r in rows]

    async def posted() -> bool:
        return any(message_with(fake_slack, i) for i in ids)

    await wait_for(posted, timeout=60, what="a Slack message with the incident's buttons")
    incident_id = next(i for i in ids if message_with(fake_slack, i))
    message = message_with(fake_slack, incident_id)
    assert message is not None
    edits_before = message.edits

    payload = block_actions("incident.acknowledge", value=incident_id)
    payload["container"]["message_ts"] = message.ts
    payload["channel"]["id"] = CHANNEL
    body = form_body(payload)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
        response = await http.post(
            "/api/slack/interactions", content=body, headers=signed_headers(body)
        )
    assert time.monotonic() - started < 3.0  # Slack's limit
    assert response.status_code == 200
    assert response.content == b""  # success: the notifier updates the message

    async def updated() -> bool:
        now = message_with(fake_slack, incident_id)
        return now is not None and now.edits > edits_before and "alice" in json.dumps(now.blocks)

    await wait_for(updated, timeout=30, what="the Slack message updated with who acknowledged")

    async def thread_says_who() -> bool:
        replies = fake_slack.replies(message.ts)
        return any("alice" in (r.text or "") + json.dumps(r.blocks) for r in replies)

    await wait_for(thread_says_who, timeout=30, what="a thread reply saying who acknowledged")

    row = await pool.fetchrow(
        "SELECT i.state, i.acknowledged_by, i.evidence_first_at, i.detected_at, i.alerted_at,"
        " i.acknowledged_at, m.mttd_seconds, m.mtti_seconds, m.mttr_seconds"
        " FROM incidents i JOIN incident_metrics m USING (incident_id) WHERE incident_id = $1",
        incident_id,
    )
    assert (row["state"], row["acknowledged_by"]) == ("acknowledged", "slack:alice")
    assert row["evidence_first_at"] <= row["detected_at"] <= row["alerted_at"]
    assert row["alerted_at"] <= row["acknowledged_at"]
    assert row["mttd_seconds"] == (row["detected_at"] - row["evidence_first_at"]).total_seconds()
    assert row["mtti_seconds"] == (row["acknowledged_at"] - row["alerted_at"]).total_seconds()
    assert row["mttr_seconds"] is None  # not resolved yet
