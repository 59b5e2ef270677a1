"""Composition root of the incidents service: settings -> logging -> broker/app -> lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Annotated

import asyncpg
import nats.errors
import uvloop
from aiohttp import web
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import ConsumerConfig
from pydantic import Field, ValidationError

from spendwatch.common.db import create_pool
from spendwatch.common.events import (
    AnomalyClearedV1,
    AnomalyDetectedV1,
    IncidentCommandReplyV1,
    IncidentCommandV1,
)
from spendwatch.common.logging import configure_logging, get_logger
from spendwatch.common.messaging import ensure_streams, make_broker, subjects
from spendwatch.common.messaging.lag import LagWatcher
from spendwatch.common.messaging.streams import ANOMALIES
from spendwatch.common.observability import start_metrics_server
from spendwatch.incidents.service import Incidents
from spendwatch.incidents.settings import IncidentsSettings

log = get_logger("spendwatch.incidents")
AnyAnomaly = Annotated[AnomalyDetectedV1 | AnomalyClearedV1, Field(discriminator="type")]
OUTBOX_SECONDS = 10.0
COMMANDS_QUEUE = "incidents"  # replicas share the commands


class IncidentsRuntime:
    """What runs between start-up and shutdown: the pool, the service, its outbox, /metrics."""

    def __init__(self, settings: IncidentsSettings, broker: NatsBroker) -> None:
        self._settings = settings
        self._broker = broker
        self._pool: asyncpg.Pool | None = None
        self._http: web.AppRunner | None = None
        self._outbox: asyncio.Task[None] | None = None
        self.incidents: Incidents | None = None

    async def start(self) -> None:
        """Pool and streams before the subscribers consume."""
        self._pool = await create_pool(self._settings.database_url.get_secret_value(), max_size=6)
        await self._broker.connect()
        js = self._broker.connection.jetstream()
        await ensure_streams(js)
        self.incidents = Incidents(
            db=self._pool,
            js=js,
            reopen_window=timedelta(seconds=self._settings.reopen_window_seconds),
        )

    async def ready(self) -> None:
        """Start the outbox, serve /metrics and say so."""
        self._outbox = asyncio.create_task(self._republish_forever())
        if self._settings.metrics_port:
            self._http = await start_metrics_server(self._settings.metrics_port, self.healthy)
        log.info("service.ready", service="incidents")

    async def healthy(self) -> bool:
        """Connected to NATS."""
        connected: bool = self._broker.connection.is_connected
        return connected

    async def _republish_forever(self) -> None:
        assert self.incidents is not None  # set before the outbox starts
        while True:
            try:
                await self.incidents.republish()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, nats.errors.Error):
                log.warning("incidents.outbox_unavailable", exc_info=True)
            await asyncio.sleep(OUTBOX_SECONDS)

    async def stop(self) -> None:
        """Release what start() took (the broker is stopped by FastStream before this)."""
        if self._outbox:
            self._outbox.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outbox
        if self._http:
            await self._http.cleanup()
        if self._pool:
            await self._pool.close()


def build_app(settings: IncidentsSettings) -> FastStream:
    """Incidents: anomalies in (JetStream), commands in (request/reply), transitions out."""
    broker = make_broker(settings, name="incidents")
    runtime = IncidentsRuntime(settings, broker)
    app = FastStream(broker, logger=log)
    app.on_startup(runtime.start)
    app.after_startup(runtime.ready)
    app.after_shutdown(runtime.stop)
    LagWatcher(broker, [(ANOMALIES.name, subjects.durable("incidents", ANOMALIES.name))]).attach(
        app
    )

    @broker.subscriber(
        subjects.ANOMALIES_ALL,
        stream=JStream(ANOMALIES.name, declare=False),
        durable=subjects.durable("incidents", ANOMALIES.name),
        pull_sub=PullSub(batch_size=20, timeout=0.5),
        config=ConsumerConfig(max_deliver=20, ack_wait=60),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_anomaly(anomaly: AnyAnomaly) -> None:
        assert runtime.incidents is not None  # set before the subscriber starts
        await runtime.incidents.on_anomaly(anomaly)

    @broker.subscriber(subjects.INCIDENT_COMMANDS_ALL, queue=COMMANDS_QUEUE)
    async def on_command(msg: NatsMessage) -> IncidentCommandReplyV1:
        # Parsed here, not by FastStream: a bad command gets an answer, not a dead letter.
        assert runtime.incidents is not None
        try:
            command = IncidentCommandV1.model_validate_json(msg.body)
        except ValidationError as exc:
            return IncidentCommandReplyV1(ok=False, code="invalid_command", error=_brief(exc))
        if msg.raw_message.subject != subjects.incident_command(command.action):
            return IncidentCommandReplyV1(
                ok=False, code="invalid_command", error="the action does not match the subject"
            )
        return await runtime.incidents.command(command)

    return app


def _brief(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return f"invalid command: {where}: {first['msg']}"


def main() -> None:
    """Run the incidents service until SIGINT/SIGTERM."""
    settings = IncidentsSettings()
    configure_logging(settings.log_level)
    uvloop.run(build_app(settings).run())
