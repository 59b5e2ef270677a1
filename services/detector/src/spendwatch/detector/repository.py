"""SQL the detector owns: reading usage from the rollup, thresholds, and recording anomalies."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from spendwatch.common.events import AnomalyDetectedV1
from spendwatch.detector.rules import SEVERITY_RANK, UserDay
from spendwatch.detector.thresholds import SETTINGS_KEY

MICROS = Decimal(1_000_000)

# Per user and day: spend, requests, the earliest event and the model with the most spend.
_USER_DAYS = """
SELECT user_email, day, sum(cost_micros)::bigint AS micros, sum(events)::bigint AS requests,
       sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens)::bigint
           AS tokens,
       min(first_event_at) AS first_event_at,
       (array_agg(model ORDER BY cost_micros DESC, model))[1] AS top_model
FROM usage_daily_user_model
WHERE {where}
GROUP BY user_email, day
"""


def _user_day(row: asyncpg.Record) -> UserDay:
    return UserDay(
        user_email=row["user_email"],
        day=row["day"],
        spend=Decimal(row["micros"]) / MICROS,
        requests=row["requests"],
        first_event_at=row["first_event_at"],
        top_model=row["top_model"],
        tokens=row["tokens"],
    )


async def thresholds(db: asyncpg.Pool) -> dict[str, Any] | None:
    """The stored detection document (None: defaults)."""
    value: dict[str, Any] | None = await db.fetchval(
        "SELECT value FROM settings WHERE key = $1", SETTINGS_KEY
    )
    return value


async def user_history(
    db: asyncpg.Pool, *, user_email: str, day: date, lookback_days: int
) -> list[UserDay]:
    """The user's days with usage from `lookback_days` before `day` up to and including it."""
    rows = await db.fetch(
        _USER_DAYS.format(where="user_email = $1 AND day BETWEEN $2 AND $3"),
        user_email,
        day - timedelta(days=lookback_days),
        day,
    )
    return [_user_day(row) for row in rows]


async def active_users(db: asyncpg.Pool, *, day: date) -> list[UserDay]:
    """Everyone with spend on `day`."""
    rows = await db.fetch(_USER_DAYS.format(where="day = $1"), day)
    return [_user_day(row) for row in rows if row["micros"] > 0]


# SEVERITY_RANK in SQL (our own constants, not input).
_SEVERITY_RANK = (
    "CASE severity " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in SEVERITY_RANK.items()) + " END"
)


async def already_reported(db: asyncpg.Pool, *, fingerprint: str, severity: str) -> bool:
    """An anomaly of this fingerprint at this severity or worse is on record."""
    found: bool = await db.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM anomalies WHERE fingerprint = $1 AND kind = 'detected'"
        f" AND {_SEVERITY_RANK} >= $2)",
        fingerprint,
        SEVERITY_RANK[severity],
    )
    return found


async def record(db: asyncpg.Pool, anomaly: AnomalyDetectedV1) -> None:
    """Store a published anomaly; a redelivered one (same id) is ignored."""
    await db.execute(
        """
        INSERT INTO anomalies (anomaly_id, fingerprint, kind, detector, severity, subject, metric,
            unit, value, threshold, baseline, window_start, window_end, model, message,
            evidence_first_at, detected_at)
        VALUES ($1, $2, 'detected', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
        ON CONFLICT (anomaly_id) DO NOTHING
        """,
        anomaly.anomaly_id,
        anomaly.fingerprint,
        anomaly.detector,
        anomaly.severity,
        anomaly.subject,
        anomaly.metric,
        anomaly.unit,
        anomaly.value,
        anomaly.threshold,
        anomaly.baseline,
        anomaly.window_start,
        anomaly.window_end,
        anomaly.model,
        anomaly.message,
        anomaly.evidence_first_at,
        anomaly.detected_at,
    )
