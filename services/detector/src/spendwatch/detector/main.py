"""Composition root of the detector: settings -> logging -> broker/app -> lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import asyncpg
import nats.errors
import uvloop
from aiohttp import web
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.js.api import ConsumerConfig, DeliverPolicy

from spendwatch.common.db import create_pool
from spendwatch.common.events import SettingsUpdatedV1, UsageCommittedV1
from spendwatch.common.logging import configure_logging, get_logger
from spendwatch.common.messaging import ensure_streams, make_broker, subjects
from spendwatch.common.messaging.lag import LagWatcher
from spendwatch.common.messaging.streams import SETTINGS, USAGE
from spendwatch.common.observability import start_metrics_server
from spendwatch.detector.coalesce import Coalescer
from spendwatch.detector.service import Detector
from spendwatch.detector.settings import DetectorSettings

log = get_logger("spendwatch.detector")
NOTICES_IN_FLIGHT = 64  # notices handled at once; those waiting are evaluated together


class DetectorRuntime:
    """What runs between start-up and shutdown: the pool, the detector, its tick, /metrics."""

    def __init__(self, settings: DetectorSettings, broker: NatsBroker) -> None:
        self._settings = settings
        self._broker = broker
        self._pool: asyncpg.Pool | None = None
        self._http: web.AppRunner | None = None
        self._ticking: asyncio.Task[None] | None = None
        self.detector: Detector | None = None
        self.coalescer: Coalescer | None = None

    async def start(self) -> None:
        """Pool and streams before the subscriber consumes; then /metrics."""
        self._pool = await create_pool(self._settings.database_url.get_secret_value(), max_size=4)
        await self._broker.connect()
        js = self._broker.connection.jetstream()
        await ensure_streams(js)
        self.detector = Detector(
            db=self._pool,
            js=js,
            timezone=self._settings.team_timezone,
            clear_grace=timedelta(seconds=self._settings.clear_grace_seconds),
        )
        self.coalescer = Coalescer(self.detector.evaluate_many)

    async def ready(self) -> None:
        """Start the tick, serve /metrics and say so."""
        self._ticking = asyncio.create_task(self._tick_forever())
        if self._settings.metrics_port:
            self._http = await start_metrics_server(self._settings.metrics_port, self.healthy)
        log.info("service.ready", service="detector")

    async def healthy(self) -> bool:
        """Connected to NATS."""
        connected: bool = self._broker.connection.is_connected
        return connected

    async def tick(self) -> None:
        """One tick; a failure on our side is logged and retried at the next one."""
        assert self.detector is not None  # set before anything ticks
        try:
            await self.detector.tick()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, nats.errors.Error):
            log.warning("detector.tick_failed", exc_info=True)

    async def _tick_forever(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self._settings.tick_seconds)

    async def stop(self) -> None:
        """Release what start() took (the broker is stopped by FastStream before this)."""
        if self._ticking:
            self._ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticking
        if self._http:
            await self._http.cleanup()
        if self._pool:
            await self._pool.close()


def build_app(settings: DetectorSettings) -> FastStream:
    """The detector: evaluates every `usage.committed` notice once its rows are durable."""
    broker = make_broker(settings, name="detector")
    runtime = DetectorRuntime(settings, broker)
    app = FastStream(broker, logger=log)
    app.on_startup(runtime.start)
    app.after_startup(runtime.ready)
    app.after_shutdown(runtime.stop)
    LagWatcher(
        broker,
        [
            (USAGE.name, subjects.durable("detector", USAGE.name)),
            (SETTINGS.name, subjects.durable("detector", SETTINGS.name)),
        ],
    ).attach(app)

    @broker.subscriber(
        subjects.USAGE_COMMITTED_ALL,
        stream=JStream(USAGE.name, declare=False),
        durable=subjects.durable("detector", USAGE.name),
        pull_sub=PullSub(batch_size=NOTICES_IN_FLIGHT, timeout=0.5),
        config=ConsumerConfig(max_deliver=20, ack_wait=60, max_ack_pending=NOTICES_IN_FLIGHT * 4),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_workers=NOTICES_IN_FLIGHT,  # handled concurrently, so that they can be coalesced
    )
    async def on_committed(notice: UsageCommittedV1) -> None:
        assert runtime.coalescer is not None  # set before the subscriber starts
        await runtime.coalescer.submit(notice)

    @broker.subscriber(
        subjects.SETTINGS_UPDATED,
        stream=JStream(SETTINGS.name, declare=False),
        durable=subjects.durable("detector", SETTINGS.name),
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW, ack_wait=60),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_settings(update: SettingsUpdatedV1) -> None:
        # Thresholds are read on every evaluation; the tick applies new cycle thresholds now.
        log.info("detector.settings_updated", key=update.key, actor=update.actor)
        await runtime.tick()

    return app


def main() -> None:
    """Run the detector until SIGINT/SIGTERM."""
    settings = DetectorSettings()
    configure_logging(settings.log_level)
    uvloop.run(build_app(settings).run())
