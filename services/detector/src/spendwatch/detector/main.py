"""Composition root of the detector: settings -> logging -> broker/app -> lifespan."""

from __future__ import annotations

import uvloop
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


def build_app(settings: DetectorSettings) -> FastStream:
    """The detector: evaluates every `usage.committed` notice once its rows are durable."""
    broker: NatsBroker = make_broker(settings, name="detector")
    app = FastStream(broker, logger=log)
    state: dict[str, Detector] = {}

    @broker.subscriber(
        subjects.USAGE_COMMITTED_ALL,
        stream=JStream(USAGE.name, declare=False),
        durable=subjects.durable("detector", USAGE.name),
        pull_sub=PullSub(batch_size=20, timeout=0.5),
        config=ConsumerConfig(max_deliver=20, ack_wait=60),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_committed(notice: UsageCommittedV1) -> None:
        await state["detector"].evaluate(notice)

    @app.on_startup
    async def connect() -> None:
        pool = await create_pool(settings.database_url.get_secret_value(), max_size=4)
        await broker.connect()
        await ensure_streams(broker.connection.jetstream())
        state["detector"] = Detector(
            db=pool, js=broker.connection.jetstream(), timezone=settings.team_timezone
        )
        app.context.set_global("pool", pool)

    @app.after_startup
    async def ready() -> None:
        if settings.metrics_port:

            async def healthy() -> bool:
                connected: bool = broker.connection.is_connected
                return connected

            runner = await start_metrics_server(settings.metrics_port, healthy)
            app.context.set_global("metrics", runner)
        log.info("service.ready", service="detector")

    @app.after_shutdown
    async def close() -> None:
        runner = app.context.get("metrics")
        if runner is not None:
            await runner.cleanup()
        await app.context.get("pool").close()

    return app


def main() -> None:
    """Run the detector until SIGINT/SIGTERM."""
    settings = DetectorSettings()
    configure_logging(settings.log_level)
    uvloop.run(build_app(settings).run())
