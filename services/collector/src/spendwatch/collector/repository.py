"""SQL owned by the sink: idempotent inserts of usage rows, the rollup, snapshots, the outbox."""

from __future__ import annotations

from typing import Any

import asyncpg

from spendwatch.collector.batch import TouchedKey
from spendwatch.common.events import (
    DailyUsageRow,
    DailyUsageSnapshotV1,
    RosterSnapshotV1,
    SpendSnapshotV1,
    UsageRecordedV1,
)

EVENT_COLUMNS = (
    "provider",
    "event_id",
    "occurred_at",
    "account",
    "user_email",
    "user_id",
    "model",
    "kind",
    "max_mode",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_micros",
    "request_units",
    "is_headless",
    "ingested_at",
)

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS sink_stage
    (LIKE usage_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""

# Insert what is new, fold exactly those rows into the daily rollup, and report the touched
# (provider, user, day) keys: one round trip, one transaction with the caller's other writes.
_INSERT_AND_ROLL_UP = """
WITH new AS (
    INSERT INTO usage_events AS e
    SELECT * FROM sink_stage
    ON CONFLICT (provider, event_id, occurred_at) DO NOTHING
    RETURNING e.provider, e.user_email, e.model, e.occurred_at, e.cost_micros, e.input_tokens,
              e.output_tokens, e.cache_read_tokens, e.cache_write_tokens, e.request_units,
              e.max_mode, e.is_headless, e.kind,
              (e.occurred_at AT TIME ZONE $1)::date AS day
), rolled AS (
    INSERT INTO usage_daily_user_model AS r (
        day, user_email, provider, model, events, cost_micros, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, request_units, max_mode_events, headless_events,
        usage_based_events, usage_based_micros, first_event_at, last_event_at)
    SELECT day, user_email, provider, model, count(*), sum(cost_micros), sum(input_tokens),
           sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(request_units),
           count(*) FILTER (WHERE max_mode), count(*) FILTER (WHERE is_headless),
           count(*) FILTER (WHERE kind = 'usage_based'),
           coalesce(sum(cost_micros) FILTER (WHERE kind = 'usage_based'), 0),
           min(occurred_at), max(occurred_at)
    FROM new
    GROUP BY day, user_email, provider, model
    ORDER BY day, user_email, provider, model
    ON CONFLICT (day, user_email, provider, model) DO UPDATE SET
        events = r.events + EXCLUDED.events,
        cost_micros = r.cost_micros + EXCLUDED.cost_micros,
        input_tokens = r.input_tokens + EXCLUDED.input_tokens,
        output_tokens = r.output_tokens + EXCLUDED.output_tokens,
        cache_read_tokens = r.cache_read_tokens + EXCLUDED.cache_read_tokens,
        cache_write_tokens = r.cache_write_tokens + EXCLUDED.cache_write_tokens,
        request_units = r.request_units + EXCLUDED.request_units,
        max_mode_events = r.max_mode_events + EXCLUDED.max_mode_events,
        headless_events = r.headless_events + EXCLUDED.headless_events,
        usage_based_events = r.usage_based_events + EXCLUDED.usage_based_events,
        usage_based_micros = r.usage_based_micros + EXCLUDED.usage_based_micros,
        first_event_at = least(r.first_event_at, EXCLUDED.first_event_at),
        last_event_at = greatest(r.last_event_at, EXCLUDED.last_event_at)
    RETURNING 1
)
SELECT provider, user_email, day, min(occurred_at) AS earliest, count(*) AS events,
       sum(cost_micros)::bigint AS cost_micros
FROM new
GROUP BY provider, user_email, day
"""


def _event_record(event: UsageRecordedV1) -> tuple[Any, ...]:
    return (
        event.provider,
        event.event_id,
        event.occurred_at,
        event.account,
        event.user_email,
        event.user_id,
        event.model,
        event.kind,
        event.max_mode,
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.cost_micros,
        event.request_units,
        event.is_headless,
        event.ingested_at,
    )


async def prepare_stage(conn: asyncpg.Connection) -> None:
    """Create this connection's staging table (once per connection)."""
    await conn.execute(_STAGE)


async def insert_usage_events(
    conn: asyncpg.Connection, *, events: list[UsageRecordedV1], timezone: str
) -> list[TouchedKey]:
    """COPY events into staging, insert the new ones, roll them up; returns the touched keys."""
    await conn.copy_records_to_table(
        "sink_stage", records=[_event_record(e) for e in events], columns=EVENT_COLUMNS
    )
    rows = await conn.fetch(_INSERT_AND_ROLL_UP, timezone)
    return [TouchedKey(**dict(row)) for row in rows]


async def insert_outbox(
    conn: asyncpg.Connection, *, commit_id: str, provider: str, payload: dict[str, Any]
) -> None:
    """Record a `usage.committed` notice to publish after commit."""
    await conn.execute(
        "INSERT INTO usage_commits (commit_id, provider, payload) VALUES ($1, $2, $3)",
        commit_id,
        provider,
        payload,
    )


async def mark_published(conn: asyncpg.Connection | asyncpg.Pool, *, commit_ids: list[str]) -> None:
    """The notices are on the bus."""
    await conn.execute(
        "UPDATE usage_commits SET published_at = now() WHERE commit_id = ANY($1::text[])",
        commit_ids,
    )


async def unpublished(
    conn: asyncpg.Connection | asyncpg.Pool, *, older_than_seconds: float, limit: int = 500
) -> list[dict[str, Any]]:
    """Payloads of notices committed but not published (a crash or outage came between)."""
    rows = await conn.fetch(
        "SELECT payload FROM usage_commits"
        " WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1)"
        " ORDER BY created_at LIMIT $2",
        older_than_seconds,
        limit,
    )
    return [r["payload"] for r in rows]


async def prune_outbox(conn: asyncpg.Connection | asyncpg.Pool, *, keep_days: int = 7) -> None:
    """Forget published notices older than the USAGE stream keeps messages."""
    await conn.execute(
        "DELETE FROM usage_commits WHERE published_at < now() - make_interval(days => $1)",
        keep_days,
    )


_DAILY_FIELDS = [f for f in DailyUsageRow.model_fields if f not in ("user_email", "day")]
_DAILY_COLUMNS = ["provider", "account", "user_email", "day", *_DAILY_FIELDS, "captured_at"]
# Column names come from our own model (they equal daily_usage's columns), never from input.
_UPSERT_DAILY = (
    f"INSERT INTO daily_usage ({', '.join(_DAILY_COLUMNS)})"
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(_DAILY_COLUMNS) + 1))})"
    " ON CONFLICT (provider, account, user_email, day) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in [*_DAILY_FIELDS, "captured_at"])
    + " WHERE daily_usage.captured_at <= EXCLUDED.captured_at"
)


async def upsert_daily_usage(conn: asyncpg.Connection, snapshot: DailyUsageSnapshotV1) -> None:
    """Latest capture wins; a replayed older snapshot changes nothing."""
    await conn.executemany(
        _UPSERT_DAILY,
        [
            (
                snapshot.provider,
                snapshot.account,
                row.user_email,
                row.day,
                *(getattr(row, f) for f in _DAILY_FIELDS),
                snapshot.captured_at,
            )
            for row in snapshot.rows
        ],
    )


async def upsert_spend(conn: asyncpg.Connection, snapshot: SpendSnapshotV1) -> None:
    """One row per member per billing cycle; the latest capture in the cycle wins."""
    await conn.executemany(
        """
        INSERT INTO spend_snapshots AS s (provider, account, cycle_start, user_email, user_id, name,
            role, spend_micros, overall_spend_micros, fast_premium_requests,
            hard_limit_override_micros, monthly_limit_micros, first_captured_at, captured_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
        ON CONFLICT (provider, account, cycle_start, user_email) DO UPDATE SET
            user_id = EXCLUDED.user_id, name = EXCLUDED.name, role = EXCLUDED.role,
            spend_micros = EXCLUDED.spend_micros,
            overall_spend_micros = EXCLUDED.overall_spend_micros,
            fast_premium_requests = EXCLUDED.fast_premium_requests,
            hard_limit_override_micros = EXCLUDED.hard_limit_override_micros,
            monthly_limit_micros = EXCLUDED.monthly_limit_micros,
            captured_at = EXCLUDED.captured_at
        WHERE s.captured_at <= EXCLUDED.captured_at
        """,
        [
            (
                snapshot.provider,
                snapshot.account,
                snapshot.cycle_start,
                r.user_email,
                r.user_id,
                r.name,
                r.role,
                r.spend_micros,
                r.overall_spend_micros,
                r.fast_premium_requests,
                r.hard_limit_override_micros,
                r.monthly_limit_micros,
                snapshot.captured_at,
            )
            for r in snapshot.rows
        ],
    )


async def upsert_roster(conn: asyncpg.Connection, snapshot: RosterSnapshotV1) -> None:
    """Members and groups as of the capture; older captures never overwrite newer ones."""
    key = (snapshot.provider, snapshot.account)
    await conn.executemany(
        """
        INSERT INTO members AS m (provider, account, user_email, user_id, name, role, is_removed,
            first_seen_at, captured_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
        ON CONFLICT (provider, account, user_email) DO UPDATE SET
            user_id = coalesce(EXCLUDED.user_id, m.user_id), name = coalesce(EXCLUDED.name, m.name),
            role = coalesce(EXCLUDED.role, m.role), is_removed = EXCLUDED.is_removed,
            captured_at = EXCLUDED.captured_at
        WHERE m.captured_at <= EXCLUDED.captured_at
        """,
        [
            (*key, m.user_email, m.user_id, m.name, m.role, m.is_removed, snapshot.captured_at)
            for m in snapshot.members
        ],
    )
    for group in snapshot.groups:
        newer = await conn.fetchval(
            """
            INSERT INTO groups AS g (provider, account, group_id, name, cycle_start, cycle_end,
                removed_at, captured_at)
            VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)
            ON CONFLICT (provider, account, group_id) DO UPDATE SET
                name = EXCLUDED.name, cycle_start = EXCLUDED.cycle_start,
                cycle_end = EXCLUDED.cycle_end, removed_at = NULL,
                captured_at = EXCLUDED.captured_at
            WHERE g.captured_at <= EXCLUDED.captured_at
            RETURNING true
            """,
            *key,
            group.group_id,
            group.name,
            group.cycle_start,
            group.cycle_end,
            snapshot.captured_at,
        )
        if not newer:
            continue
        await conn.execute(
            "DELETE FROM group_members WHERE provider = $1 AND account = $2 AND group_id = $3"
            " AND NOT (user_email = ANY($4::text[]))",
            *key,
            group.group_id,
            group.member_emails,
        )
        await conn.executemany(
            "INSERT INTO group_members (provider, account, group_id, user_email, captured_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, account, group_id, user_email)"
            " DO UPDATE SET captured_at = EXCLUDED.captured_at",
            [(*key, group.group_id, email, snapshot.captured_at) for email in group.member_emails],
        )
    if snapshot.complete_groups:
        await conn.execute(
            "UPDATE groups SET removed_at = $3, captured_at = $3"
            " WHERE provider = $1 AND account = $2 AND removed_at IS NULL"
            " AND captured_at < $3 AND NOT (group_id = ANY($4::text[]))",
            *key,
            snapshot.captured_at,
            [g.group_id for g in snapshot.groups],
        )
