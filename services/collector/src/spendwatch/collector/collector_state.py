"""SQL of the poller's own state: checkpoints, health, and which events are already stored."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import asyncpg

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def checkpoint(db: Executor, *, provider: str, account: str, feed: str) -> datetime | None:
    """Up to when `feed` is known to be collected (None before the first successful pass)."""
    value: datetime | None = await db.fetchval(
        "SELECT checkpoint FROM collector_state WHERE provider = $1 AND account = $2 AND feed = $3",
        provider,
        account,
        feed,
    )
    return value


async def save_checkpoint(
    db: Executor, *, provider: str, account: str, feed: str, at: datetime
) -> None:
    """Advance the checkpoint (never backwards) and mark the feed healthy."""
    await db.execute(
        """
        INSERT INTO collector_state AS s (provider, account, feed, checkpoint, health,
            last_success_at, last_error, updated_at)
        VALUES ($1, $2, $3, $4, 'ok', now(), NULL, now())
        ON CONFLICT (provider, account, feed) DO UPDATE SET
            checkpoint = greatest(s.checkpoint, EXCLUDED.checkpoint), health = 'ok',
            last_success_at = now(), last_error = NULL, updated_at = now()
        """,
        provider,
        account,
        feed,
        at,
    )


async def set_health(
    db: Executor, *, provider: str, account: str, feed: str, health: str, error: str | None
) -> None:
    """Record how the last attempt went (`ok`, `auth_failed`, `unavailable`, `error`)."""
    await db.execute(
        """
        INSERT INTO collector_state AS s (provider, account, feed, health, last_error, updated_at)
        VALUES ($1, $2, $3, $4, $5, now())
        ON CONFLICT (provider, account, feed) DO UPDATE SET
            health = EXCLUDED.health, last_error = EXCLUDED.last_error, updated_at = now()
        """,
        provider,
        account,
        feed,
        health,
        error,
    )


async def health(db: Executor, *, provider: str) -> dict[str, str]:
    """feed -> health of every feed of `provider`."""
    rows = await db.fetch("SELECT feed, health FROM collector_state WHERE provider = $1", provider)
    return {row["feed"]: row["health"] for row in rows}


async def stored_event_ids(
    db: Executor, *, provider: str, event_ids: list[str], first: datetime, last: datetime
) -> set[str]:
    """Which of `event_ids` (occurring between first and last) are already in usage_events."""
    rows = await db.fetch(
        "SELECT event_id FROM usage_events WHERE provider = $1 AND event_id = ANY($2::text[])"
        " AND occurred_at BETWEEN $3 AND $4",
        provider,
        event_ids,
        first,
        last,
    )
    return {row["event_id"] for row in rows}
