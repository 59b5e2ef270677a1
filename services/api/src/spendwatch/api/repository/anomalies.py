"""The SQL of /api/anomalies: anomalies with the incident each one went into."""

from __future__ import annotations

from datetime import datetime

import asyncpg

ANOMALY_COLUMNS = """
    a.anomaly_id, a.fingerprint, a.kind, a.detector, a.severity, a.subject, a.metric, a.unit,
    a.value, a.threshold, a.baseline, a.window_start, a.window_end, a.model, a.message,
    a.evidence_first_at, a.detected_at, i.incident_id, i.state AS incident_state
"""
ANOMALY_FROM = """
    anomalies a
    LEFT JOIN incident_anomalies ia ON ia.anomaly_id = a.anomaly_id
    LEFT JOIN incidents i ON i.incident_id = ia.incident_id
"""


async def list_anomalies(
    pool: asyncpg.Pool,
    *,
    since: datetime,
    detector: str | None,
    severity: str | None,
    subject: str | None,
    kind: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` anomalies detected since `since`, newest first, after the keyset `after`."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"""
        SELECT {ANOMALY_COLUMNS} FROM {ANOMALY_FROM}
        WHERE a.detected_at >= $1
          AND ($2::text IS NULL OR a.detector = $2)
          AND ($3::text IS NULL OR a.severity = $3)
          AND ($4::text IS NULL OR a.subject = $4)
          AND ($5::text IS NULL OR a.kind = $5)
          AND ($6::timestamptz IS NULL OR (a.detected_at, a.anomaly_id) < ($6, $7::uuid))
        ORDER BY a.detected_at DESC, a.anomaly_id DESC
        LIMIT $8
        """,
        since,
        detector,
        severity,
        subject,
        kind,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


async def latest_for_subject(
    pool: asyncpg.Pool, *, subject: str, limit: int
) -> list[asyncpg.Record]:
    """The newest `limit` anomalies about `subject`."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"""
        SELECT {ANOMALY_COLUMNS} FROM {ANOMALY_FROM}
        WHERE a.subject = $1
        ORDER BY a.detected_at DESC, a.anomaly_id DESC
        LIMIT $2
        """,
        subject,
        limit,
    )
    return rows
