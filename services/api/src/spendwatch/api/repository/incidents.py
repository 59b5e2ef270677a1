"""The SQL of /api/incidents: incidents, their timelines and MTT metrics."""

from __future__ import annotations

from datetime import datetime

import asyncpg

INCIDENT_COLUMNS = """
    incident_id, fingerprint, detector, subject, state, severity, message, model, value,
    threshold, baseline, cost_micros, window_start, window_end, evidence_first_at, detected_at,
    alerted_at, acknowledged_at, acknowledged_by, snoozed_until, resolved_at, resolved_by,
    resolution, reopen_count
"""


async def list_incidents(
    pool: asyncpg.Pool,
    *,
    state: str | None,
    detector: str | None,
    severity: str | None = None,
    subject: str | None = None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` incidents, newest first, strictly after the keyset `after`."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"""
        SELECT {INCIDENT_COLUMNS} FROM incidents
        WHERE ($1::text IS NULL OR state = $1)
          AND ($2::text IS NULL OR detector = $2)
          AND ($3::timestamptz IS NULL OR (detected_at, incident_id) < ($3, $4::uuid))
          AND ($6::text IS NULL OR severity = $6)
          AND ($7::text IS NULL OR subject = $7)
        ORDER BY detected_at DESC, incident_id DESC
        LIMIT $5
        """,
        state,
        detector,
        after[0] if after else None,
        after[1] if after else None,
        limit,
        severity,
        subject,
    )
    return rows


async def get_incident(pool: asyncpg.Pool, *, incident_id: str) -> asyncpg.Record | None:
    """One incident, or None."""
    return await pool.fetchrow(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE incident_id = $1::uuid",
        incident_id,
    )


async def get_transitions(pool: asyncpg.Pool, *, incident_id: str) -> list[asyncpg.Record]:
    """The incident's timeline, oldest first."""
    rows: list[asyncpg.Record] = await pool.fetch(
        """
        SELECT transition_id, transition, from_state, to_state, actor, note, at
        FROM incident_transitions WHERE incident_id = $1::uuid
        ORDER BY at, transition_id
        """,
        incident_id,
    )
    return rows


async def get_metrics(pool: asyncpg.Pool, *, incident_id: str) -> asyncpg.Record | None:
    """The incident's row of the incident_metrics view."""
    return await pool.fetchrow(
        """
        SELECT mttd_seconds, mtti_seconds, mttr_seconds, cost_micros
        FROM incident_metrics WHERE incident_id = $1::uuid
        """,
        incident_id,
    )


async def mtt_summary(
    pool: asyncpg.Pool, *, since: datetime, until: datetime
) -> list[asyncpg.Record]:
    """incident_mtt_summary(since, until): per detector, then the overall row (detector null)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM incident_mtt_summary($1, $2) ORDER BY detector NULLS LAST",
        since,
        until,
    )
    return rows
