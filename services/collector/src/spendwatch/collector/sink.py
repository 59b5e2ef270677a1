"""The sink: usage messages from JetStream into PostgreSQL, exactly once in effect.

Per batch: dead-letter the invalid messages; in ONE transaction insert the new events
(`ON CONFLICT DO NOTHING RETURNING`), fold only those into the daily rollup, store snapshots and
write the `usage.committed` notices to the outbox; commit; ack; publish the notices.
A redelivered or replayed event finds its row already there and changes nothing, and a notice
lost to a crash after commit is republished from the outbox.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence

import asyncpg
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from spendwatch.collector import metrics, repository
from spendwatch.collector.batch import Snapshot, SortedBatch, commit_notices, sort_batch
from spendwatch.common.errors import MessagingError
from spendwatch.common.events import (
    DailyUsageSnapshotV1,
    SpendSnapshotV1,
    UsageCommittedV1,
    utc_now,
)
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import (
    ConsumerSpec,
    dead_letter,
    publish_event,
    subjects,
)
from spendwatch.common.messaging.streams import USAGE

log = get_logger(__name__)

OUTBOX_GRACE_SECONDS = 10.0
SINK_DURABLE = subjects.durable("collector", USAGE.name)


def sink_consumer(max_deliver: int = 20, ack_wait_seconds: float = 60.0) -> ConsumerSpec:
    """The sink's durable consumer: every usage event and snapshot."""
    return ConsumerSpec(
        stream=USAGE.name,
        durable=SINK_DURABLE,
        filter_subjects=(subjects.USAGE_EVENTS_ALL, subjects.USAGE_SNAPSHOTS_ALL),
        max_deliver=max_deliver,
        ack_wait_seconds=ack_wait_seconds,
    )


class UsageSink:
    """Stores batches of usage messages; see the module docstring for the protocol."""

    def __init__(self, *, pool: asyncpg.Pool, js: JetStreamContext, timezone: str) -> None:
        self._pool = pool
        self._js = js
        self._timezone = timezone
        self._publishing: set[asyncio.Task[None]] = set()

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Store one fetched batch, ack it, announce it; raises only on transient failure."""
        started = time.perf_counter()
        batch, notices = await self.store(msgs)
        for msg in msgs:
            await msg.ack()
        if notices:  # in the background: the next batch need not wait for NATS's ack
            task = asyncio.create_task(self._publish(notices))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)
        for notice in notices:
            metrics.EVENTS_INGESTED.labels(notice.provider).inc(notice.new_events)
        self._observe(batch, started)

    async def store(self, msgs: Sequence[Msg]) -> tuple[SortedBatch, list[UsageCommittedV1]]:
        """Dead-letter the invalid messages and commit the rest with their notices (no ack)."""
        batch = sort_batch(list(msgs))
        for msg, reason in batch.invalid:
            await dead_letter(self._js, msg, reason)
        notices: list[UsageCommittedV1] = []
        async with self._pool.acquire() as conn, conn.transaction():
            if batch.events:
                await repository.prepare_stage(conn)
                touched = await repository.insert_usage_events(
                    conn, events=batch.events, timezone=self._timezone
                )
                notices = commit_notices(touched, utc_now())
                for notice in notices:
                    await repository.insert_outbox(
                        conn,
                        commit_id=notice.commit_id,
                        provider=notice.provider,
                        payload=notice.model_dump(mode="json"),
                    )
            for snapshot in batch.snapshots:
                await _store_snapshot(conn, snapshot)
        return batch, notices

    async def _publish(self, notices: list[UsageCommittedV1]) -> None:
        if not notices:
            return
        try:
            for notice in notices:
                await publish_event(
                    self._js,
                    subjects.usage_committed(notice.provider),
                    notice,
                    msg_id=notice.commit_id,
                )
        except MessagingError:
            log.warning("sink.notice_publish_failed", commits=[n.commit_id for n in notices])
            return  # committed and acked; the outbox loop publishes it later
        await repository.mark_published(self._pool, commit_ids=[n.commit_id for n in notices])

    async def flush(self) -> None:
        """Wait until every notice handed to the background is published (or left to the outbox)."""
        while self._publishing:
            await asyncio.gather(*self._publishing)

    async def republish_outbox(self, *, grace_seconds: float = OUTBOX_GRACE_SECONDS) -> int:
        """Publish notices whose publish was cut short (crash, NATS outage); returns how many."""
        pending = await repository.unpublished(self._pool, older_than_seconds=grace_seconds)
        notices = [UsageCommittedV1.model_validate(payload) for payload in pending]
        await self._publish(notices)
        if notices:
            log.info("sink.outbox_republished", count=len(notices))
        return len(notices)

    async def run_outbox(self, interval: float = 10.0) -> None:
        """Republish stranded notices and prune old ones, forever."""
        last_prune = 0.0
        while True:
            try:
                await self.republish_outbox()
                if time.monotonic() - last_prune > 3600:
                    await repository.prune_outbox(self._pool)
                    last_prune = time.monotonic()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("sink.outbox_unavailable", exc_info=True)
            await asyncio.sleep(interval)

    @staticmethod
    def _observe(batch: SortedBatch, started: float) -> None:
        for provider, count in Counter(e.provider for e in batch.events).items():
            metrics.EVENTS_RECEIVED.labels(provider).inc(count)
        for snapshot in batch.snapshots:
            metrics.SNAPSHOTS_STORED.labels(snapshot.type).inc()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)


async def _store_snapshot(conn: asyncpg.Connection, snapshot: Snapshot) -> None:
    if isinstance(snapshot, DailyUsageSnapshotV1):
        await repository.upsert_daily_usage(conn, snapshot)
    elif isinstance(snapshot, SpendSnapshotV1):
        await repository.upsert_spend(conn, snapshot)
    else:
        await repository.upsert_roster(conn, snapshot)
