"""Composition root of the detector: settings -> logging -> broker/app -> lifespan."""

from __future__ import annotations

import asyncpg
import uvloop
from aiohttp import web
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.js.api import ConsumerConfig

from spendwatch.common.db import create_pool
from spendwatch.common.events import UsageCommittedV1
from spendwatch.common.logging import configure_logging, get_logger
from spendwatch.common.messaging import ensure_streams, make_broker, subjects
from spendwatch.common.messaging.streams import USAGE
from spendwatch.common.observability import start_metrics_server
from spendwatch.detector.service import Detector
from spendwatch.detector.settings import DetectorSettings

log = get_logger("spendwatch.detector")


class DetectorRuntime:
    """What runs between start-up and shutdown: the pool, the detector, /metrics."""

    def __init__(self, settings: DetectorSettings, broker: NatsBroker) -> None:
        self._settings = settings
        self._broker = broker
        self._pool: asyncpg.Pool | None = None
        self._http: web.AppRunner | None = None
        self.detector: Detector | None = None

    async def start(self) -> None:
        """Pool and streams before the subscriber consumes; then /metrics."""
        self._pool = await create_pool(self._settings.database_url.get_secret_value(), max_size=4)
        await self._broker.connect()
        js = self._broker.connection.jetstream()
        await ensure_streams(js)
        self.detector = Detector(db=self._pool, js=js, timezone=self._settings.team_timezone)

    async def ready(self) -> None:
        """Serve /metrics and say so."""
        if self._settings.metrics_port:
            self._http = await start_metrics_server(self._settings.metrics_port, self.healthy)
        log.info("service.ready", service="detector")

    async def healthy(self) -> bool:
        """Connected to NATS."""
        connected: bool = self._broker.connection.is_connected
        return connected

    async def stop(self) -> None:
        """Release what start() took (the broker is stopped by FastStream before this)."""
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

    @broker.subscriber(
        subjects.USAGE_COMMITTED_ALL,
        stream=JStream(USAGE.name, declare=False),
        durable=subjects.durable("detector", USAGE.name),
        pull_sub=PullSub(batch_size=20, timeout=0.5),
        config=ConsumerConfig(max_deliver=20, ack_wait=60),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_committed(notice: UsageCommittedV1) -> None:
        assert runtime.detector is not None  # set before the subscriber starts
        await runtime.detector.evaluate(notice)

    return app


def main() -> None:
    """Run the detector until SIGINT/SIGTERM."""
    settings = DetectorSettings()
    configure_logging(settings.log_level)
    uvloop.run(build_app(settings).run())
