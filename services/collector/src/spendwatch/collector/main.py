"""Composition root of the collector: settings -> logging -> broker/app -> lifespan."""

from __future__ import annotations

import asyncio
import contextlib

import uvloop
from aiohttp import web
from faststream import FastStream

from spendwatch.collector.settings import CollectorSettings
from spendwatch.collector.sink import UsageSink, sink_consumer
from spendwatch.common.db import create_pool
from spendwatch.common.logging import configure_logging, get_logger
from spendwatch.common.messaging import BatchConsumer, ensure_streams, make_broker
from spendwatch.common.observability import start_metrics_server

log = get_logger("spendwatch.collector")


def build_app(settings: CollectorSettings) -> FastStream:
    """The collector app: the sink (and, from issue 3, the provider pollers)."""
    broker = make_broker(settings, name="collector")
    app = FastStream(broker, logger=log)
    tasks: list[asyncio.Task[None]] = []
    held: dict[str, object] = {}

    @app.after_startup
    async def start() -> None:
        js = broker.connection.jetstream()
        await ensure_streams(js)
        pool = await create_pool(settings.database_url.get_secret_value(), max_size=4)
        sink = UsageSink(pool=pool, js=js, timezone=settings.team_timezone)
        consumer = BatchConsumer(
            js, sink_consumer(settings.sink_max_deliver), sink.handle,
            batch_size=settings.sink_batch_size,
        )
        await sink.republish_outbox(grace_seconds=0)  # notices stranded by a crash
        tasks.extend([
            asyncio.create_task(consumer.run(), name="sink"),
            asyncio.create_task(sink.run_outbox(), name="sink-outbox"),
        ])
        held.update(pool=pool, consumer=consumer)
        if settings.metrics_port:

            async def healthy() -> bool:
                return broker.connection.is_connected and not any(t.done() for t in tasks)

            held["metrics"] = await start_metrics_server(settings.metrics_port, healthy)
        log.info("service.ready", service="collector", sink=consumer_name())

    @app.on_shutdown
    async def stop() -> None:
        consumer = held.get("consumer")
        if isinstance(consumer, BatchConsumer):
            consumer.stop()
        for task in tasks:
            if task.get_name() != "sink":
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=10)
        runner = held.get("metrics")
        if isinstance(runner, web.AppRunner):
            await runner.cleanup()
        pool = held.get("pool")
        if pool is not None:
            await pool.close()  # type: ignore[attr-defined]
        log.info("service.stopped", service="collector")

    return app


def consumer_name() -> str:
    """The sink's durable consumer name, for logs."""
    return sink_consumer().durable


def main() -> None:
    """Run the collector until SIGINT/SIGTERM."""
    settings = CollectorSettings()
    configure_logging(settings.log_level)
    uvloop.run(build_app(settings).run())
