"""The SQL of /api/settings: the `settings` row the detector reads, and `settings_audit`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

# One writer at a time per key: two concurrent PUTs must not both audit against the same "old".
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('spendwatch.settings:' || $1))"


async def get_row(db: asyncpg.Pool | asyncpg.Connection, *, key: str) -> asyncpg.Record | None:
    """The stored document under `key` with its last writer, or None (all defaults)."""
    return await db.fetchrow(
        "SELECT value, updated_at, updated_by FROM settings WHERE key = $1", key
    )


async def lock(conn: asyncpg.Connection, *, key: str) -> None:
    """Serialise writers of `key` until the transaction ends."""
    await conn.execute(_LOCK, key)


async def put_row(
    conn: asyncpg.Connection, *, key: str, value: dict[str, Any], actor: str
) -> asyncpg.Record:
    """Store `value` under `key`; its new updated_at/updated_by."""
    row: asyncpg.Record = await conn.fetchrow(
        """
        INSERT INTO settings (key, value, updated_at, updated_by)
        VALUES ($1, $2::jsonb, now(), $3)
        ON CONFLICT (key) DO UPDATE SET
            value = EXCLUDED.value, updated_at = EXCLUDED.updated_at,
            updated_by = EXCLUDED.updated_by
        RETURNING updated_at, updated_by
        """,
        key,
        value,  # the pool's jsonb codec encodes it
        actor,
    )
    return row


async def add_audit(
    conn: asyncpg.Connection, *, changes: Sequence[tuple[str, Any, Any]], actor: str
) -> list[asyncpg.Record]:
    """One settings_audit row per (key, old value, new value); the rows written."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        INSERT INTO settings_audit (key, old_value, new_value, actor)
        SELECT c.key, c.old_value::jsonb, c.new_value::jsonb, $4
        FROM unnest($1::text[], $2::text[], $3::text[]) AS c (key, old_value, new_value)
        RETURNING audit_id, key, old_value, new_value, actor, at
        """,
        [key for key, _, _ in changes],
        [json.dumps(old) for _, old, _ in changes],
        [json.dumps(new) for _, _, new in changes],
        actor,
    )
    return sorted(rows, key=lambda r: r["audit_id"])


async def latest_changes(db: asyncpg.Pool, *, prefix: str) -> list[asyncpg.Record]:
    """The latest audit row of every key under `prefix` (`detection.`)."""
    rows: list[asyncpg.Record] = await db.fetch(
        """
        SELECT DISTINCT ON (key) key, at, actor FROM settings_audit
        WHERE starts_with(key, $1)
        ORDER BY key, at DESC, audit_id DESC
        """,
        prefix,
    )
    return rows


async def audit_page(
    db: asyncpg.Pool, *, key: str | None, before: int | None, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` audit rows, newest first, below `before`, for `key` or the keys under it."""
    rows: list[asyncpg.Record] = await db.fetch(
        """
        SELECT audit_id, key, old_value, new_value, actor, at FROM settings_audit
        WHERE ($1::text IS NULL OR key = $1 OR starts_with(key, $1 || '.'))
          AND ($2::bigint IS NULL OR audit_id < $2)
        ORDER BY audit_id DESC
        LIMIT $3
        """,
        key,
        before,
        limit,
    )
    return rows
