"""The SQL of /api/groups: effective groups and members, spend from the rollup, local edits.

Reads go through the `effective_groups` / `effective_group_members` views (migration 0007);
writes touch only the local tables (`local_groups`, `group_renames`, `group_overrides`), never
the collector's `groups` / `group_members`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Literal, TypeAlias

import asyncpg

from spendwatch.api.hibob import Current

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
Source = Literal["api", "import"]

# A person's display name: the newest non-empty one any provider's roster has.
_NAMES = """
    SELECT DISTINCT ON (user_email) user_email, name FROM members
    ORDER BY user_email, (name IS NULL), captured_at DESC
"""


async def group_page(db: Db, *, after: tuple[str, str] | None, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` live groups by (name, group_key), strictly after the keyset `after`."""
    rows: list[asyncpg.Record] = await db.fetch(
        """
        SELECT group_key, name, origin,
               CASE WHEN provider_name IS DISTINCT FROM name THEN provider_name END
                   AS provider_name
        FROM effective_groups
        WHERE $1::text IS NULL OR (name, group_key) > ($1, $2::text)
        ORDER BY name, group_key
        LIMIT $3
        """,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


async def members_with_spend(
    db: Db, *, group_keys: Sequence[str], first: date, last: date
) -> list[asyncpg.Record]:
    """The members of these groups with their spend and requests from `first` to `last`."""
    rows: list[asyncpg.Record] = await db.fetch(
        """
        WITH m AS (
            SELECT group_key, user_email, origin FROM effective_group_members
            WHERE group_key = ANY($1::text[])
        ), spend AS (
            SELECT r.user_email, sum(r.cost_micros)::bigint AS spend_micros,
                   sum(r.events)::bigint AS events
            FROM usage_daily_user AS r  -- the per-user summary of the rollup
            WHERE r.day BETWEEN $2 AND $3
              AND r.user_email = ANY(ARRAY(SELECT DISTINCT user_email FROM m))
            GROUP BY r.user_email
        ), names AS (
            SELECT DISTINCT ON (user_email) user_email, name FROM members
            WHERE user_email = ANY(ARRAY(SELECT DISTINCT user_email FROM m))
            ORDER BY user_email, (name IS NULL), captured_at DESC
        )
        SELECT m.group_key, m.user_email, m.origin, n.name,
               coalesce(s.spend_micros, 0) AS spend_micros, coalesce(s.events, 0) AS events
        FROM m
        LEFT JOIN spend AS s USING (user_email)
        LEFT JOIN names AS n USING (user_email)
        ORDER BY m.group_key, spend_micros DESC, m.user_email
        """,
        list(group_keys),
        first,
        last,
    )
    return rows


async def unassigned_with_spend(db: Db, *, first: date, last: date) -> list[asyncpg.Record]:
    """Roster members in no live group, with their spend and requests from `first` to `last`."""
    rows: list[asyncpg.Record] = await db.fetch(
        """
        WITH people AS (
            SELECT DISTINCT ON (user_email) user_email, name FROM members
            WHERE NOT is_removed
              AND user_email NOT IN (SELECT user_email FROM effective_group_members)
            ORDER BY user_email, (name IS NULL), captured_at DESC
        ), spend AS (
            SELECT r.user_email, sum(r.cost_micros)::bigint AS spend_micros,
                   sum(r.events)::bigint AS events
            FROM usage_daily_user AS r  -- the per-user summary of the rollup
            WHERE r.day BETWEEN $1 AND $2
              AND r.user_email = ANY(ARRAY(SELECT user_email FROM people))
            GROUP BY r.user_email
        )
        SELECT p.user_email, p.name, coalesce(s.spend_micros, 0) AS spend_micros,
               coalesce(s.events, 0) AS events
        FROM people AS p LEFT JOIN spend AS s USING (user_email)
        ORDER BY spend_micros DESC, p.user_email
        """,
        first,
        last,
    )
    return rows


async def lock(conn: asyncpg.Connection) -> None:
    """One editor of groups at a time (names stay unique, plans stay what was previewed)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('spendwatch.groups'))")


async def find_group(db: Db, *, group_key: str) -> asyncpg.Record | None:
    """A live group's name and origin, or None."""
    return await db.fetchrow(
        "SELECT group_key, name, origin, provider_name FROM effective_groups WHERE group_key = $1",
        group_key,
    )


async def group_named(db: Db, *, name: str) -> str | None:
    """The key of a live group called `name` (case ignored; the first key if several)."""
    found: str | None = await db.fetchval(
        "SELECT group_key FROM effective_groups WHERE lower(name) = lower($1)"
        " ORDER BY group_key LIMIT 1",
        name,
    )
    return found


async def create_local(conn: asyncpg.Connection, *, name: str, actor: str) -> str:
    """A new local group's key."""
    key = f"local:{uuid.uuid4()}"
    await conn.execute(
        "INSERT INTO local_groups (group_key, name, created_by) VALUES ($1, $2, $3)",
        key,
        name,
        actor,
    )
    return key


async def rename(
    conn: asyncpg.Connection,
    *,
    group_key: str,
    origin: str,
    provider_name: str | None,
    name: str,
    actor: str,
) -> None:
    """Name a group locally; naming a provider's group back to its own name drops the rename."""
    if origin == "local":
        await conn.execute(
            "UPDATE local_groups SET name = $2 WHERE group_key = $1", group_key, name
        )
    elif name == provider_name:
        await conn.execute("DELETE FROM group_renames WHERE group_key = $1", group_key)
    else:
        await conn.execute(
            """
            INSERT INTO group_renames (group_key, name, updated_by) VALUES ($1, $2, $3)
            ON CONFLICT (group_key) DO UPDATE SET
                name = EXCLUDED.name, updated_at = now(), updated_by = EXCLUDED.updated_by
            """,
            group_key,
            name,
            actor,
        )


async def is_member(db: Db, *, email: str) -> bool:
    """Whether some provider's roster lists `email` (and has not removed them)."""
    found: bool = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM members WHERE user_email = $1 AND NOT is_removed)", email
    )
    return found


async def memberships(db: Db, *, email: str) -> set[str]:
    """The keys of the groups `email` is effectively in."""
    rows = await db.fetch(
        "SELECT group_key FROM effective_group_members WHERE user_email = $1", email
    )
    return {r["group_key"] for r in rows}


async def set_override(
    conn: asyncpg.Connection, *, email: str, group_key: str, source: Source, actor: str
) -> None:
    """Put `email` in `group_key`, whatever the provider says, until reset."""
    await conn.execute(
        """
        INSERT INTO group_overrides (user_email, group_key, source, updated_by)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (user_email) DO UPDATE SET
            group_key = EXCLUDED.group_key, source = EXCLUDED.source, updated_at = now(),
            updated_by = EXCLUDED.updated_by
        """,
        email,
        group_key,
        source,
        actor,
    )


async def reset_override(conn: asyncpg.Connection, *, email: str) -> bool:
    """Drop `email`'s local assignment; whether there was one."""
    dropped = await conn.fetchval(
        "DELETE FROM group_overrides WHERE user_email = $1 RETURNING true", email
    )
    return bool(dropped)


async def current_state(db: Db) -> Current:
    """Known people, their effective groups, and every live group: what an import plans on."""
    people = await db.fetch(
        """
        SELECT DISTINCT ON (user_email) user_email, name FROM members WHERE NOT is_removed
        ORDER BY user_email, (name IS NULL), captured_at DESC
        """
    )
    links = await db.fetch("SELECT group_key, user_email FROM effective_group_members")
    groups = await db.fetch("SELECT group_key, name FROM effective_groups")
    belongs: dict[str, set[str]] = {}
    for link in links:
        belongs.setdefault(link["user_email"], set()).add(link["group_key"])
    return Current(
        members={r["user_email"]: r["name"] for r in people},
        memberships={email: frozenset(keys) for email, keys in belongs.items()},
        groups={r["group_key"]: r["name"] for r in groups},
    )


async def export_rows(db: Db) -> list[asyncpg.Record]:
    """Every effective membership with the person's name, by group name then email."""
    rows: list[asyncpg.Record] = await db.fetch(
        f"""
        WITH names AS ({_NAMES})
        SELECT m.user_email, n.name, g.name AS group_name, g.group_key
        FROM effective_group_members AS m
        JOIN effective_groups AS g USING (group_key)
        LEFT JOIN names AS n USING (user_email)
        ORDER BY g.name, g.group_key, m.user_email
        """
    )
    return rows
