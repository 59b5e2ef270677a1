"""SQL the detector owns: usage read from the rollup (raw events only for one user's recent
requests), thresholds, the billing-cycle anchor, and the anomalies it recorded."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from spendwatch.common.events import AnomalyClearedV1, AnomalyDetectedV1
from spendwatch.common.thresholds import SETTINGS_KEY
from spendwatch.detector.burst_rules import Request
from spendwatch.detector.cycle_rules import CycleSpend
from spendwatch.detector.findings import SEVERITY_RANK
from spendwatch.detector.rules import ModelDay, UserDay

MICROS = Decimal(1_000_000)

# Display names: the latest roster entry per e-mail address.
_NAMES = """
SELECT DISTINCT ON (user_email) user_email, name FROM members
WHERE user_email = ANY($1::text[]) AND name IS NOT NULL ORDER BY user_email, captured_at DESC
"""

# Per user and day: spend, requests, tokens, the earliest event and the model with the most spend.
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


def _user_day(row: asyncpg.Record, names: dict[str, str]) -> UserDay:
    return UserDay(
        user_email=row["user_email"],
        day=row["day"],
        spend=Decimal(row["micros"]) / MICROS,
        requests=row["requests"],
        first_event_at=row["first_event_at"],
        top_model=row["top_model"],
        name=names.get(row["user_email"]),
        tokens=row["tokens"],
    )


async def names(db: asyncpg.Pool, users: Sequence[str]) -> dict[str, str]:
    """Display names of these users, where the roster has one."""
    return {r["user_email"]: r["name"] for r in await db.fetch(_NAMES, list(users))}


async def thresholds(db: asyncpg.Pool) -> dict[str, Any] | None:
    """The stored detection document (None: defaults)."""
    value: dict[str, Any] | None = await db.fetchval(
        "SELECT value FROM settings WHERE key = $1", SETTINGS_KEY
    )
    return value


async def user_days(
    db: asyncpg.Pool, *, users: Sequence[str], first: date, last: date
) -> list[UserDay]:
    """These users' days with usage from `first` to `last` (inclusive)."""
    rows = await db.fetch(
        _USER_DAYS.format(where="user_email = ANY($1::text[]) AND day BETWEEN $2 AND $3"),
        list(users),
        first,
        last,
    )
    named = await names(db, users)
    return [_user_day(row, named) for row in rows]


async def population(db: asyncpg.Pool, *, day: date) -> list[UserDay]:
    """Everyone with spend on `day`."""
    rows = [r for r in await db.fetch(_USER_DAYS.format(where="day = $1"), day) if r["micros"] > 0]
    named = await names(db, [r["user_email"] for r in rows])
    return [_user_day(row, named) for row in rows]


async def model_days(db: asyncpg.Pool, *, keys: Sequence[tuple[str, date]]) -> list[ModelDay]:
    """Per-model usage of these (user, day) keys."""
    rows = await db.fetch(
        """
        SELECT r.user_email, r.day, r.model, sum(r.cost_micros)::bigint AS micros,
               sum(r.events)::bigint AS requests, min(r.first_event_at) AS first_event_at
        FROM usage_daily_user_model AS r
        JOIN unnest($1::text[], $2::date[]) AS k(user_email, day)
          ON r.user_email = k.user_email AND r.day = k.day
        GROUP BY r.user_email, r.day, r.model
        """,
        [user for user, _ in keys],
        [day for _, day in keys],
    )
    named = await names(db, sorted({user for user, _ in keys}))
    return [
        ModelDay(
            user_email=r["user_email"],
            day=r["day"],
            model=r["model"],
            spend=Decimal(r["micros"]) / MICROS,
            requests=r["requests"],
            first_event_at=r["first_event_at"],
            name=named.get(r["user_email"]),
        )
        for r in rows
    ]


async def team_top_model(db: asyncpg.Pool, *, day: date) -> str | None:
    """The model with the most requests across the team that day."""
    model: str | None = await db.fetchval(
        "SELECT model FROM usage_daily_user_model WHERE day = $1 GROUP BY model"
        " ORDER BY sum(events) DESC, model LIMIT 1",
        day,
    )
    return model


async def requests(
    db: asyncpg.Pool,
    *,
    users: Sequence[str],
    start: datetime,
    end: datetime,
    headless_only: bool = False,
) -> dict[str, list[Request]]:
    """Each user's requests (or only the headless ones) in [start, end), oldest first."""
    rows = await db.fetch(
        """
        SELECT user_email, occurred_at, cost_micros, model, is_headless,
               input_tokens + output_tokens + cache_read_tokens + cache_write_tokens AS tokens
        FROM usage_events
        WHERE user_email = ANY($1::text[]) AND occurred_at >= $2 AND occurred_at < $3
          AND (is_headless OR NOT $4)
        ORDER BY user_email, occurred_at, event_id
        """,
        list(users),
        start,
        end,
        headless_only,
    )
    found: dict[str, list[Request]] = defaultdict(list)
    for r in rows:
        found[r["user_email"]].append(
            Request(
                at=r["occurred_at"],
                spend=Decimal(r["cost_micros"]) / MICROS,
                tokens=r["tokens"],
                headless=r["is_headless"],
                model=r["model"],
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Busiest:
    """A user's largest trailing-window totals (each on its own) and their headless span."""

    spend: Decimal
    tokens: int
    requests: int
    headless_hours: Decimal


async def busiest(
    db: asyncpg.Pool,
    *,
    users: Sequence[str],
    start: datetime,
    since: datetime,
    end: datetime,
    window: timedelta,
) -> dict[str, Busiest]:
    """Per user: the largest spend, tokens and request count of the trailing windows ending at
    requests from `since`, and the time between the day's first and last headless request (an
    upper bound of any headless run). Summed in the database, so that only users over a limit
    need their requests read."""
    rows = await db.fetch(
        """
        WITH recent AS (
            SELECT user_email, occurred_at,
                   sum(cost_micros) OVER w AS micros,
                   sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens)
                       OVER w AS tokens,
                   count(*) OVER w AS requests
            FROM usage_events
            WHERE user_email = ANY($1::text[]) AND occurred_at >= $3::timestamptz - $5::interval
              AND occurred_at < $4
            WINDOW w AS (PARTITION BY user_email ORDER BY occurred_at
                         RANGE BETWEEN $5::interval PRECEDING AND CURRENT ROW EXCLUDE NO OTHERS)
        ), windows AS (
            SELECT user_email, max(micros) AS micros, max(tokens) AS tokens,
                   max(requests) AS requests
            FROM recent WHERE occurred_at >= $3::timestamptz GROUP BY user_email
        ), headless AS (
            SELECT user_email, extract(epoch FROM max(occurred_at) - min(occurred_at)) AS span
            FROM usage_events
            WHERE user_email = ANY($1::text[]) AND occurred_at >= $2 AND occurred_at < $4
              AND is_headless
            GROUP BY user_email
        )
        SELECT coalesce(w.user_email, h.user_email) AS user_email, w.micros, w.tokens,
               w.requests, h.span
        FROM windows AS w FULL JOIN headless AS h USING (user_email)
        """,
        list(users),
        start,
        since,
        end,
        window,
    )
    return {
        r["user_email"]: Busiest(
            spend=Decimal(r["micros"] or 0) / MICROS,
            tokens=int(r["tokens"] or 0),
            requests=int(r["requests"] or 0),
            headless_hours=Decimal(r["span"] or 0) / 3600,
        )
        for r in rows
    }


async def cycle_anchor(db: asyncpg.Pool) -> date | None:
    """The date of the latest billing-cycle start a provider reported (UTC, as Cursor dates it)."""
    found: datetime | None = await db.fetchval("SELECT max(cycle_start) FROM spend_snapshots")
    return found.date() if found else None


async def cycle_spends(db: asyncpg.Pool, *, first: date, end: date) -> list[CycleSpend]:
    """Everyone's spend on days [first, end), with what went past the included plan."""
    rows = await db.fetch(
        """
        SELECT user_email, sum(cost_micros)::bigint AS micros,
               sum(usage_based_micros)::bigint AS on_demand,
               sum(usage_based_events)::bigint AS on_demand_requests,
               min(day) FILTER (WHERE usage_based_events > 0) AS first_on_demand_day,
               (array_agg(model ORDER BY cost_micros DESC, model))[1] AS top_model
        FROM usage_daily_user_model
        WHERE day >= $1 AND day < $2
        GROUP BY user_email
        """,
        first,
        end,
    )
    named = await names(db, [r["user_email"] for r in rows])
    return [
        CycleSpend(
            user_email=r["user_email"],
            spend=Decimal(r["micros"]) / MICROS,
            on_demand=Decimal(r["on_demand"]) / MICROS,
            on_demand_requests=r["on_demand_requests"],
            first_on_demand_day=r["first_on_demand_day"],
            top_model=r["top_model"],
            name=named.get(r["user_email"]),
        )
        for r in rows
    ]


async def crossed_at(
    db: asyncpg.Pool,
    *,
    user: str | None,
    start: datetime,
    end: datetime,
    amount_micros: int,
    on_demand_only: bool = False,
) -> datetime | None:
    """When the running total of a user's (or, with None, the team's) spend from `start` first
    went over `amount_micros`: the event that made a cumulative condition true."""
    found: datetime | None = await db.fetchval(
        """
        SELECT occurred_at FROM (
            SELECT occurred_at, sum(cost_micros) OVER (ORDER BY occurred_at, event_id) AS total
            FROM usage_events
            WHERE ($1::text IS NULL OR user_email = $1) AND occurred_at >= $2 AND occurred_at < $3
              AND (NOT $5 OR kind = 'usage_based')
        ) AS running
        WHERE total > $4 ORDER BY occurred_at LIMIT 1
        """,
        user,
        start,
        end,
        amount_micros,
        on_demand_only,
    )
    return found


async def day_totals(db: asyncpg.Pool, *, first: date, end: date) -> list[tuple[date, int]]:
    """The team's spend per day on days [first, end) (micro-dollars)."""
    rows = await db.fetch(
        "SELECT day, sum(cost_micros)::bigint AS micros FROM usage_daily_user_model"
        " WHERE day >= $1 AND day < $2 GROUP BY day ORDER BY day",
        first,
        end,
    )
    return [(r["day"], r["micros"]) for r in rows]


# --- anomalies ---------------------------------------------------------------------------------


async def earlier_windows(
    db: asyncpg.Pool, *, subjects: Sequence[str], detectors: Sequence[str], since: datetime
) -> dict[tuple[str, str], list[datetime]]:
    """Window starts of the detections of these subjects and detectors from `since` on."""
    rows = await db.fetch(
        "SELECT DISTINCT subject, detector, window_start FROM anomalies"
        " WHERE kind = 'detected' AND subject = ANY($1::text[]) AND detector = ANY($2::text[])"
        " AND window_start >= $3",
        list(subjects),
        list(detectors),
        since,
    )
    found: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for r in rows:
        found[r["subject"], r["detector"]].append(r["window_start"])
    return found


# SEVERITY_RANK in SQL (our own constants, not input).
_SEVERITY_RANK = (
    "CASE a.severity " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in SEVERITY_RANK.items()) + " END"
)


@dataclass(frozen=True, slots=True)
class FingerprintState:
    """How far a fingerprint got: `generation` = how often it cleared; `open_rank` = the worst
    severity reported since the last clear (None: nothing open)."""

    generation: int
    open_rank: int | None


async def states(db: asyncpg.Pool, *, fingerprints: Sequence[str]) -> dict[str, FingerprintState]:
    """The state of each fingerprint that has a record."""
    rows = await db.fetch(
        f"""
        WITH cleared AS (
            SELECT fingerprint, count(*) AS n, max(detected_at) AS last FROM anomalies
            WHERE fingerprint = ANY($1::text[]) AND kind = 'cleared' GROUP BY fingerprint
        )
        SELECT a.fingerprint, coalesce(max(c.n), 0) AS generation,
               max({_SEVERITY_RANK}) FILTER (
                   WHERE a.kind = 'detected' AND (c.last IS NULL OR a.detected_at > c.last)
               ) AS open_rank
        FROM anomalies AS a LEFT JOIN cleared AS c USING (fingerprint)
        WHERE a.fingerprint = ANY($1::text[])
        GROUP BY a.fingerprint
        """,
        list(fingerprints),
    )
    return {r["fingerprint"]: FingerprintState(r["generation"], r["open_rank"]) for r in rows}


async def open_anomalies(db: asyncpg.Pool) -> list[AnomalyDetectedV1]:
    """The latest detection of every fingerprint that has not cleared since."""
    rows = await db.fetch(
        """
        SELECT DISTINCT ON (fingerprint) * FROM anomalies
        ORDER BY fingerprint, detected_at DESC, kind DESC
        """
    )
    return [
        AnomalyDetectedV1.model_validate({**dict(r), "anomaly_id": str(r["anomaly_id"])})
        for r in rows
        if r["kind"] == "detected"
    ]


_INSERT = """
INSERT INTO anomalies (anomaly_id, fingerprint, kind, detector, severity, subject, metric, unit,
    value, threshold, baseline, window_start, window_end, model, message, evidence_first_at,
    detected_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (anomaly_id) DO NOTHING
"""


async def record(db: asyncpg.Pool, anomaly: AnomalyDetectedV1) -> None:
    """Store a published anomaly; a redelivered one (same id) is ignored."""
    await db.execute(
        _INSERT,
        anomaly.anomaly_id,
        anomaly.fingerprint,
        "detected",
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


async def record_cleared(db: asyncpg.Pool, cleared: AnomalyClearedV1, *, severity: str) -> None:
    """Store a published clear (its time in `detected_at`, the last severity kept)."""
    await db.execute(
        _INSERT,
        cleared.anomaly_id,
        cleared.fingerprint,
        "cleared",
        cleared.detector,
        severity,
        cleared.subject,
        cleared.metric,
        cleared.unit,
        cleared.value,
        cleared.threshold,
        cleared.baseline,
        cleared.window_start,
        cleared.window_end,
        cleared.model,
        cleared.message,
        None,
        cleared.cleared_at,
    )
