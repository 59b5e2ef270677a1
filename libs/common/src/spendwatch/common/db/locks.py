"""Session advisory locks: one replica at a time does a periodic job (a poll, a tick, digests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


@asynccontextmanager
async def exclusive(db: asyncpg.Pool, key: str) -> AsyncIterator[bool]:
    """Yield True if this process took the advisory lock named `key` (held until the block ends),
    False if another process holds it. Never waits."""
    async with db.acquire() as conn:
        got: bool = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key)
        try:
            yield got
        finally:
            if got:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
