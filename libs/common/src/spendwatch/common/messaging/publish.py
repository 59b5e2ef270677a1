"""Publishing events to JetStream with `Nats-Msg-Id`, so a republish is dropped as a duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from spendwatch.common.errors import MessagingError
from spendwatch.common.events import Event

MSG_ID = "Nats-Msg-Id"


def encode(event: Event) -> bytes:
    """The wire bytes of an event (JSON)."""
    return event.model_dump_json().encode()


async def publish_event(
    js: JetStreamContext, subject: str, event: Event, *, msg_id: str, timeout: float = 5.0
) -> PubAck:
    """Publish one event and wait for the stream's ack."""
    try:
        return await js.publish(subject, encode(event), timeout=timeout, headers={MSG_ID: msg_id})
    except (NatsError, TimeoutError) as exc:
        raise MessagingError(f"publish to {subject} failed: {exc!r}") from exc


async def publish_many(
    js: JetStreamContext, items: Iterable[tuple[str, Event, str]], *, timeout: float = 30.0
) -> int:
    """Publish (subject, event, msg_id) items with many acks in flight; returns how many were new.

    nats-py bounds the number in flight (4000 by default), so memory stays flat.
    """
    futures: list[asyncio.Future[PubAck]] = []
    try:
        for subject, event, msg_id in items:
            futures.append(await js.publish_async(subject, encode(event), headers={MSG_ID: msg_id}))
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=timeout)
    except (NatsError, TimeoutError) as exc:
        raise MessagingError(f"bulk publish failed: {exc!r}") from exc
    return sum(1 for ack in acks if not ack.duplicate)
