"""Composition root of the API: settings -> logging -> aiohttp application -> serve."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable

import asyncpg
import nats
import nats.errors
import uvloop
from aiohttp import web
from nats.aio.client import Client as NatsClient

from spendwatch.api.auth import authenticate
from spendwatch.api.keys import DB, NATS, SETTINGS, SLACK_VERIFIER
from spendwatch.api.middleware import observe, problems
from spendwatch.api.routes import setup_routes
from spendwatch.api.routes.health import database_error
from spendwatch.api.settings import ApiSettings
from spendwatch.api.slack import SlackRequestVerifier
from spendwatch.common.db import create_pool
from spendwatch.common.errors import ConfigError
from spendwatch.common.logging import configure_logging, get_logger

log = get_logger("spendwatch.api")

CleanupContext = Callable[[web.Application], AsyncIterator[None]]

STATEMENT_TIMEOUT = "15s"
POOL_MAX_SIZE = 10
CONNECT_TIMEOUT_SECONDS = 5.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0


def create_app(
    settings: ApiSettings, *, db: asyncpg.Pool | None = None, nc: NatsClient | None = None
) -> web.Application:
    """The API as an aiohttp application; building it opens no sockets.

    Without `db` / `nc`, starting the application opens a pool on `DATABASE_URL` and a NATS
    connection on `NATS_URL`, and cleaning it up closes them. A given pool or connection is used
    as it is and left open for its owner (tests).
    """
    app = web.Application(middlewares=[observe, authenticate, problems])
    app[SETTINGS] = settings
    secret = settings.slack_signing_secret
    app[SLACK_VERIFIER] = SlackRequestVerifier(secret.get_secret_value()) if secret else None
    if not settings.auth_enabled:
        app.on_startup.append(_warn_auth_off)
    app.cleanup_ctx.append(_database(settings, db))
    app.cleanup_ctx.append(_nats(settings, nc))
    setup_routes(app)
    return app


async def _warn_auth_off(app: web.Application) -> None:
    log.warning(
        "api.auth_disabled",
        detail="API_AUTH=off: anyone who reaches the API can read and change incidents",
    )


def _database(settings: ApiSettings, given: asyncpg.Pool | None) -> CleanupContext:
    async def database(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[DB] = given
            yield
            return
        # min_size=0: the API starts while PostgreSQL is down and says so on /readyz.
        pool = await create_pool(
            settings.database_url.get_secret_value(),
            min_size=0,
            max_size=POOL_MAX_SIZE,
            timeout=CONNECT_TIMEOUT_SECONDS,
            # A read that runs away is cancelled (and answered 503), never left holding one of
            # the few connections; the slowest endpoint takes ~50 ms at 500 developers.
            server_settings={"statement_timeout": STATEMENT_TIMEOUT},
        )
        app[DB] = pool
        if error := await database_error(pool):
            log.warning("api.database_unreachable_at_start", error=error)
        try:
            yield
        finally:
            await pool.close()

    return database


def _nats(settings: ApiSettings, given: NatsClient | None) -> CleanupContext:
    async def connection(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[NATS] = given
            yield
            return
        closing = False

        async def disconnected() -> None:
            if not closing:  # draining at shutdown disconnects too; that is no news
                log.warning("nats.disconnected")

        # Keeps trying until NATS answers, at start as after a disconnect (like the brokers).
        client = await nats.connect(
            settings.nats_url,
            name="spendwatch-api",
            max_reconnect_attempts=-1,
            error_cb=_nats_error,
            disconnected_cb=disconnected,
            reconnected_cb=_nats_reconnected,
        )
        app[NATS] = client
        try:
            yield
        finally:
            closing = True
            with contextlib.suppress(nats.errors.Error):
                await client.drain()

    return connection


async def _nats_error(exc: Exception) -> None:
    log.warning("nats.error", error=type(exc).__name__)


async def _nats_reconnected() -> None:
    log.info("nats.reconnected")


async def serve(settings: ApiSettings) -> None:
    """Serve on `API_LISTEN` until SIGINT/SIGTERM, then finish requests and close cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        create_app(settings),
        access_log=None,  # the `observe` middleware logs every request
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
    )
    # Start-up waits for NATS; a signal meanwhile must still stop the process.
    started = asyncio.ensure_future(_start(runner, settings))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({started, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await started  # re-raises a start-up failure
        await stopping
        log.info("service.stopping", service="api")
    finally:
        stopping.cancel()
        await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _start(runner: web.AppRunner, settings: ApiSettings) -> None:
    await runner.setup()
    site = web.TCPSite(runner, settings.listen_host, settings.listen_port)
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on API_LISTEN={settings.listen}: {exc.strerror}") from exc
    log.info("service.ready", service="api", listen=_bound_address(runner, settings))


def _bound_address(runner: web.AppRunner, settings: ApiSettings) -> str:
    for address in runner.addresses:  # the real port when API_LISTEN asked for port 0
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return settings.listen


def main() -> None:
    """Run the API until SIGINT/SIGTERM."""
    settings = ApiSettings()
    configure_logging(settings.log_level)
    try:
        uvloop.run(serve(settings))
    except ConfigError as exc:
        log.error("service.failed", service="api", error=str(exc))
        raise SystemExit(1) from None
