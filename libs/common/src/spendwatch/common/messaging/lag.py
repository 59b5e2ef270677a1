"""Consumer lag: how many messages wait for each durable consumer, as every service sees it."""

from __future__ import annotations

from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError
from prometheus_client import Gauge

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
