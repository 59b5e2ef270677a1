"""asyncpg pool creation with the codecs spendwatch relies on."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from spendwatch.common.errors import DatabaseError


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    """An asyncpg pool with JSON codecs; a clear DatabaseError if the server cannot be reached."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, **kwargs
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool
