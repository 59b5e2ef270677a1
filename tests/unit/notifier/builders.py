"""Incident events as the incidents service publishes them, for the notifier's tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendwatch.common.events import INCIDENT_EVENTS, Incident, IncidentEvent
from spendwatch.common.events.incident import State, Transition

DAY = datetime(2026, 11, 21, tzinfo=UTC)
_seq = itertools.count(1)

_TO_STATE: dict[Transition, State] = {
    "opened": "open",
    "updated": "open",
    "escalated": "open",
    "alerted": "alerted",
    "acknowledged": "acknowledged",
    "snoozed": "alerted",
    "resolved": "resolved",
    "reopened": "open",
}


def incident(
    subject: str = "alice@example.com",
    *,
    incident_id: str | None = None,
    severity: str = "warning",
    message: str = "Alice: daily spend spiked to $214 (4.2x her 7-day avg of $51)",
    detected_at: datetime | None = None,
    **fields: Any,
) -> Incident:
    """An open spend-spike incident (any field can be overridden)."""
    iid = incident_id or str(uuid.uuid4())
    base: dict[str, Any] = {
        "incident_id": iid,
        "fingerprint": f"{subject}:spend_spike:{DAY.date()}:{iid[:8]}",
        "detector": "spend_spike",
        "subject": subject,
        "state": "open",
        "severity": severity,
        "message": message,
        "model": "claude-4.6-opus-max",
        "unit": "usd",
        "value": Decimal("214.00"),
        "threshold": Decimal("51.00"),
        "baseline": Decimal("51.00"),
        "window_start": DAY,
        "window_end": DAY + timedelta(days=1),
        "detected_at": detected_at or datetime.now(UTC),
    }
    return Incident.model_validate(base | fields)


def event(
    transition: Transition,
    snapshot: Incident,
    *,
    actor: str = "system",
    at: datetime | None = None,
    note: str | None = None,
    **changes: Any,
) -> IncidentEvent:
    """The event of `transition` carrying `snapshot` moved to its new state (plus `changes`)."""
    to_state = changes.pop("state", _TO_STATE[transition])
    moved = snapshot.model_copy(update={"state": to_state, **changes})
    seq = next(_seq)
    return INCIDENT_EVENTS[transition](
        event_id=f"{snapshot.incident_id}:{seq}",
        incident_id=snapshot.incident_id,
        fingerprint=snapshot.fingerprint,
        transition=transition,
        from_state=snapshot.state,
        to_state=to_state,
        at=at or datetime.now(UTC),
        actor=actor,
        note=note,
        incident=moved,
    )


async def store_incident(db: Any, snapshot: Incident) -> None:
    """The incidents row the delivery log refers to (the incidents service writes it first)."""
    await db.execute(
        """
        INSERT INTO incidents (incident_id, fingerprint, detector, subject, state, severity,
                               message, detected_at)
        VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (incident_id) DO NOTHING
        """,
        snapshot.incident_id,
        snapshot.fingerprint,
        snapshot.detector,
        snapshot.subject,
        snapshot.state,
        snapshot.severity,
        snapshot.message,
        snapshot.detected_at,
    )
