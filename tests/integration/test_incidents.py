"""The incidents service on a real database and bus: lifecycle, commands, metrics, outbox."""

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
    AnomalyClearedV1,
    AnomalyDetectedV1,
    IncidentCommandReplyV1,
    IncidentCommandV1,
    IncidentEvent,
    parse_incident_event,
)
from spendwatch.common.messaging import ensure_streams, publish_event, subjects
from spendwatch.incidents.service import Incidents
from tests.clock import Clock

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
FP = "bob@x.com:spend_spike:2026-11-20"


def detected(
    n: int,
    severity: str = "warning",
    *,
    at: datetime = T0,
    value: str = "214",
    fingerprint: str = FP,
    subject: str = "bob@x.com",
) -> AnomalyDetectedV1:
    return AnomalyDetectedV1(
        anomaly_id=f"00000000-0000-4000-8000-{n:012d}",
        fingerprint=fingerprint,
        detector="spend_spike",
        severity=severity,
        subject=subject,
        metric="daily_spend",
        unit="usd",
        value=Decimal(value),
        threshold=Decimal("204"),
        baseline=Decimal("51"),
        window_start=datetime(2026, 11, 20, tzinfo=UTC),
        window_end=datetime(2026, 11, 21, tzinfo=UTC),
        model="claude-4.6-opus-max",
        message=f"Bob: daily spend spiked to ${value} (4.2x their 7-day avg of $51)",
        evidence_first_at=T0 - timedelta(minutes=7),
        detected_at=at,
    )


def cleared(n: int, at: datetime) -> AnomalyClearedV1:
    d = detected(1)
    return AnomalyClearedV1(
        **d.model_dump(exclude={"type", "severity", "evidence_first_at", "detected_at"})
        | {"anomaly_id": f"00000000-0000-4000-9000-{n:012d}", "message": "Cleared: below"},
        cleared_at=at,
    )


def command(
    action: str, incident_id: str, actor: str = "api:ops", **kw: object
) -> IncidentCommandV1:
    return IncidentCommandV1.model_validate(
        {"action": action, "incident_id": incident_id, "actor": actor, **kw}
    )


async def incident_events(js: JetStreamContext) -> list[IncidentEvent]:
    """Every event on the INCIDENTS stream, in order."""
    info = await js.stream_info("INCIDENTS")
    sub = await js.subscribe(subjects.INCIDENTS_ALL, ordered_consumer=True)
    events = [
        parse_incident_event((await sub.next_msg(timeout=2)).data)
        for _ in range(info.state.messages)
    ]
    await sub.unsubscribe()
    return events


async def test_the_lifecycle_and_its_metrics_follow_the_timestamps(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    clock = Clock(T0 + timedelta(seconds=2))
    service = Incidents(db=pool, js=js, clock=clock)
    [opened] = await service.on_anomaly(detected(1))
    assert opened.transition == "opened"
    assert opened.incident.state == "open"
    incident_id = opened.incident_id
    assert await service.on_anomaly(detected(1)) == []  # redelivered: nothing new

    [escalated] = await service.on_anomaly(detected(2, "critical", value="400"))
    assert escalated.transition == "escalated"
    assert (escalated.incident.severity, escalated.incident.value) == ("critical", Decimal("400"))
    [updated] = await service.on_anomaly(detected(3, "warning", value="450"))
    assert updated.transition == "updated"
    assert updated.incident.severity == "critical"  # never downgraded

    clock.now = T0 + timedelta(seconds=5)
    reply = await service.command(command("alerted", incident_id, actor="notifier"))
    assert (reply.ok, reply.changed) == (True, True)
    clock.now = T0 + timedelta(minutes=4, seconds=5)
    reply = await service.command(command("acknowledge", incident_id, actor="slack:alice"))
    assert reply.incident is not None
    assert (reply.incident.state, reply.incident.acknowledged_by) == ("acknowledged", "slack:alice")
    [resolved] = await service.on_anomaly(cleared(1, T0 + timedelta(hours=3)))
    assert (resolved.transition, resolved.incident.resolution) == ("resolved", "auto")
    assert resolved.at == T0 + timedelta(hours=3)

    row = await pool.fetchrow(
        "SELECT mttd_seconds, mtti_seconds, mttr_seconds FROM incident_metrics"
        " WHERE incident_id = $1",
        incident_id,
    )
    assert tuple(row) == (7 * 60, 4 * 60, 3 * 3600)  # 10:00-09:53, 10:04:05-10:00:05, 13:00-10:00
    transitions = await pool.fetch(
        "SELECT transition, from_state, to_state, actor FROM incident_transitions"
        " WHERE incident_id = $1 ORDER BY transition_id",
        incident_id,
    )
    assert [tuple(t) for t in transitions] == [
        ("opened", None, "open", "system"),
        ("escalated", "open", "open", "system"),
        ("updated", "open", "open", "system"),
        ("alerted", "open", "alerted", "notifier"),
        ("acknowledged", "alerted", "acknowledged", "slack:alice"),
        ("resolved", "acknowledged", "resolved", "system"),
    ]
    events = await incident_events(js)
    assert [e.transition for e in events] == [t["transition"] for t in transitions]
    assert len({e.event_id for e in events}) == len(events)


async def test_commands_answer_clearly(js: JetStreamContext, pool: asyncpg.Pool) -> None:
    service = Incidents(db=pool, js=js, clock=Clock(T0))
    [opened] = await service.on_anomaly(detected(1))
    incident_id = opened.incident_id
    missing = await service.command(command("acknowledge", "6f1d2c1e-5b1a-4c55-9a51-8a3f0f9d2b7e"))
    assert (missing.ok, missing.code) == (False, "not_found")
    bad = await service.command(command("acknowledge", "not-a-uuid"))
    assert (bad.ok, bad.code) == (False, "invalid_command")
    no_minutes = await service.command(command("snooze", incident_id))
    assert (no_minutes.ok, no_minutes.code) == (False, "invalid_command")
    snoozed = await service.command(command("snooze", incident_id, snooze_minutes=60))
    assert snoozed.incident is not None
    assert snoozed.incident.snoozed_until == T0 + timedelta(hours=1)
    first = await service.command(command("resolve", incident_id, note="false alarm"))
    again = await service.command(command("resolve", incident_id))
    assert (first.ok, first.changed, again.ok, again.changed) == (True, True, True, False)
    late = await service.command(command("acknowledge", incident_id))
    assert (late.ok, late.code) == (False, "invalid_transition")
    assert late.error == "incident is resolved; cannot acknowledge it"
    note = await pool.fetchval(
        "SELECT note FROM incident_transitions WHERE transition = 'resolved'"
    )
    assert note == "false alarm"


async def test_firing_again_within_the_window_reopens_later_opens_anew(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    service = Incidents(db=pool, js=js, clock=Clock(T0))
    [opened] = await service.on_anomaly(detected(1))
    await service.on_anomaly(cleared(1, T0 + timedelta(hours=1)))
    [reopened] = await service.on_anomaly(detected(2, at=T0 + timedelta(hours=5)))
    assert (reopened.transition, reopened.incident_id) == ("reopened", opened.incident_id)
    assert (reopened.incident.reopen_count, reopened.incident.state) == (1, "open")
    assert reopened.incident.resolved_at is None
    await service.on_anomaly(cleared(2, T0 + timedelta(hours=6)))
    [fresh] = await service.on_anomaly(detected(3, at=T0 + timedelta(hours=31)))
    assert fresh.transition == "opened"
    assert fresh.incident_id != opened.incident_id
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 2


async def test_info_anomalies_open_nothing(js: JetStreamContext, pool: asyncpg.Pool) -> None:
    service = Incidents(db=pool, js=js, clock=Clock(T0))
    assert await service.on_anomaly(detected(1, "info")) == []
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 0


async def test_an_incident_costs_what_was_spent_above_the_usual_pace(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    # Bob's usual: $10 a day over the 28 days before; during the incident (09:53 -> 12:53) $100.
    await pool.execute(
        """
        INSERT INTO usage_daily_user_model (day, user_email, provider, model, events, cost_micros,
                                            first_event_at, last_event_at)
        SELECT d::date, 'bob@x.com', 'cursor', 'm', 1, 10000000, d, d
        FROM generate_series('2026-10-23'::timestamptz, '2026-11-19', '1 day') AS d;
        INSERT INTO usage_events (provider, event_id, occurred_at, user_email, model, kind,
                                  cost_micros, ingested_at)
        VALUES ('cursor', 'x', '2026-11-20 10:30Z', 'bob@x.com', 'm', 'usage_based', 100000000,
                now());
        """
    )
    clock = Clock(T0)
    service = Incidents(db=pool, js=js, clock=clock)
    [opened] = await service.on_anomaly(detected(1))
    assert await pool.fetchval("SELECT cost_micros FROM incidents") == 0  # nothing spent yet
    clock.now = T0 + timedelta(hours=3) - timedelta(minutes=7)  # three hours after onset
    await service.command(command("resolve", opened.incident_id))
    cost = await pool.fetchval("SELECT cost_micros FROM incidents")
    assert cost == 100_000_000 - 10_000_000 * 3 // 24  # $100 less 3 hours of $10 a day


async def test_an_event_lost_after_commit_is_republished_once(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    service = Incidents(db=pool, js=js, clock=Clock(T0))
    await service.on_anomaly(detected(1))
    # As if the publish after commit never happened (a new stream forgets the message ids).
    await js.delete_stream("INCIDENTS")
    await ensure_streams(js)
    await pool.execute("UPDATE incident_transitions SET published_at = NULL")
    assert await service.republish() == 1
    assert await service.republish() == 0
    [event] = await incident_events(js)
    assert event.transition == "opened"
    assert event.incident.fingerprint == FP


# --- the service process ------------------------------------------------------------------------


@pytest.fixture
def incidents_process(database_url: str, nats_url: str, nc: NatsClient) -> Iterator[None]:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "LOG_LEVEL": "INFO",
        "METRICS_PORT": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "spendwatch.incidents"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if b"service.ready" in line or time.monotonic() > deadline:
            break
    yield
    proc.terminate()
    assert proc.wait(30) == 0


async def test_the_service_opens_from_the_bus_and_answers_commands(
    js: JetStreamContext, nc: NatsClient, pool: asyncpg.Pool, incidents_process: None
) -> None:
    sub = await js.subscribe(subjects.INCIDENTS_ALL, ordered_consumer=True)
    anomaly = detected(1, at=datetime.now(UTC))
    await publish_event(js, subjects.anomalies_events("spend_spike"), anomaly, msg_id="a1")
    opened = parse_incident_event((await sub.next_msg(timeout=5)).data)
    assert opened.transition == "opened"

    request = command("acknowledge", opened.incident_id, actor="slack:alice")
    answer = await nc.request(
        subjects.incident_command("acknowledge"), request.model_dump_json().encode(), timeout=2
    )
    reply = IncidentCommandReplyV1.model_validate_json(answer.data)
    assert (reply.ok, reply.changed) == (True, True)
    acknowledged = parse_incident_event((await sub.next_msg(timeout=5)).data)
    assert (acknowledged.transition, acknowledged.actor) == ("acknowledged", "slack:alice")

    garbage = await nc.request(subjects.incident_command("resolve"), b"{nope", timeout=2)
    refused = IncidentCommandReplyV1.model_validate_json(garbage.data)
    assert (refused.ok, refused.code) == (False, "invalid_command")
    mismatch = await nc.request(
        subjects.incident_command("resolve"), request.model_dump_json().encode(), timeout=2
    )
    assert IncidentCommandReplyV1.model_validate_json(mismatch.data).code == "invalid_command"
    await sub.unsubscribe()
    await asyncio.sleep(0)


async def test_mtt_summary_per_detector_and_overall(pool: asyncpg.Pool) -> None:
    # Three spike incidents (MTTD 60/120/300 s) and one runaway (MTTD 30 s), two resolved.
    await pool.execute(
        """
        INSERT INTO incidents (incident_id, fingerprint, detector, subject, state, severity,
            message, evidence_first_at, detected_at, alerted_at, acknowledged_at, resolved_at,
            cost_micros)
        VALUES
          (gen_random_uuid(), 'a', 'spend_spike', 'a', 'resolved', 'warning', 'm',
           '2026-11-20 10:00Z', '2026-11-20 10:01Z', '2026-11-20 10:01Z', '2026-11-20 10:11Z',
           '2026-11-20 11:01Z', 5000000),
          (gen_random_uuid(), 'b', 'spend_spike', 'b', 'resolved', 'warning', 'm',
           '2026-11-20 10:00Z', '2026-11-20 10:02Z', '2026-11-20 10:02Z', NULL,
           '2026-11-20 12:02Z', 1000000),
          (gen_random_uuid(), 'c', 'spend_spike', 'c', 'open', 'warning', 'm',
           '2026-11-20 10:00Z', '2026-11-20 10:05Z', NULL, NULL, NULL, NULL),
          (gen_random_uuid(), 'd', 'runaway', 'd', 'open', 'critical', 'm',
           '2026-11-20 10:00Z', '2026-11-20 10:00:30Z', NULL, NULL, NULL, NULL),
          (gen_random_uuid(), 'e', 'runaway', 'e', 'open', 'critical', 'm',
           '2026-11-10 10:00Z', '2026-11-10 10:00:30Z', NULL, NULL, NULL, NULL)
        """
    )
    rows = await pool.fetch(
        "SELECT * FROM incident_mtt_summary('2026-11-15', '2026-11-21')"
        " ORDER BY detector NULLS FIRST"
    )
    overall, runaway, spike = (dict(r) for r in rows)
    assert (overall["detector"], overall["incidents"]) == (None, 4)  # the 11-10 one is outside
    assert overall["mttd_p50"] == 90.0  # 30, 60, 120, 300
    assert (spike["incidents"], spike["mttd_mean"], spike["mttd_p50"]) == (3, 160.0, 120.0)
    assert spike["mttd_p90"] == pytest.approx(264.0)  # 120 + 0.8 x (300 - 120)
    assert (spike["mtti_mean"], spike["mtti_p50"]) == (600.0, 600.0)  # only one acknowledged
    assert (spike["mttr_mean"], spike["mttr_p90"]) == (5400.0, pytest.approx(6840.0))
    assert spike["cost_micros"] == 6_000_000
    assert (runaway["incidents"], runaway["mttd_mean"], runaway["mttr_mean"]) == (1, 30.0, None)
