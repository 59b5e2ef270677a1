"""What one-shot commands connect to: the bus (streams ensured) and the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import nats
from nats.js import JetStreamContext

from spendwatch.common.db import create_pool
from spendwatch.common.errors import MessagingError
from spendwatch.common.messaging import ensure_streams
from spendwatch.common.settings import BaseServiceSettings


@asynccontextmanager
async def bus_and_db(
    settings: BaseServiceSettings,
) -> AsyncIterator[tuple[JetStreamContext, asyncpg.Pool]]:
    """JetStream with every stream in place, and a small pool; both closed on exit."""
    try:
        nc = await nats.connect(settings.nats_url, connect_timeout=5, max_reconnect_attempts=3)
    except (OSError, nats.errors.Error) as exc:
        raise MessagingError(f"cannot connect to NATS at {settings.nats_url}: {exc}") from exc
    pool = await create_pool(settings.database_url.get_secret_value(), max_size=2)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        yield js, pool
    finally:
        await pool.close()
        await nc.drain()
