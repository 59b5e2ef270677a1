"""Messaging infrastructure on a real nats-server: streams, the DLQ middleware, giving up."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from spendwatch.common.events import UsageCommittedV1
from spendwatch.common.messaging import (
    ALL_STREAMS,
    BatchConsumer,
    ConsumerSpec,
    ensure_consumer,
    ensure_streams,
    subjects,
)
from spendwatch.common.messaging.dlq import DEAD_LETTERED, REASON, DeadLetterMiddleware
from spendwatch.common.messaging.lag import CONSUMER_PENDING, ConsumerLagMiddleware, LagWatcher
from spendwatch.common.messaging.streams import StreamSpec
from tests.integration.sinkkit import wait_for


async def test_ensure_streams_is_idempotent_and_updates_changed_limits(
    js: JetStreamContext,
) -> None:
    await ensure_streams(js)
    await ensure_streams(js)
    names = {s.config.name for s in await js.streams_info()}
    assert names == {s.name for s in ALL_STREAMS}
    changed = StreamSpec("DLQ", (subjects.DLQ_ALL,), max_age_seconds=3600.0)
    await ensure_streams(js, (changed,))
    assert (await js.stream_info("DLQ")).config.max_age == 3600.0


async def test_concurrent_ensure_streams_race_safely(js: JetStreamContext) -> None:
    for stream in await js.streams_info():
        await js.delete_stream(stream.config.name)
    await asyncio.gather(*(ensure_streams(js) for _ in range(4)))
    assert len(await js.streams_info()) == len(ALL_STREAMS)


async def read_dlq(js: JetStreamContext, count: int) -> list[Msg]:
    sub = await js.subscribe(subjects.DLQ_ALL, ordered_consumer=True)
    try:
        return [await sub.next_msg(timeout=5) for _ in range(count)]
    finally:
        await sub.unsubscribe()


async def test_dlq_middleware_parks_invalid_payloads_and_keeps_consuming(
    nats_url: str, js: JetStreamContext
) -> None:
    broker = NatsBroker(nats_url)
    broker.add_middleware(ConsumerLagMiddleware)
    broker.add_middleware(DeadLetterMiddleware)
    received: list[UsageCommittedV1] = []

    @broker.subscriber(
        subjects.usage_committed("cursor"),
        stream=JStream("USAGE", declare=False),
        durable="test-USAGE",
        pull_sub=PullSub(batch_size=10, timeout=0.2),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def handle(notice: UsageCommittedV1) -> None:
        received.append(notice)

    good = UsageCommittedV1.model_validate(
        {
            "commit_id": "c1",
            "provider": "cursor",
            "keys": [],
            "earliest_occurred_at": "2026-11-21T00:00:00Z",
            "new_events": 1,
            "cost_micros": 5,
            "committed_at": "2026-11-21T00:00:01Z",
        }
    )
    subject = subjects.usage_committed("cursor")
    counted = DEAD_LETTERED.labels("usage")._value.get()
    CONSUMER_PENDING.labels("test-USAGE").set(-1)  # so the assertion below sees a real update
    await js.publish(subject, b"definitely not json")
    await js.publish(subject, b'{"commit_id": "c2"}')
    await js.publish(subject, good.model_dump_json().encode())

    async with broker:
        await broker.start()
        await wait_for(lambda: _true(received), timeout=20, what="the valid message")

    assert received == [good]
    parked = await read_dlq(js, 2)
    assert {m.subject for m in parked} == {f"dlq.{subject}"}
    reasons = [m.headers[REASON] for m in parked if m.headers]
    assert any("provider: Field required" in r for r in reasons)
    assert DEAD_LETTERED.labels("usage")._value.get() == counted + 2
    # The backlog JetStream reported with the last message: nothing was waiting behind it.
    assert CONSUMER_PENDING.labels("test-USAGE")._value.get() == 0
    info = await js.consumer_info("USAGE", "test-USAGE")
    assert info.num_ack_pending == 0  # invalid ones were acked
    assert info.num_pending == 0


async def _true(items: list[UsageCommittedV1]) -> bool:
    return bool(items)


async def test_batch_consumer_dead_letters_after_max_deliver(js: JetStreamContext) -> None:
    spec = ConsumerSpec(
        stream="USAGE",
        durable="test-fail",
        filter_subjects=(subjects.usage_committed("cursor"),),
        max_deliver=2,
        ack_wait_seconds=5,
    )
    attempts = 0

    async def always_fails(msgs: Sequence[Msg]) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("database is down")

    await js.publish(subjects.usage_committed("cursor"), b"{}")
    CONSUMER_PENDING.labels("test-fail").set(-1)  # so the assertion below sees a real update
    consumer = BatchConsumer(js, spec, always_fails, fetch_timeout=0.3)
    task = asyncio.create_task(consumer.run())
    try:
        (parked,) = await read_dlq(js, 1)
    finally:
        consumer.stop()
        await task
    assert attempts == 2
    assert CONSUMER_PENDING.labels("test-fail")._value.get() == 0  # reported per batch
    assert parked.headers
    assert "gave up after 2 deliveries: RuntimeError: database is down" in parked.headers[REASON]


async def test_the_lag_watcher_reports_a_backlog_nobody_consumes(
    nats_url: str, js: JetStreamContext
) -> None:
    spec = ConsumerSpec(
        stream="USAGE", durable="test-stuck", filter_subjects=(subjects.usage_committed("x"),)
    )
    await ensure_consumer(js, spec)
    for n in range(3):
        await js.publish(subjects.usage_committed("x"), b"{}", headers={"Nats-Msg-Id": f"s{n}"})
    broker = NatsBroker(nats_url)
    watcher = LagWatcher(broker, [("USAGE", "test-stuck"), ("USAGE", "no-such-consumer")])
    async with broker:
        await broker.connect()
        await watcher.poll_once()  # the missing consumer is skipped, not fatal
        assert CONSUMER_PENDING.labels("test-stuck")._value.get() == 3
        await watcher.start()  # and the background loop polls until stopped
        await watcher.stop()
