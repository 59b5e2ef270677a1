"""Consumer lag: how many messages wait for each durable consumer, as every service sees it.

Two sources feed one gauge: each JetStream message carries the backlog behind it (free, and
current while messages flow), and `LagWatcher` asks the server every few seconds, so a consumer
that receives nothing at all (stuck, or its service down to zero replicas) still shows a
growing backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from faststream import BaseMiddleware, FastStream
from faststream.message import StreamMessage
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NotJSMessageError
from prometheus_client import Gauge

from spendwatch.common.logging import get_logger

log = get_logger(__name__)
LAG_POLL_SECONDS = 15.0

CONSUMER_PENDING = Gauge(
    "spendwatch_consumer_pending_messages",
    "Messages waiting for the durable consumer (as of the last message it received)",
    ["durable"],
)


def observe_pending(msg: Msg) -> None:
    """Record the backlog JetStream reported with this message (core NATS ones have none)."""
    try:
        metadata = msg.metadata
    except NotJSMessageError:
        return
    CONSUMER_PENDING.labels(metadata.consumer).set(metadata.num_pending)


class ConsumerLagMiddleware(BaseMiddleware):
    """FastStream middleware: every JetStream message updates its consumer's backlog gauge."""

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        """Record the backlog, then run the handler."""
        observe_pending(msg.raw_message)
        return await call_next(msg)


class LagWatcher:
    """Polls the backlog of this service's durable consumers into the gauge."""

    def __init__(
        self,
        broker: NatsBroker,
        consumers: Sequence[tuple[str, str]],
        *,
        interval: float = LAG_POLL_SECONDS,
    ) -> None:
        self._broker = broker
        self._consumers = tuple(consumers)  # (stream, durable)
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def attach(self, app: FastStream) -> None:
        """Run while `app` runs."""
        app.after_startup(self.start)
        app.on_shutdown(self.stop)

    async def poll_once(self) -> None:
        """Ask the server for each consumer's backlog; a consumer it cannot see is skipped."""
        js = self._broker.connection.jetstream()
        for stream, durable in self._consumers:
            try:
                info = await js.consumer_info(stream, durable)
            except (NatsError, TimeoutError) as exc:
                log.debug("lag.unavailable", durable=durable, error=type(exc).__name__)
                continue
            CONSUMER_PENDING.labels(durable).set(info.num_pending or 0)

    async def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run(), name="consumer-lag")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self._interval)
