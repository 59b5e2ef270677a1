"""Helpers shared by the sink tests: run a real consumer, wait for the database to settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from nats.js import JetStreamContext

from spendwatch.collector.sink import UsageSink, sink_consumer
from spendwatch.common.events import UsageRecordedV1
from spendwatch.common.messaging import BatchConsumer, ensure_consumer, publish_many, subjects
from spendwatch.common.messaging.consumer import BatchHandler, ConsumerSpec


@asynccontextmanager
async def running_sink(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    *,
    wrap: Callable[[UsageSink, BatchHandler], BatchHandler] | None = None,
    spec: ConsumerSpec | None = None,
    timezone: str = "UTC",
) -> AsyncIterator[UsageSink]:
    """A real sink consuming the USAGE stream in the background."""
    sink = UsageSink(pool=pool, js=js, timezone=timezone)
    handler = wrap(sink, sink.handle) if wrap else sink.handle
    spec = spec or sink_consumer()
    await ensure_consumer(js, spec)
    consumer = BatchConsumer(js, spec, handler, batch_size=500, fetch_timeout=0.5)
    task = asyncio.create_task(consumer.run())
    try:
        yield sink
    finally:
        consumer.stop()
        await asyncio.wait_for(task, timeout=10)
        await sink.flush()


async def publish_events(
    js: JetStreamContext, events: list[UsageRecordedV1], *, id_prefix: str = ""
) -> int:
    """Publish events with many acks in flight; msg ids are `<prefix><event_id>`."""
    return await publish_many(
        js, ((subjects.usage_events(e.provider), e, id_prefix + e.event_id) for e in events)
    )


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 60.0, what: str = "condition"
) -> None:
    """Poll `check` until it is true, or fail with `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def consumer_drained(js: JetStreamContext, spec: ConsumerSpec | None = None) -> bool:
    """Nothing pending and nothing awaiting ack on the sink's consumer."""
    spec = spec or sink_consumer()
    info = await js.consumer_info(spec.stream, spec.durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def assert_exact(pool: asyncpg.Pool, events: list[UsageRecordedV1]) -> None:
    """Rows, totals and the rollup equal the events, to the micro-dollar."""
    unique = {e.event_id: e for e in events}
    assert await pool.fetchval("SELECT count(*) FROM usage_events") == len(unique)
    expected_total = sum(e.cost_micros for e in unique.values())
    assert await pool.fetchval("SELECT sum(cost_micros) FROM usage_events") == expected_total
    assert (
        await pool.fetchval("SELECT sum(cost_micros) FROM usage_daily_user_model") == expected_total
    )
    assert await pool.fetchval("SELECT sum(events) FROM usage_daily_user_model") == len(unique)
    on_demand = [e for e in unique.values() if e.kind == "usage_based"]
    assert tuple(
        await pool.fetchrow(
            "SELECT sum(usage_based_events)::bigint, sum(usage_based_micros)::bigint"
            " FROM usage_daily_user_model"
        )
    ) == (len(on_demand), sum(e.cost_micros for e in on_demand))
    expected: dict[tuple[str, str, str], tuple[int, int]] = {}
    for e in unique.values():
        key = (e.occurred_at.date().isoformat(), e.user_email, e.model)
        count, cost = expected.get(key, (0, 0))
        expected[key] = (count + 1, cost + e.cost_micros)
    rows = await pool.fetch(
        "SELECT day::text, user_email, model, events, cost_micros FROM usage_daily_user_model"
    )
    assert {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows} == expected
