"""The incident lifecycle as pure functions: what an anomaly or a command does to an incident.

    open ──alerted──▶ alerted ──acknowledge──▶ acknowledged ──resolve──▶ resolved
      └──────────────────┴───────────────resolve / clear─────────────────▲  │
    resolved ──the same fingerprint fires within the reopen window──▶ open (reopened)

`snoozed` sets `snoozed_until` and keeps the state; `escalated` and `updated` keep it too. No I/O,
no clock: the caller passes `now` and the incident as stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from spendwatch.common.events import (
    AnomalyClearedV1,
    AnomalyDetectedV1,
    Incident,
    IncidentCommandV1,
)
from spendwatch.common.events.incident import State, Transition

SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}
SYSTEM = "system"
ErrorCode = Literal["not_found", "invalid_transition", "invalid_command"]


@dataclass(frozen=True, slots=True)
class Change:
    """A transition to record and announce: the incident after it, and from which state."""

    transition: Transition
    incident: Incident
    from_state: State | None
    actor: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The command already took effect (resolving a resolved incident): ok, nothing to do."""

    incident: Incident


@dataclass(frozen=True, slots=True)
class Refused:
    """A command that cannot apply, with a sentence for the person who sent it."""

    code: ErrorCode
    error: str


def on_detected(
    current: Incident | None,
    last_resolved: Incident | None,
    anomaly: AnomalyDetectedV1,
    *,
    new_id: str,
    now: datetime,
    reopen_window: timedelta,
) -> Change | None:
    """Open, reopen, escalate or update for an anomaly (info anomalies are digest material)."""
    if anomaly.severity == "info":
        return None
    facts = _facts(anomaly)
    if current is None:
        resolved_at = last_resolved.resolved_at if last_resolved else None
        if last_resolved and resolved_at and anomaly.detected_at - resolved_at <= reopen_window:
            reopened = last_resolved.model_copy(
                update=facts
                | {
                    "state": "open",
                    "alerted_at": None,
                    "acknowledged_at": None,
                    "acknowledged_by": None,
                    "snoozed_until": None,
                    "resolved_at": None,
                    "resolved_by": None,
                    "resolution": None,
                    "reopen_count": last_resolved.reopen_count + 1,
                }
            )
            return Change("reopened", reopened, "resolved", SYSTEM)
        opened = Incident(
            incident_id=new_id,
            fingerprint=anomaly.fingerprint,
            detector=anomaly.detector,
            subject=anomaly.subject,
            state="open",
            evidence_first_at=anomaly.evidence_first_at,
            detected_at=anomaly.detected_at,
            **facts,
        )
        return Change("opened", opened, None, SYSTEM)
    if current.last_anomaly_id == anomaly.anomaly_id:
        return None
    worse = SEVERITY_RANK[anomaly.severity] > SEVERITY_RANK[current.severity]
    if not worse and anomaly.value == current.value and anomaly.message == current.message:
        return None
    if not worse:  # keep the worst severity seen; the numbers follow the latest anomaly
        facts["severity"] = current.severity
    updated = current.model_copy(update=facts)
    return Change("escalated" if worse else "updated", updated, current.state, SYSTEM)


def on_cleared(current: Incident | None, cleared: AnomalyClearedV1) -> Change | None:
    """Auto-resolve: the detector says the condition cleared for its window."""
    if current is None or current.state == "resolved":
        return None
    resolved = current.model_copy(
        update={
            "state": "resolved",
            "resolved_at": cleared.cleared_at,
            "resolved_by": SYSTEM,
            "resolution": "auto",
        }
    )
    return Change("resolved", resolved, current.state, SYSTEM, note=cleared.message)


def on_command(
    current: Incident | None, command: IncidentCommandV1, *, now: datetime
) -> Change | Unchanged | Refused:
    """Apply a person's (or the notifier's) command."""
    if current is None:
        return Refused("not_found", f"no incident {command.incident_id}")
    state, actor, note = current.state, command.actor, command.note
    if command.action == "alerted":
        if current.alerted_at is not None:
            return Unchanged(current)
        if state == "open":
            return Change("alerted", _with(current, state="alerted", alerted_at=now), state, actor)
        # Acknowledged (or resolved) before the notifier reported back: MTTI is 0, not negative.
        at = min(now, current.acknowledged_at or now)
        return Change("alerted", _with(current, alerted_at=at), state, actor)
    if command.action == "resolve":
        if state == "resolved":
            return Unchanged(current)
        resolved = _with(
            current, state="resolved", resolved_at=now, resolved_by=actor, resolution="manual"
        )
        return Change("resolved", resolved, state, actor, note)
    if state == "resolved":
        return Refused("invalid_transition", f"incident is resolved; cannot {command.action} it")
    if command.action == "acknowledge":
        if state == "acknowledged":
            return Unchanged(current)
        acknowledged = _with(
            current,
            state="acknowledged",
            acknowledged_at=now,
            acknowledged_by=actor,
            alerted_at=current.alerted_at or now,  # acked in the UI before any alert went out
        )
        return Change("acknowledged", acknowledged, state, actor, note)
    if command.snooze_minutes is None:
        return Refused("invalid_command", "snooze needs snooze_minutes")
    until = now + timedelta(minutes=command.snooze_minutes)
    return Change("snoozed", _with(current, snoozed_until=until), state, actor, note)


def _facts(anomaly: AnomalyDetectedV1) -> dict[str, object]:
    """What an incident takes from its latest anomaly."""
    return {
        "severity": anomaly.severity,
        "message": anomaly.message,
        "model": anomaly.model,
        "unit": anomaly.unit,
        "value": anomaly.value,
        "threshold": anomaly.threshold,
        "baseline": anomaly.baseline,
        "window_start": anomaly.window_start,
        "window_end": anomaly.window_end,
        "last_anomaly_id": anomaly.anomaly_id,
    }


def _with(incident: Incident, **changes: object) -> Incident:
    return incident.model_copy(update=changes)
