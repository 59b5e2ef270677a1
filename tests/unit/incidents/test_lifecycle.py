"""The incident lifecycle's transition table, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spendwatch.common.events import (
    AnomalyClearedV1,
    AnomalyDetectedV1,
    Incident,
    IncidentCommandV1,
)
from spendwatch.incidents.lifecycle import (
    Change,
    Refused,
    Unchanged,
    on_cleared,
    on_command,
    on_detected,
)
from spendwatch.incidents.service import excess_cost, incident_id

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
DAY = timedelta(hours=24)


def anomaly(
    severity: str = "warning", *, n: int = 1, at: datetime = T0, value: str = "214"
) -> AnomalyDetectedV1:
    return AnomalyDetectedV1(
        anomaly_id=f"a{n}",
        fingerprint="bob@x.com:spend_spike:2026-11-20",
        detector="spend_spike",
        severity=severity,
        subject="bob@x.com",
        metric="daily_spend",
        unit="usd",
        value=Decimal(value),
        threshold=Decimal(204),
        baseline=Decimal(51),
        window_start=T0,
        window_end=T0 + DAY,
        message="Bob: daily spend spiked",
        evidence_first_at=T0 - timedelta(minutes=5),
        detected_at=at,
    )


def opened() -> Incident:
    change = on_detected(None, None, anomaly(), new_id="i1", now=T0, reopen_window=DAY)
    assert change is not None
    return change.incident


def with_state(incident: Incident, **changes: object) -> Incident:
    return incident.model_copy(update=changes)


def cmd(action: str, **kw: object) -> IncidentCommandV1:
    return IncidentCommandV1.model_validate(
        {"action": action, "incident_id": "i1", "actor": "slack:alice", **kw}
    )


def test_a_first_anomaly_opens_with_its_facts() -> None:
    change = on_detected(None, None, anomaly(), new_id="i1", now=T0, reopen_window=DAY)
    assert change is not None
    assert (change.transition, change.from_state, change.actor) == ("opened", None, "system")
    i = change.incident
    assert (i.state, i.severity, i.value, i.last_anomaly_id) == ("open", "warning", 214, "a1")
    assert i.evidence_first_at == T0 - timedelta(minutes=5)


def test_info_never_opens() -> None:
    assert on_detected(None, None, anomaly("info"), new_id="i", now=T0, reopen_window=DAY) is None


def test_the_same_anomaly_again_is_nothing() -> None:
    assert on_detected(opened(), None, anomaly(), new_id="x", now=T0, reopen_window=DAY) is None


def test_worse_escalates_and_lower_keeps_the_worst_severity() -> None:
    current = opened()
    up = on_detected(current, None, anomaly("critical", n=2), new_id="x", now=T0, reopen_window=DAY)
    assert isinstance(up, Change)
    assert (up.transition, up.incident.severity) == ("escalated", "critical")
    down = on_detected(
        up.incident,
        None,
        anomaly("warning", n=3, value="300"),
        new_id="x",
        now=T0,
        reopen_window=DAY,
    )
    assert isinstance(down, Change)
    assert (down.transition, down.incident.severity, down.incident.value) == (
        "updated",
        "critical",
        300,
    )


@pytest.mark.parametrize(("hours", "transition"), [(24, "reopened"), (25, "opened")])
def test_reopen_only_within_the_window(hours: int, transition: str) -> None:
    resolved = with_state(opened(), state="resolved", resolved_at=T0, resolution="auto")
    later = anomaly(n=2, at=T0 + timedelta(hours=hours))
    change = on_detected(
        None, resolved, later, new_id="i2", now=later.detected_at, reopen_window=DAY
    )
    assert change is not None
    assert change.transition == transition
    if transition == "reopened":
        assert (change.incident.incident_id, change.incident.reopen_count) == ("i1", 1)
        assert change.incident.resolved_at is None
    else:
        assert change.incident.incident_id == "i2"


def test_a_clear_auto_resolves_at_its_time() -> None:
    clear = AnomalyClearedV1(
        **anomaly().model_dump(exclude={"type", "severity", "evidence_first_at", "detected_at"}),
        cleared_at=T0 + timedelta(hours=2),
    )
    change = on_cleared(opened(), clear)
    assert change is not None
    assert (change.incident.state, change.incident.resolution) == ("resolved", "auto")
    assert change.incident.resolved_at == T0 + timedelta(hours=2)
    assert on_cleared(None, clear) is None
    assert on_cleared(change.incident, clear) is None


def test_commands_follow_the_table() -> None:
    current = opened()
    alerted = on_command(current, cmd("alerted"), now=T0 + timedelta(seconds=3))
    assert isinstance(alerted, Change)
    assert (alerted.incident.state, alerted.incident.alerted_at) == (
        "alerted",
        T0 + timedelta(seconds=3),
    )
    assert isinstance(on_command(alerted.incident, cmd("alerted"), now=T0), Unchanged)
    acked = on_command(alerted.incident, cmd("acknowledge"), now=T0 + timedelta(minutes=2))
    assert isinstance(acked, Change)
    assert (acked.incident.state, acked.incident.acknowledged_by) == ("acknowledged", "slack:alice")
    assert isinstance(on_command(acked.incident, cmd("acknowledge"), now=T0), Unchanged)
    snoozed = on_command(acked.incident, cmd("snooze", snooze_minutes=30), now=T0)
    assert isinstance(snoozed, Change)
    assert snoozed.incident.state == "acknowledged"
    assert snoozed.incident.snoozed_until == T0 + timedelta(minutes=30)
    resolved = on_command(snoozed.incident, cmd("resolve", note="fixed"), now=T0 + DAY)
    assert isinstance(resolved, Change)
    assert (resolved.incident.resolution, resolved.note) == ("manual", "fixed")
    assert isinstance(on_command(resolved.incident, cmd("resolve"), now=T0), Unchanged)
    refused = on_command(resolved.incident, cmd("snooze", snooze_minutes=5), now=T0)
    assert refused == Refused("invalid_transition", "incident is resolved; cannot snooze it")
    assert on_command(None, cmd("resolve"), now=T0) == Refused("not_found", "no incident i1")


def test_acknowledged_before_the_alert_gives_mtti_zero_not_negative() -> None:
    acked = on_command(opened(), cmd("acknowledge"), now=T0 + timedelta(minutes=1))
    assert isinstance(acked, Change)
    assert acked.incident.alerted_at == acked.incident.acknowledged_at
    late_alert = on_command(acked.incident, cmd("alerted"), now=T0 + timedelta(minutes=2))
    assert isinstance(late_alert, Unchanged)


def test_excess_cost_and_stable_ids() -> None:
    assert excess_cost(100_000_000, 24_000_000, 3600) == 99_000_000
    assert excess_cost(1_000_000, 24_000_000, 3600) == 0  # below the usual pace costs nothing
    assert incident_id("a1") == incident_id("a1") != incident_id("a2")
