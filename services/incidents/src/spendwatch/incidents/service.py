"""Applying anomalies and commands to incidents: one transaction per change, events after commit.

Each change is serialized per fingerprint (an advisory lock), checked against the anomalies the
incident already absorbed (a redelivered anomaly is a no-op), saved with its transition row (which
holds the incident snapshot, the outbox of `incidents.events.v1.*`), committed, then published
with `Nats-Msg-Id` = `<incident id>:<transition id>`. A crash between commit and publish leaves
the row unpublished; `republish` sends it later, and JetStream drops a duplicate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from nats.js import JetStreamContext

from spendwatch.common.events import (
    INCIDENT_EVENTS,
    AnomalyClearedV1,
    AnomalyDetectedV1,
    Incident,
    IncidentCommandReplyV1,
    IncidentCommandV1,
    IncidentEvent,
    utc_now,
)
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import publish_event, subjects
from spendwatch.incidents import metrics, repository
from spendwatch.incidents.lifecycle import (
    Change,
    Refused,
    Unchanged,
    on_cleared,
    on_command,
    on_detected,
)

log = get_logger(__name__)
_IDS = uuid.UUID("0b5f1f7e-3c2d-4b8e-9d61-5a7c2e9f4d10")  # namespace of incident ids
_TEAM = "team"
_BASELINE_DAYS = 28
_DAY_SECONDS = 86_400


def incident_id(anomaly_id: str) -> str:
    """Stable per opening anomaly: a redelivery after a crash opens the same incident."""
    return str(uuid.uuid5(_IDS, anomaly_id))


def excess_cost(spent: int, baseline_per_day: int, seconds: float) -> int:
    """What the subject spent above their usual pace over the incident (micro-dollars, >= 0)."""
    expected = baseline_per_day * seconds / _DAY_SECONDS
    return max(0, round(spent - expected))


class Incidents:
    """The incidents service's core: anomalies and commands in, transitions and events out."""

    def __init__(
        self,
        *,
        db: asyncpg.Pool,
        js: JetStreamContext,
        reopen_window: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = db
        self._js = js
        self._reopen_window = reopen_window
        self._clock = clock

    async def on_anomaly(
        self, anomaly: AnomalyDetectedV1 | AnomalyClearedV1
    ) -> list[IncidentEvent]:
        """Apply one anomaly; returns the events published."""
        now = self._clock()
        async with self._db.acquire() as conn, conn.transaction():
            await repository.lock_fingerprint(conn, fingerprint=anomaly.fingerprint)
            if await repository.absorbed(conn, anomaly_id=anomaly.anomaly_id):
                return []
            current = await repository.unresolved(conn, fingerprint=anomaly.fingerprint)
            if isinstance(anomaly, AnomalyDetectedV1):
                last = None
                if current is None:
                    last = await repository.last_resolved(conn, fingerprint=anomaly.fingerprint)
                change = on_detected(
                    current,
                    last,
                    anomaly,
                    new_id=incident_id(anomaly.anomaly_id),
                    now=now,
                    reopen_window=self._reopen_window,
                )
                kind = "detected"
            else:
                change = on_cleared(current, anomaly)
                kind = "cleared"
            if change is None:
                if current is not None:
                    await repository.absorb(
                        conn,
                        anomaly_id=anomaly.anomaly_id,
                        incident_id=current.incident_id,
                        kind=kind,
                    )
                return []
            event = await self._save(conn, change, now)
            await repository.absorb(
                conn,
                anomaly_id=anomaly.anomaly_id,
                incident_id=change.incident.incident_id,
                kind=kind,
            )
        await self._publish([event])
        return [event]

    async def command(self, command: IncidentCommandV1) -> IncidentCommandReplyV1:
        """Apply a command; the reply says what happened (errors are answers, not exceptions)."""
        try:
            uuid.UUID(command.incident_id)
        except ValueError:
            return IncidentCommandReplyV1(
                ok=False,
                code="invalid_command",
                error=f"not an incident id: {command.incident_id!r}",
            )
        now = self._clock()
        async with self._db.acquire() as conn, conn.transaction():
            current = await repository.get(conn, incident_id=command.incident_id, lock=True)
            result = on_command(current, command, now=now)
            if isinstance(result, Refused):
                return IncidentCommandReplyV1(ok=False, code=result.code, error=result.error)
            if isinstance(result, Unchanged):
                return IncidentCommandReplyV1(ok=True, changed=False, incident=result.incident)
            event = await self._save(conn, result, now)
        await self._publish([event])
        log.info(
            "incident.command",
            incident_id=command.incident_id,
            action=command.action,
            actor=command.actor,
        )
        return IncidentCommandReplyV1(ok=True, changed=True, incident=event.incident)

    async def republish(self) -> int:
        """Publish transitions whose event did not go out (a crash after commit); how many."""
        rows = await repository.unpublished(self._db)
        events = [_event(row["transition_id"], row) for row in rows]
        await self._publish(events)
        return len(events)

    async def _save(self, conn: asyncpg.Connection, change: Change, now: datetime) -> IncidentEvent:
        at = _transition_time(change, now)
        incident = change.incident
        transition_id = await repository.save(conn, change, at=at)
        cost = await self._cost(conn, incident, now)
        await repository.set_cost(conn, incident_id=incident.incident_id, cost_micros=cost)
        metrics.TRANSITIONS.labels(change.transition, incident.detector).inc()
        _observe(change)
        return _event(
            transition_id,
            {
                "incident_id": incident.incident_id,
                "transition": change.transition,
                "from_state": change.from_state,
                "to_state": incident.state,
                "actor": change.actor,
                "note": change.note,
                "at": at,
                "incident": incident.model_dump(mode="json"),
            },
        )

    async def _cost(
        self, conn: asyncpg.Connection, incident: Incident, now: datetime
    ) -> int | None:
        """Spend by the subject from onset to resolution (or now) above their usual pace.

        Team-wide incidents are left without a cost: the team's usual pace is the budget itself.
        """
        if incident.subject == _TEAM:
            return None
        onset = incident.evidence_first_at or incident.detected_at
        end = incident.resolved_at or now
        if end <= onset:
            return 0
        spent = await repository.spend_between(conn, subject=incident.subject, start=onset, end=end)
        usual = await repository.daily_average_before(
            conn, subject=incident.subject, day_before=onset, days=_BASELINE_DAYS
        )
        return excess_cost(spent, usual, (end - onset).total_seconds())

    async def _publish(self, events: list[IncidentEvent]) -> None:
        published = []
        for event in events:
            subject = subjects.incidents_events(event.transition)
            await publish_event(self._js, subject, event, msg_id=event.event_id)
            published.append(int(event.event_id.rsplit(":", 1)[1]))
        if published:
            await repository.mark_published(self._db, transition_ids=published)


def _transition_time(change: Change, now: datetime) -> datetime:
    """When it happened: a clear at its clear time, an opening at detection, else now."""
    incident = change.incident
    if change.transition == "resolved" and incident.resolution == "auto" and incident.resolved_at:
        return incident.resolved_at
    if change.transition == "opened":
        return incident.detected_at
    return now


def _event(transition_id: int, row: dict[str, Any]) -> IncidentEvent:
    snapshot = row["incident"]
    if isinstance(snapshot, str):
        snapshot = json.loads(snapshot)
    return INCIDENT_EVENTS[row["transition"]].model_validate(
        {
            "event_id": f"{row['incident_id']}:{transition_id}",
            "incident_id": str(row["incident_id"]),
            "fingerprint": snapshot["fingerprint"],
            "transition": row["transition"],
            "from_state": row["from_state"],
            "to_state": row["to_state"],
            "at": row["at"],
            "actor": row["actor"],
            "note": row["note"],
            "incident": snapshot,
        }
    )


def _observe(change: Change) -> None:
    """MTT histograms as incidents reach the end of each interval."""
    i = change.incident
    if change.transition == "acknowledged" and i.acknowledged_at and i.alerted_at:
        metrics.MTTI.labels(i.detector).observe((i.acknowledged_at - i.alerted_at).total_seconds())
    if change.transition == "resolved" and i.resolved_at:
        metrics.MTTR.labels(i.detector, i.resolution or "manual").observe(
            (i.resolved_at - i.detected_at).total_seconds()
        )
    if change.transition == "opened" and i.evidence_first_at:
        metrics.MTTD.labels(i.detector).observe(
            (i.detected_at - i.evidence_first_at).total_seconds()
        )
