"""Composition root of the collector: settings -> logging -> broker/app -> lifespan."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import uvloop
from aiohttp import web
from faststream import FastStream
from faststream.nats import NatsBroker

from spendwatch.collector.poller import poll_forever
from spendwatch.collector.settings import CollectorSettings
from spendwatch.collector.sink import SINK_DURABLE, UsageSink, sink_consumer
from spendwatch.common.db import create_pool
from spendwatch.common.logging import configure_logging, get_logger
from spendwatch.common.messaging import BatchConsumer, ensure_streams, make_broker
from spendwatch.common.messaging.lag import LagWatcher
from spendwatch.common.messaging.streams import USAGE
from spendwatch.common.observability import start_metrics_server

log = get_logger("spendwatch.collector")


class Collector:
    """What runs between start-up and shutdown: the sink, its outbox, the poller, /metrics."""

    def __init__(self, settings: CollectorSettings, broker: NatsBroker) -> None:
        self._settings = settings
        self._broker = broker
        self._pool: asyncpg.Pool | None = None
        self._consumer: BatchConsumer | None = None
        self._sink: UsageSink | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._http: web.AppRunner | None = None

    async def start(self) -> None:
        """Streams, pool, outbox recovery, then consume."""
        js = self._broker.connection.jetstream()
        await ensure_streams(js)
        self._pool = await create_pool(self._settings.database_url.get_secret_value(), max_size=4)
        sink = self._sink = UsageSink(pool=self._pool, js=js, timezone=self._settings.team_timezone)
        await sink.republish_outbox(grace_seconds=0)  # notices stranded by a crash
        spec = sink_consumer(self._settings.sink_max_deliver, self._settings.sink_ack_wait_seconds)
        self._consumer = BatchConsumer(
            js, spec, sink.handle, batch_size=self._settings.sink_batch_size
        )
        self._tasks = [
            asyncio.create_task(self._consumer.run(), name="sink"),
            asyncio.create_task(sink.run_outbox(), name="sink-outbox"),
            asyncio.create_task(poll_forever(self._settings, js=js, db=self._pool), name="poller"),
        ]
        if self._settings.metrics_port:
            self._http = await start_metrics_server(self._settings.metrics_port, self.healthy)
        log.info("service.ready", service="collector", consumer=spec.durable)

    async def healthy(self) -> bool:
        """Connected to NATS and no background task has died."""
        connected: bool = self._broker.connection.is_connected
        return connected and not any(task.done() for task in self._tasks)

    async def stop(self) -> None:
        """Finish the batch in hand, then release everything."""
        if self._consumer:
            self._consumer.stop()
        for task in self._tasks:
            if task.get_name() != "sink":
                task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 15)
        if self._sink:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sink.flush(), 5)  # the outbox covers the rest
        if self._http:
            await self._http.cleanup()
        if self._pool:
            await self._pool.close()
        log.info("service.stopped", service="collector")


def build_app(settings: CollectorSettings) -> FastStream:
    """The collector app: provider poller and sink."""
    broker = make_broker(settings, name="collector")
    collector = Collector(settings, broker)
    app = FastStream(broker, logger=log)
    app.after_startup(collector.start)
    app.on_shutdown(collector.stop)
    LagWatcher(broker, [(USAGE.name, SINK_DURABLE)]).attach(app)
    return app


def main() -> None:
    """Run the collector until SIGINT/SIGTERM."""
    settings = CollectorSettings()
    configure_logging(settings.log_level)
    uvloop.run(build_app(settings).run())
