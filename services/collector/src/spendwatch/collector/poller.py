"""The poller: a collection pass per configured provider every COLLECT_INTERVAL_SECONDS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from spendwatch.collector.cursor.client import CursorAdminClient
from spendwatch.collector.cursor_pass import PROVIDER, CursorPass
from spendwatch.collector.settings import CollectorSettings
from spendwatch.common.db import exclusive
from spendwatch.common.errors import ConfigError, SpendwatchError
from spendwatch.common.logging import get_logger

log = get_logger(__name__)


@asynccontextmanager
async def cursor_pass(
    settings: CollectorSettings, *, js: JetStreamContext, db: asyncpg.Pool
) -> AsyncIterator[CursorPass]:
    """A Cursor pass wired from settings; its HTTP client is closed on exit."""
    if settings.cursor_admin_api_key is None:
        raise ConfigError("CURSOR_ADMIN_API_KEY is not set")
    async with CursorAdminClient(
        base_url=settings.cursor_api_base_url,
        api_key=settings.cursor_admin_api_key,
        account=settings.cursor_account,
        requests_per_minute=settings.cursor_requests_per_minute,
    ) as client:
        yield CursorPass(
            client=client,
            js=js,
            db=db,
            account=settings.cursor_account,
            overlap=timedelta(seconds=settings.collect_overlap_seconds),
            backfill=timedelta(days=settings.collect_backfill_days),
        )


async def poll_forever(
    settings: CollectorSettings, *, js: JetStreamContext, db: asyncpg.Pool
) -> None:
    """Run a pass now and then every interval; one replica polls a team at a time."""
    if settings.cursor_admin_api_key is None:
        log.info("poller.idle", reason="no provider key configured (CURSOR_ADMIN_API_KEY)")
        await asyncio.Event().wait()  # nothing to poll; the sink still runs
    async with cursor_pass(settings, js=js, db=db) as run:
        while True:
            poll_key = f"spendwatch.poll:{PROVIDER}:{settings.cursor_account}"
            async with exclusive(db, poll_key) as mine:
                if mine:
                    await _run_logged(run)
                else:
                    log.info("poller.skipped", reason="another replica is polling this team")
            await asyncio.sleep(settings.collect_interval_seconds)


async def _run_logged(run: CursorPass) -> None:
    """A pass that fails on our side (bus, database) is logged and tried again next interval."""
    try:
        await run.run()
    except (SpendwatchError, OSError, asyncpg.PostgresError, NatsError):
        log.exception("poller.pass_failed", provider=PROVIDER)
