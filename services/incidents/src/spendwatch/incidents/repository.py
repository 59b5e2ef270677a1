"""SQL the incidents service owns: incidents, their transitions (the outbox of incident events),
the anomalies each absorbed, and the numbers behind MTTD/MTTI/MTTR and the cost of an incident."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from spendwatch.common.events import Incident
from spendwatch.incidents.lifecycle import Change

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool

_COLUMNS = (
    "incident_id",
    "fingerprint",
    "detector",
    "subject",
    "state",
    "severity",
    "message",
    "model",
    "unit",
    "value",
    "threshold",
    "baseline",
    "window_start",
    "window_end",
    "last_anomaly_id",
    "evidence_first_at",
    "detected_at",
    "alerted_at",
    "acknowledged_at",
    "acknowledged_by",
    "snoozed_until",
    "resolved_at",
    "resolved_by",
    "resolution",
    "reopen_count",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM incidents"


def _incident(row: asyncpg.Record) -> Incident:
    data = dict(row)
    data["incident_id"] = str(data["incident_id"])
    if data["last_anomaly_id"] is not None:
        data["last_anomaly_id"] = str(data["last_anomaly_id"])
    return Incident.model_validate(data)


async def unresolved(conn: Executor, *, fingerprint: str, lock: bool = False) -> Incident | None:
    """The incident of this fingerprint that is not resolved (at most one, by index)."""
    row = await conn.fetchrow(
        f"{_SELECT} WHERE fingerprint = $1 AND state <> 'resolved'"
        + (" FOR UPDATE" if lock else ""),
        fingerprint,
    )
    return _incident(row) if row else None


async def last_resolved(conn: Executor, *, fingerprint: str, lock: bool = False) -> Incident | None:
    """The most recently resolved incident of this fingerprint (a candidate for reopening)."""
    row = await conn.fetchrow(
        f"{_SELECT} WHERE fingerprint = $1 AND state = 'resolved'"
        " ORDER BY resolved_at DESC LIMIT 1" + (" FOR UPDATE" if lock else ""),
        fingerprint,
    )
    return _incident(row) if row else None


async def get(conn: Executor, *, incident_id: str, lock: bool = False) -> Incident | None:
    """One incident by id."""
    row = await conn.fetchrow(
        f"{_SELECT} WHERE incident_id = $1" + (" FOR UPDATE" if lock else ""), incident_id
    )
    return _incident(row) if row else None


async def lock_fingerprint(conn: asyncpg.Connection, *, fingerprint: str) -> None:
    """Serialize work on one fingerprint across replicas until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('incident:' || $1))", fingerprint)


async def absorbed(conn: Executor, *, anomaly_id: str) -> bool:
    """Whether this anomaly was already applied to an incident."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM incident_anomalies WHERE anomaly_id = $1)", anomaly_id
    )
    return found


async def absorb(conn: Executor, *, anomaly_id: str, incident_id: str, kind: str) -> None:
    """Remember that this anomaly was applied (or deliberately ignored) for this incident."""
    await conn.execute(
        "INSERT INTO incident_anomalies (anomaly_id, incident_id, kind) VALUES ($1, $2, $3)"
        " ON CONFLICT (anomaly_id) DO NOTHING",
        anomaly_id,
        incident_id,
        kind,
    )


async def save(conn: asyncpg.Connection, change: Change, *, at: datetime) -> int:
    """Upsert the incident as the change leaves it and record the transition; its row id."""
    incident = change.incident.model_dump()
    values = [incident[c] for c in _COLUMNS]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "incident_id")
    placeholders = ", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 1))
    await conn.execute(
        f"INSERT INTO incidents ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
        f" ON CONFLICT (incident_id) DO UPDATE SET {updates}, updated_at = now()",
        *values,
    )
    transition_id: int = await conn.fetchval(
        "INSERT INTO incident_transitions (incident_id, transition, from_state, to_state, actor,"
        " note, at, incident) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING transition_id",
        change.incident.incident_id,
        change.transition,
        change.from_state,
        change.incident.state,
        change.actor,
        change.note,
        at,
        change.incident.model_dump(mode="json"),
    )
    return transition_id


async def set_cost(conn: Executor, *, incident_id: str, cost_micros: int | None) -> None:
    """Store the incident's cost so far."""
    await conn.execute(
        "UPDATE incidents SET cost_micros = $2 WHERE incident_id = $1", incident_id, cost_micros
    )


async def unpublished(conn: Executor, *, limit: int = 500) -> list[dict[str, Any]]:
    """Transitions not yet announced, oldest first, with their incident as it is now."""
    rows = await conn.fetch(
        """
        SELECT transition_id, incident_id, transition, from_state, to_state, actor, note, at,
               incident
        FROM incident_transitions WHERE published_at IS NULL
        ORDER BY transition_id LIMIT $1
        """,
        limit,
    )
    return [dict(r) for r in rows]


async def mark_published(conn: Executor, *, transition_ids: list[int]) -> None:
    """These transitions' events are on the bus."""
    await conn.execute(
        "UPDATE incident_transitions SET published_at = now()"
        " WHERE transition_id = ANY($1::bigint[])",
        transition_ids,
    )


async def spend_between(
    conn: Executor, *, subject: str | None, start: datetime, end: datetime
) -> int:
    """A user's (or, with None, the team's) spend in [start, end), micro-dollars."""
    total: int = await conn.fetchval(
        "SELECT coalesce(sum(cost_micros), 0)::bigint FROM usage_events"
        " WHERE ($1::text IS NULL OR user_email = $1) AND occurred_at >= $2 AND occurred_at < $3",
        subject,
        start,
        end,
    )
    return total


async def daily_average_before(
    conn: Executor, *, subject: str | None, day_before: datetime, days: int
) -> int:
    """Average spend per day over the `days` whole days before `day_before` (gaps are $0)."""
    total: int = await conn.fetchval(
        "SELECT coalesce(sum(cost_micros), 0)::bigint FROM usage_daily_user_model"
        " WHERE ($1::text IS NULL OR user_email = $1)"
        " AND day >= ($2::timestamptz - make_interval(days => $3))::date AND day < $2::date",
        subject,
        day_before,
        days,
    )
    return total // days
