"""The FastStream NATS broker every service is built on."""

from __future__ import annotations

from faststream.nats import NatsBroker

from spendwatch.common.logging import get_logger
from spendwatch.common.messaging.dlq import DeadLetterMiddleware
from spendwatch.common.messaging.lag import ConsumerLagMiddleware
from spendwatch.common.settings import BaseServiceSettings


def make_broker(settings: BaseServiceSettings, *, name: str) -> NatsBroker:
    """A broker for service `name` that dead-letters invalid payloads and reports each durable
    consumer's backlog; connects on start."""
    broker = NatsBroker(
        settings.nats_url,
        name=f"spendwatch-{name}",
        logger=get_logger(f"spendwatch.{name}.broker"),
        max_reconnect_attempts=-1,
    )
    broker.add_middleware(ConsumerLagMiddleware)
    broker.add_middleware(DeadLetterMiddleware)
    return broker
