"""Simulator → collector → NATS → sink → PostgreSQL, against the simulator's ground truth."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from spendwatch.collector import collector_state
from spendwatch.collector.cursor.client import CursorAdminClient
from spendwatch.collector.cursor_pass import EVENTS_FEED, CursorPass, PassSummary
from spendwatch.common.messaging import subjects
from spendwatch.simulator import DEFAULT_ADMIN_KEY, SimulatedTeam, run_simulator
from tests.integration.sinkkit import consumer_drained, running_sink, wait_for

pytestmark = pytest.mark.timeout(300)

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def team() -> SimulatedTeam:
    return SimulatedTeam(seed=7, developers=25, days=20, now=NOW)


@pytest.fixture
async def sim_url(team: SimulatedTeam) -> AsyncIterator[str]:
    # The rate limit is Cursor's own; the client paces itself faster only to keep tests short.
    async with run_simulator(team, rate_limit_per_minute=10_000) as url:
        yield url


async def collect(
    url: str, js: JetStreamContext, pool: asyncpg.Pool, **client_options: Any
) -> PassSummary:
    """One pass with a fresh client, then wait until the sink has stored everything."""
    options: dict[str, Any] = {"requests_per_minute": 6000, "backoff": 0.05, "backoff_max": 0.2}
    async with CursorAdminClient(
        api_key=DEFAULT_ADMIN_KEY, base_url=url, **(options | client_options)
    ) as client:
        summary = await CursorPass(
            client=client, js=js, db=pool, backfill=timedelta(days=40), clock=lambda: NOW
        ).run()
    await wait_for(lambda: consumer_drained(js), timeout=120, what="the sink to store the pass")
    return summary


async def truth(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as http:
        body: dict[str, Any] = (await http.get("/_sim/truth")).json()
    return body


async def stored_by_user_day(pool: asyncpg.Pool) -> dict[tuple[str, str], tuple[int, int]]:
    rows = await pool.fetch(
        "SELECT user_email, (occurred_at AT TIME ZONE 'UTC')::date::text AS day,"
        " count(*) AS events, sum(cost_micros)::bigint AS cost"
        " FROM usage_events GROUP BY 1, 2"
    )
    return {(r["user_email"], r["day"]): (r["events"], r["cost"]) for r in rows}


def expected_by_user_day(body: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    return {(u["user_email"], u["day"]): (u["events"], u["cost_micros"]) for u in body["user_days"]}


async def test_a_pass_stores_exactly_the_truth_and_a_second_pass_adds_nothing(
    sim_url: str, js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    published_before = (
        REGISTRY.get_sample_value(
            "spendwatch_collector_events_published_total", {"provider": "cursor"}
        )
        or 0.0
    )
    async with running_sink(js, pool):
        first = await collect(sim_url, js, pool)
        expected = await truth(sim_url)
        published = REGISTRY.get_sample_value(
            "spendwatch_collector_events_published_total", {"provider": "cursor"}
        )
        assert published == published_before + first.events
        assert first.health == "ok"
        assert first.events == expected["total_events"] == first.new_events
        assert await stored_by_user_day(pool) == expected_by_user_day(expected)
        total = await pool.fetchval("SELECT sum(cost_micros) FROM usage_daily_user_model")
        assert total == expected["total_cost_micros"]

        second = await collect(sim_url, js, pool)
        assert second.new_events == 0
        assert await stored_by_user_day(pool) == expected_by_user_day(expected)
        # Roster, spend and daily snapshots landed too.
        assert await pool.fetchval("SELECT count(*) FROM members") == first.members
        assert await pool.fetchval("SELECT count(*) FROM spend_snapshots") == first.spend_rows
        assert await pool.fetchval("SELECT count(*) FROM groups") > 0


async def test_a_late_event_inside_the_overlap_is_ingested_exactly_once(
    sim_url: str, team: SimulatedTeam, js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    async with running_sink(js, pool):
        await collect(sim_url, js, pool)
        before = await pool.fetchval("SELECT count(*) FROM usage_events")
        late_at = NOW - timedelta(minutes=50)  # inside the 2 h overlap, before the checkpoint
        async with httpx.AsyncClient(base_url=sim_url) as http:
            response = await http.post(
                "/_sim/late-event",
                json={
                    "timestamp_ms": int(late_at.timestamp() * 1000),
                    "user_email": team.members[0].email,
                    "model": "claude-4.6-opus-max",
                    "charged_cents": 412.5,
                    "kind": "Usage-based",
                },
            )
        assert response.status_code == 201, response.text
        third = await collect(sim_url, js, pool)
        assert third.new_events == 1
        fourth = await collect(sim_url, js, pool)
        assert fourth.new_events == 0
        assert await pool.fetchval("SELECT count(*) FROM usage_events") == before + 1
        cost = await pool.fetchval(
            "SELECT cost_micros FROM usage_events WHERE occurred_at = $1", late_at
        )
        assert cost == 4_125_000
        assert await stored_by_user_day(pool) == expected_by_user_day(await truth(sim_url))


async def test_429_and_500_bursts_are_survived_without_losing_a_page(
    sim_url: str, js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    faults = [
        {"kind": "429", "count": 3, "endpoint": "filtered-usage-events", "retry_after": 1},
        {"kind": "500", "count": 3},
        {"kind": "500", "count": 2, "endpoint": "filtered-usage-events"},
    ]
    async with httpx.AsyncClient(base_url=sim_url) as http:
        for fault in faults:
            assert (await http.post("/_sim/faults", json=fault)).status_code == 200
    async with running_sink(js, pool):
        started = time.monotonic()
        summary = await collect(sim_url, js, pool)
    assert summary.health == "ok"
    assert time.monotonic() - started < 60
    assert await stored_by_user_day(pool) == expected_by_user_day(await truth(sim_url))
    async with httpx.AsyncClient(base_url=sim_url) as http:
        log = (await http.get("/_sim/requests")).json()
    statuses = [r["status"] for r in log["requests"]]
    assert statuses.count(429) >= 3
    assert statuses.count(500) == 5


@pytest.mark.parametrize("variant", ["wrong_types", "missing_user_email", "garbage_json"])
async def test_a_malformed_page_goes_to_the_dlq_and_the_run_completes(
    variant: str, sim_url: str, js: JetStreamContext, nc: NatsClient, pool: asyncpg.Pool
) -> None:
    async with httpx.AsyncClient(base_url=sim_url) as http:
        await http.post(
            "/_sim/faults",
            json={
                "kind": "malformed_page",
                "endpoint": "filtered-usage-events",
                "count": 1,
                "variant": variant,
            },
        )
    async with running_sink(js, pool):
        summary = await collect(sim_url, js, pool)
    assert summary.health == "ok"
    assert summary.invalid >= 1
    info = await js.stream_info("DLQ")
    assert info.state.messages == summary.invalid
    sub = await js.subscribe(subjects.dlq(subjects.usage_events("cursor")), ordered_consumer=True)
    parked = await sub.next_msg(timeout=5)
    await sub.unsubscribe()
    assert parked.headers is not None
    assert parked.headers["Spendwatch-Dlq-Reason"]
    assert parked.data  # the offending payload itself
    # Everything else on the spoiled page and on every other page arrived.
    expected = (await truth(sim_url))["total_events"]
    stored = await pool.fetchval("SELECT count(*) FROM usage_events")
    assert summary.events == stored
    if variant == "garbage_json":  # a whole page unreadable: the checkpoint waits for it
        assert summary.invalid == 1
        assert expected > stored  # that page, and the rest of its window when its count is unknown
        assert summary.errors
        async with running_sink(js, pool):
            await collect(sim_url, js, pool)
        assert await stored_by_user_day(pool) == expected_by_user_day(await truth(sim_url))
    else:  # only the bad items are missing, and each one is in the DLQ
        assert expected - stored == summary.invalid


async def test_an_hourly_pass_for_500_developers_stays_within_20_requests_a_minute(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    afternoon = datetime(2026, 11, 19, 16, tzinfo=UTC)  # a Thursday: a busy hour
    big = SimulatedTeam(seed=3, developers=500, days=30, now=afternoon)
    await collector_state.save_checkpoint(  # steady state: the last pass ran an hour ago
        pool, provider="cursor", account="", feed=EVENTS_FEED, at=afternoon - timedelta(hours=1)
    )
    async with run_simulator(big, rate_limit_per_minute=20) as url:
        async with CursorAdminClient(
            api_key=DEFAULT_ADMIN_KEY, base_url=url, requests_per_minute=20
        ) as client:
            run = CursorPass(client=client, js=js, db=pool, clock=lambda: afternoon)
            summary = await run.run()
        async with httpx.AsyncClient(base_url=url) as http:
            log = (await http.get("/_sim/requests")).json()["requests"]
    assert summary.health == "ok"
    assert summary.events > 0
    assert summary.members == 500
    assert summary.requests == len(log)
    assert all(r["status"] != 429 for r in log), "Cursor would have rate-limited this pass"
    times = sorted(r["at"] for r in log)
    busiest = max(sum(1 for t in times if start <= t < start + 60) for start in times)
    assert busiest <= 20


async def test_collect_once_from_the_cli_prints_a_summary_and_saves_the_checkpoint(
    sim_url: str, database_url: str, nats_url: str, js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "CURSOR_API_BASE_URL": sim_url,
        "CURSOR_ADMIN_API_KEY": DEFAULT_ADMIN_KEY,
        "CURSOR_REQUESTS_PER_MINUTE": "6000",
        "COLUMNS": "120",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "spendwatch.cli",
        "collect",
        "--once",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = output.decode()
    assert proc.returncode == 0, text
    expected = (await truth(sim_url))["total_events"]
    for line in ("members", f"{expected:,}", "API requests used", "health"):
        assert line in text, text
    assert "Traceback" not in text
    checkpoint = await collector_state.checkpoint(
        pool, provider="cursor", account="", feed=EVENTS_FEED
    )
    assert checkpoint is not None


async def test_a_wrong_key_ends_the_pass_with_a_health_status_not_a_crash(
    sim_url: str, js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    async with CursorAdminClient(api_key="key_wrong", base_url=sim_url) as client:
        summary = await CursorPass(client=client, js=js, db=pool, clock=lambda: NOW).run()
    assert summary.health == "auth_failed"
    assert summary.requests == 1  # a refused key is not retried
    assert await collector_state.health(pool, provider="cursor") == {EVENTS_FEED: "auth_failed"}
