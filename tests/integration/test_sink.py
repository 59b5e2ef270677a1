"""The sink against real NATS JetStream and PostgreSQL: exact, idempotent, never double-counts."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from spendwatch.collector.sink import UsageSink, sink_consumer
from spendwatch.common.events import UsageCommittedV1
from spendwatch.common.messaging import subjects
from spendwatch.common.messaging.consumer import BatchHandler
from spendwatch.common.testing import sample_usage_events
from tests.integration.sinkkit import (
    assert_exact,
    consumer_drained,
    publish_events,
    running_sink,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def committed_notices(nc: NatsClient) -> list[UsageCommittedV1]:
    """Every `usage.committed` notice in the stream (an ephemeral ordered read)."""
    js = nc.jetstream()
    info = await js.stream_info("USAGE", subjects_filter=subjects.USAGE_COMMITTED_ALL)
    total = sum((info.state.subjects or {}).values())
    if not total:
        return []
    sub = await js.subscribe(subjects.USAGE_COMMITTED_ALL, ordered_consumer=True)
    notices = []
    for _ in range(total):
        msg = await sub.next_msg(timeout=5)
        notices.append(UsageCommittedV1.model_validate_json(msg.data))
    await sub.unsubscribe()
    return notices


async def test_published_twice_with_crashes_and_naks_stores_each_event_once(
    js: JetStreamContext, nc: NatsClient, pool: asyncpg.Pool
) -> None:
    events = list(sample_usage_events(10_000, seed=11))
    assert await publish_events(js, events) == 10_000
    # Same events, new message ids: as if past the dedup window, only the DB can catch them.
    assert await publish_events(js, events, id_prefix="replay:") == 10_000

    rng = random.Random(3)
    crashes_left = 3

    def chaos(sink: UsageSink, handle: BatchHandler) -> BatchHandler:
        async def handler(msgs: Sequence[Msg]) -> None:
            nonlocal crashes_left
            if crashes_left:
                crashes_left -= 1
                await sink.store(msgs)  # committed, then "crash": never acked, so redelivered
                return
            naked = [m for m in msgs if m.metadata.num_delivered == 1 and rng.random() < 0.2]
            for msg in naked:
                await msg.nak()
            await handle([m for m in msgs if m not in naked])

        return handler

    spec = dataclasses.replace(sink_consumer(), ack_wait_seconds=2.0)
    async with running_sink(js, pool, wrap=chaos, spec=spec) as sink:
        await wait_for(lambda: consumer_drained(js, spec), timeout=120, what="sink to drain")
        # What a restarted sink does first: publish the notices the "crashes" stranded.
        assert await sink.republish_outbox(grace_seconds=0) == 3

    await assert_exact(pool, events)
    notices = {n.commit_id: n for n in await committed_notices(nc)}
    # Every new row is announced exactly once, however often its message was delivered...
    assert sum(n.new_events for n in notices.values()) == 10_000
    assert sum(n.cost_micros for n in notices.values()) == sum(e.cost_micros for e in events)
    # ...and the crashed batches' notices came from the outbox, none are left behind.
    assert await pool.fetchval("SELECT count(*) FROM usage_commits WHERE published_at IS NULL") == 0


async def test_commit_notice_lists_touched_keys_and_earliest_time(
    js: JetStreamContext, nc: NatsClient, pool: asyncpg.Pool
) -> None:
    events = list(sample_usage_events(40, seed=5, users=3, days=2))
    await publish_events(js, events)
    async with running_sink(js, pool):
        await wait_for(lambda: consumer_drained(js), what="sink to drain")
        await wait_for(lambda: _has_notices(nc), what="notice")
    notices = await committed_notices(nc)
    keys = {(k.user_email, k.day) for n in notices for k in n.keys}
    assert keys == {(e.user_email, e.occurred_at.date()) for e in events}
    assert min(n.earliest_occurred_at for n in notices) == min(e.occurred_at for e in events)
    assert all(n.provider == "cursor" for n in notices)


async def _has_notices(nc: NatsClient) -> bool:
    return bool(await committed_notices(nc))


async def test_rollup_days_follow_the_team_timezone(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    # 2026-11-21 03:30 UTC is still 2026-11-20 in Los Angeles.
    from datetime import UTC, datetime  # noqa: PLC0415

    (event,) = sample_usage_events(1, seed=1, days=1)
    event = event.model_copy(update={"occurred_at": datetime(2026, 11, 21, 3, 30, tzinfo=UTC)})
    await publish_events(js, [event])
    async with running_sink(js, pool, timezone="America/Los_Angeles"):
        await wait_for(lambda: consumer_drained(js), what="sink to drain")
    day = await pool.fetchval("SELECT day::text FROM usage_daily_user_model")
    assert day == "2026-11-20"


async def test_invalid_payloads_go_to_the_dlq_with_a_reason_and_the_rest_is_stored(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    good = list(sample_usage_events(200, seed=9))
    first = json.loads(good[0].model_dump_json())
    missing_field = {k: v for k, v in first.items() if k != "user_email"} | {"event_id": "bad-1"}
    wrong_type = first | {"event_id": "bad-2", "cost_micros": "lots"}
    subject = subjects.usage_events("cursor")
    await publish_events(js, good[:100])
    await js.publish(subject, json.dumps(missing_field).encode())
    await js.publish(subject, json.dumps(wrong_type).encode())
    await js.publish(subject, b"\xff\xfe not json at all")
    await js.publish(subjects.usage_snapshot("spend", "cursor"), b'{"rows": 5}')
    await publish_events(js, good[100:])

    async with running_sink(js, pool):
        await wait_for(lambda: consumer_drained(js), what="sink to drain")

    await assert_exact(pool, good)
    sub = await js.subscribe("dlq.>", ordered_consumer=True)
    parked = [await sub.next_msg(timeout=5) for _ in range(4)]
    await sub.unsubscribe()
    reasons = {m.data: m.headers["Spendwatch-Dlq-Reason"] for m in parked if m.headers}
    assert "user_email: Field required" in reasons[json.dumps(missing_field).encode()]
    assert "cost_micros" in reasons[json.dumps(wrong_type).encode()]
    assert (
        "Invalid JSON" in reasons[b"\xff\xfe not json at all"]
        or "json" in reasons[b"\xff\xfe not json at all"].lower()
    )
    assert {m.subject for m in parked} == {f"dlq.{subject}", "dlq.usage.snapshots.v1.spend.cursor"}
    info = await js.stream_info("DLQ")
    assert info.state.messages == 4
