"""A durable JetStream pull consumer that hands whole batches to a handler.

The sink needs batches of hundreds of messages per database round trip. nats-py's `fetch`
returns as soon as messages are there (it does not wait to fill the batch), so batching adapts
to load without adding latency when traffic is light.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from spendwatch.common.logging import get_logger
from spendwatch.common.messaging.dlq import dead_letter
from spendwatch.common.messaging.lag import observe_pending

log = get_logger(__name__)

BatchHandler = Callable[[Sequence[Msg]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A durable pull consumer on `stream` filtered to `filter_subjects`."""

    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    max_deliver: int = 20
    ack_wait_seconds: float = 60.0
    max_ack_pending: int = 20_000

    def config(self) -> ConsumerConfig:
        """The nats-py configuration for this consumer."""
        return ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_seconds,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            filter_subjects=list(self.filter_subjects),
        )


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Create the durable consumer, or update it to `spec`; safe to race."""
    try:
        await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, spec.config())
        return
    await js.add_consumer(spec.stream, spec.config())  # same-name add updates in place


def redelivery_delay(deliveries: int) -> float:
    """Seconds before a failed message is offered again: 1, 2, 4 ... capped at 60."""
    return float(min(60, 2 ** max(0, deliveries - 1)))


class BatchConsumer:
    """Fetches batches from a durable consumer and runs `handler` on each, until stopped.

    The handler acks what it committed and dead-letters what is invalid. If it raises, the
    whole batch is nak'ed with a growing delay; a message that has failed `max_deliver` times
    is dead-lettered with the last error instead of being dropped silently.
    """

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handler: BatchHandler,
        *,
        batch_size: int = 500,
        fetch_timeout: float = 2.0,
    ) -> None:
        self._js = js
        self._spec = spec
        self._handler = handler
        self._batch_size = batch_size
        self._fetch_timeout = fetch_timeout
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Consume until `stop()` is called.

        The next batch is fetched while the current one is handled, so the database round
        trip and the fetch overlap; acks still come only after the handler's commit.
        """
        await ensure_consumer(self._js, self._spec)
        sub = await self._js.pull_subscribe_bind(self._spec.durable, stream=self._spec.stream)
        log.info("consumer.started", durable=self._spec.durable, stream=self._spec.stream)
        ready: asyncio.Queue[list[Msg] | None] = asyncio.Queue(maxsize=1)
        fetcher = asyncio.create_task(
            self._fetch_loop(sub, ready), name=f"{self._spec.durable}-fetch"
        )
        try:
            while (batch := await ready.get()) is not None:
                await self._handle(batch)
            await fetcher  # re-raises what stopped the fetching, if anything
        finally:
            fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetcher
            await sub.unsubscribe()
            log.info("consumer.stopped", durable=self._spec.durable)

    async def _fetch_loop(
        self, sub: JetStreamContext.PullSubscription, ready: asyncio.Queue[list[Msg] | None]
    ) -> None:
        """Fill `ready` with batches; end it with None (the batch in hand is still handled)."""
        try:
            while not self._stopping.is_set():
                try:
                    batch = await sub.fetch(self._batch_size, timeout=self._fetch_timeout)
                except (NatsTimeoutError, TimeoutError):
                    continue
                except ConnectionClosedError:
                    if self._stopping.is_set():
                        break
                    raise
                if batch:  # nats-py can hand back an empty list when a pull request expires
                    await ready.put(batch)
        except Exception:
            await ready.put(None)
            raise
        await ready.put(None)

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run()`."""
        self._stopping.set()

    async def _handle(self, batch: Sequence[Msg]) -> None:
        observe_pending(batch[-1])  # the backlog behind this batch, as FastStream services do
        try:
            await self._handler(batch)
        except Exception as exc:  # any failure: the batch is retried later, never lost
            log.exception("consumer.batch_failed", durable=self._spec.durable, size=len(batch))
            await self._retry_later(batch, exc)

    async def _retry_later(self, batch: Sequence[Msg], exc: Exception) -> None:
        for msg in batch:
            deliveries = msg.metadata.num_delivered
            if deliveries >= self._spec.max_deliver:
                reason = f"gave up after {deliveries} deliveries: {type(exc).__name__}: {exc}"
                await dead_letter(self._js, msg, " ".join(reason.split())[:900])
                await msg.ack()
            else:
                await msg.nak(delay=redelivery_delay(deliveries))
