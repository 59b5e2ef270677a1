"""The SQL of /api/users/{email}: one user's rollup rows, membership and cycle."""

from __future__ import annotations

from datetime import date

import asyncpg


async def member(pool: asyncpg.Pool, *, email: str) -> asyncpg.Record | None:
    """The user's latest member row (any provider), or None."""
    return await pool.fetchrow(
        """
        SELECT name, role, bool_and(is_removed) OVER () AS is_removed
        FROM members WHERE user_email = $1
        ORDER BY (name IS NULL), captured_at DESC LIMIT 1
        """,
        email,
    )


async def has_usage(pool: asyncpg.Pool, *, email: str) -> bool:
    """Whether the user has any usage or spend snapshot at all."""
    found: bool = await pool.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM usage_daily_user_model WHERE user_email = $1)
            OR EXISTS (SELECT 1 FROM spend_snapshots WHERE user_email = $1)
        """,
        email,
    )
    return found


async def daily_models(
    pool: asyncpg.Pool, *, email: str, first: date, last: date
) -> list[asyncpg.Record]:
    """The user's rollup rows in the window, per day and model (across providers)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        """
        SELECT day, model, array_agg(DISTINCT provider ORDER BY provider) AS providers,
               sum(cost_micros)::bigint AS micros, sum(events)::bigint AS requests,
               sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens)::bigint
                   AS tokens
        FROM usage_daily_user_model
        WHERE user_email = $1 AND day >= $2 AND day <= $3
        GROUP BY day, model ORDER BY day, model
        """,
        email,
        first,
        last,
    )
    return rows


async def cycle(pool: asyncpg.Pool, *, email: str, start: date, today: date) -> asyncpg.Record:
    """The user's cycle from our rollup and from the provider's snapshot of that cycle."""
    row: asyncpg.Record = await pool.fetchrow(
        """
        SELECT r.micros, r.on_demand_micros, r.on_demand_requests, r.first_on_demand_day,
               s.provider_spend_micros, s.provider_on_demand_micros, s.limit_micros
        FROM (
            SELECT coalesce(sum(cost_micros), 0)::bigint AS micros,
                   coalesce(sum(usage_based_micros), 0)::bigint AS on_demand_micros,
                   coalesce(sum(usage_based_events), 0)::bigint AS on_demand_requests,
                   min(day) FILTER (WHERE usage_based_events > 0) AS first_on_demand_day
            FROM usage_daily_user_model
            WHERE user_email = $1 AND day >= $2 AND day <= $3
        ) r CROSS JOIN (
            SELECT sum(overall_spend_micros)::bigint AS provider_spend_micros,
                   sum(spend_micros)::bigint AS provider_on_demand_micros,
                   coalesce(max(nullif(hard_limit_override_micros, 0)),
                            max(monthly_limit_micros)) AS limit_micros
            FROM spend_snapshots
            WHERE user_email = $1 AND (cycle_start AT TIME ZONE 'UTC')::date = $2
        ) s
        """,
        email,
        start,
        today,
    )
    return row
