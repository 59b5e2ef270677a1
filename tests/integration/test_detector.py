"""Detector over the real bus: events → sink → committed notice → anomaly, once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from spendwatch.common.events import (
    AnomalyDetectedV1,
    SettingsUpdatedV1,
    UsageCommittedV1,
    UsageRecordedV1,
)
from spendwatch.common.messaging import ConsumerSpec, publish_event, subjects
from tests.integration.sinkkit import consumer_drained, publish_events, running_sink, wait_for

pytestmark = pytest.mark.timeout(180)

# Today (UTC midnight): the detector only reports days younger than `max_age_days`.
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
# Only its name is used, to ask NATS whether the detector has handled every notice.
DETECTOR = ConsumerSpec(stream="USAGE", durable="detector-USAGE", filter_subjects=())


def event(n: int, at: datetime, dollars: str, user: str = "alice@example.com") -> UsageRecordedV1:
    return UsageRecordedV1(
        event_id=f"t:{user}:{n}",
        provider="cursor",
        occurred_at=at,
        user_email=user,
        model="claude-4.6-opus-max" if at >= TODAY else "claude-4.5-sonnet",
        kind="usage_based",
        cost_micros=int(Decimal(dollars) * 1_000_000),
        ingested_at=datetime.now(UTC),
    )


@pytest.fixture
def detector(database_url: str, nats_url: str, nc: NatsClient) -> Iterator[subprocess.Popen[bytes]]:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "LOG_LEVEL": "INFO",
        "METRICS_PORT": "0",
        "DETECT_TICK_SECONDS": "3600",  # after the first tick, only a settings event ticks
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "spendwatch.detector"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # wait until it consumes
        if b"service.ready" in line or time.monotonic() > deadline:
            break
    yield proc
    proc.terminate()
    assert proc.wait(30) == 0  # a clean stop on SIGTERM


async def anomalies_until_critical(
    js: JetStreamContext, timeout: float
) -> list[tuple[float, AnomalyDetectedV1]]:
    """(arrival time, anomaly) from the stream until a critical one arrives."""
    sub = await js.subscribe(subjects.ANOMALIES_ALL, ordered_consumer=True)
    seen: list[tuple[float, AnomalyDetectedV1]] = []
    try:
        while not seen or seen[-1][1].severity != "critical":
            msg = await sub.next_msg(timeout=timeout)
            seen.append((time.monotonic(), AnomalyDetectedV1.model_validate_json(msg.data)))
    finally:
        await sub.unsubscribe()
    return seen


async def test_a_spike_is_published_within_two_seconds_and_only_once(
    js: JetStreamContext, pool: asyncpg.Pool, detector: subprocess.Popen[bytes]
) -> None:
    history = [event(d, TODAY - timedelta(days=d, hours=-10), "10") for d in range(1, 8)]
    async with running_sink(js, pool):
        await publish_events(js, history)
        await asyncio.sleep(1)  # history settles first; its notices find nothing
        started = time.monotonic()
        await publish_events(
            js, [event(100 + i, TODAY + timedelta(hours=9 + i), "60") for i in range(5)]
        )
        seen = await anomalies_until_critical(js, timeout=5)
    # The sink may commit the five events in more than one batch: the spike is reported as soon
    # as it is true (warning) and escalates (critical) once the whole $300 is in.
    first_at, first = seen[0]
    assert first_at - started < 2.0
    assert first.detector == "spend_spike"
    assert first.fingerprint == f"alice@example.com:spend_spike:{TODAY.date()}"
    assert first.evidence_first_at == TODAY + timedelta(hours=9)
    final = seen[-1][1]
    assert final.fingerprint == first.fingerprint
    assert final.severity == "critical"
    # Critical from $130 (baseline $10 + 3 x the $40 threshold distance): 3, 4 or 5 events,
    # depending on how the sink batched them; a bigger value at the same severity is no news.
    assert final.value in {Decimal("180.00"), Decimal("240.00"), Decimal("300.00")}
    assert final.model == "claude-4.6-opus-max"
    assert len({a.anomaly_id for _, a in seen}) == len(seen) <= 2

    # The same notice again (a redelivery past the duplicate window): nothing new.
    notice = UsageCommittedV1(
        commit_id="replayed",
        provider="cursor",
        keys=[{"user_email": "alice@example.com", "day": TODAY.date()}],
        earliest_occurred_at=TODAY,
        new_events=5,
        cost_micros=300_000_000,
        committed_at=datetime.now(UTC),
    )
    await publish_event(js, subjects.usage_committed("cursor"), notice, msg_id="replayed")
    await asyncio.sleep(1.5)
    info = await js.stream_info("ANOMALIES")
    assert info.state.messages == len(seen)
    assert await pool.fetchval("SELECT count(*) FROM anomalies") == len(seen)


async def test_a_threshold_change_applies_to_the_next_evaluation(
    js: JetStreamContext, pool: asyncpg.Pool, detector: subprocess.Popen[bytes]
) -> None:
    bob = "bob@example.com"
    async with running_sink(js, pool):
        await publish_events(
            js, [event(i, TODAY + timedelta(hours=8, minutes=i), "1", bob) for i in range(4)]
        )
        await wait_for(lambda: consumer_drained(js), what="the sink")
        await wait_for(lambda: consumer_drained(js, DETECTOR), what="the detector")
        assert await pool.fetchval("SELECT count(*) FROM anomalies") == 0  # caps are off
        await pool.execute(
            "INSERT INTO settings (key, value, updated_by) VALUES ('detection', $1, 'test')",
            {"static_caps": {"user_daily_requests": 3}},
        )
        await publish_events(js, [event(9, TODAY + timedelta(hours=9), "1", bob)])
        sub = await js.subscribe(subjects.ANOMALIES_ALL, ordered_consumer=True)
        anomaly = AnomalyDetectedV1.model_validate_json((await sub.next_msg(timeout=5)).data)
        await sub.unsubscribe()
    assert anomaly.detector == "requests_cap"
    assert (anomaly.value, anomaly.threshold) == (5, 3)
    assert anomaly.severity == "warning"


async def test_a_settings_event_applies_new_cycle_thresholds_at_once(
    js: JetStreamContext, pool: asyncpg.Pool, detector: subprocess.Popen[bytes]
) -> None:
    async with running_sink(js, pool):
        await publish_events(js, [event(i, TODAY + timedelta(hours=i), "40") for i in range(3)])
        await wait_for(lambda: consumer_drained(js), what="the sink")
        await wait_for(lambda: consumer_drained(js, DETECTOR), what="the detector")
    await pool.execute(
        "INSERT INTO settings (key, value, updated_by) VALUES ('detection', $1, 'test')",
        {"static_caps": {"team_cycle_budget_usd": "100"}},
    )
    sub = await js.subscribe(subjects.ANOMALIES_ALL, ordered_consumer=True)
    started = time.monotonic()
    update = SettingsUpdatedV1(key="detection", actor="test", updated_at=datetime.now(UTC))
    await publish_event(js, subjects.SETTINGS_UPDATED, update, msg_id="settings-1")
    published = []  # the same tick also reports alice's plan exhaustion (info)
    while not any(a.detector == "team_budget" for a in published):
        msg = await sub.next_msg(timeout=5)
        published.append(AnomalyDetectedV1.model_validate_json(msg.data))
    await sub.unsubscribe()
    assert time.monotonic() - started < 2.0
    [anomaly] = [a for a in published if a.detector == "team_budget"]
    assert anomaly.subject == "team"
    assert anomaly.value >= Decimal("120.00")  # this month's $120 (and whatever else is in it)
