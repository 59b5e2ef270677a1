"""One collection pass over a Cursor team: roster, spend, daily usage, then the usage events.

Events are read from the stored checkpoint minus an overlap window (late-arriving events are
caught; the database drops what it already has), in windows of at most 30 days, oldest first.
Each page is published as it arrives, and the checkpoint advances after each window has been
published, so an interrupted backfill resumes where it stopped. The first pass reaches back
COLLECT_BACKFILL_DAYS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from nats.js import JetStreamContext

from spendwatch.collector import collector_state, metrics
from spendwatch.collector.cursor.client import CursorAdminClient, windows
from spendwatch.collector.cursor.errors import CursorAuthError, CursorError
from spendwatch.common.events import (
    DailyUsageSnapshotV1,
    RosterSnapshotV1,
    SpendSnapshotV1,
    UsageRecordedV1,
    utc_now,
)
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import (
    dead_letter_payload,
    publish_event,
    publish_many,
    subjects,
)

PROVIDER = "cursor"
EVENTS_FEED = "usage_events"
DAILY_LOOKBACK = timedelta(days=7)  # daily activity is re-read this far back on every pass
SNAPSHOT_ROWS = 500  # rows per snapshot message (~300 KB at most)

T = TypeVar("T")

log = get_logger(__name__)


@dataclass
class PassSummary:
    """What one pass did, for the CLI table and the logs."""

    members: int = 0
    spend_rows: int = 0
    daily_rows: int = 0
    events: int = 0
    new_events: int = 0
    invalid: int = 0
    requests: int = 0
    duration_seconds: float = 0.0
    window_start: datetime | None = None
    window_end: datetime | None = None
    health: str = "ok"
    errors: list[str] = field(default_factory=list)


PageProgress = Callable[[int], None]


class CursorPass:
    """Collects one Cursor team into the bus; the sink stores what it publishes."""

    def __init__(
        self,
        *,
        client: CursorAdminClient,
        js: JetStreamContext,
        db: asyncpg.Pool,
        account: str = "",
        overlap: timedelta = timedelta(hours=2),
        backfill: timedelta = timedelta(days=90),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._client = client
        self._js = js
        self._db = db
        self._account = account
        self._overlap = overlap
        self._backfill = backfill
        self._clock = clock

    async def run(
        self, *, since: datetime | None = None, on_events: PageProgress | None = None
    ) -> PassSummary:
        """Run the pass; provider failures end it with a health status, not an exception."""
        started = time.monotonic()
        summary = PassSummary()
        requests_before = self._client.requests_made
        try:
            now = self._clock()
            cycle_start = await self._snapshots(now, summary)
            await self._events(now, since, cycle_start, summary, on_events)
        except CursorAuthError as exc:
            summary.health = "auth_failed"
            summary.errors.append(str(exc))
            log.error("cursor.auth_failed", account=self._account, error=str(exc))
        except CursorError as exc:
            summary.health = "unavailable"
            summary.errors.append(str(exc))
            log.error("cursor.pass_failed", account=self._account, error=str(exc))
        if summary.health != "ok":
            await collector_state.set_health(
                self._db,
                provider=PROVIDER,
                account=self._account,
                feed=EVENTS_FEED,
                health=summary.health,
                error="; ".join(summary.errors)[:2000],
            )
        summary.requests = self._client.requests_made - requests_before
        summary.duration_seconds = time.monotonic() - started
        _observe(summary)
        log.info("cursor.pass_done", account=self._account, **_loggable(summary))
        return summary

    async def _snapshots(self, now: datetime, summary: PassSummary) -> datetime | None:
        """Roster (members + groups), spend for the current cycle, recent daily activity.

        Rows go out in chunks of SNAPSHOT_ROWS so no message nears NATS's 1 MB payload limit.
        """
        members = await self._client.members()
        groups = await self._client.groups()
        summary.members = len(members)
        for part, chunk in enumerate(chunked(members, SNAPSHOT_ROWS)):
            await self._publish_snapshot(
                "roster",
                RosterSnapshotV1(
                    **self._envelope("roster", now, f"members.{part}"),
                    members=chunk,
                ),
            )
        await self._publish_snapshot(
            "roster",
            RosterSnapshotV1(
                **self._envelope("roster", now, "groups"),
                groups=groups.groups,
                # A group that failed to parse must not be mistaken for a deleted one.
                complete_groups=not groups.invalid,
            ),
        )
        cycle_start: datetime | None = groups.cycle_start
        async for page in self._client.spend_pages():
            await self._dead_letter(
                subjects.usage_snapshot("spend", PROVIDER), page.invalid, summary
            )
            cycle_start = page.cycle_start or cycle_start
            if cycle_start is None:
                log.warning("cursor.spend_without_cycle", page=page.number, rows=len(page.rows))
                continue  # spend is kept per cycle; without its start it cannot be filed
            summary.spend_rows += len(page.rows)
            for part, rows in enumerate(chunked(page.rows, SNAPSHOT_ROWS)):
                await self._publish_snapshot(
                    "spend",
                    SpendSnapshotV1(
                        **self._envelope("spend", now, f"{page.number}.{part}"),
                        cycle_start=cycle_start,
                        rows=rows,
                    ),
                )
        number = 0
        async for daily in self._client.daily_usage_pages(now - DAILY_LOOKBACK, now):
            number += 1  # page numbers restart per 30-day window
            await self._dead_letter(
                subjects.usage_snapshot("daily", PROVIDER), daily.invalid, summary
            )
            summary.daily_rows += len(daily.rows)
            for part, day_rows in enumerate(chunked(daily.rows, SNAPSHOT_ROWS)):
                await self._publish_snapshot(
                    "daily",
                    DailyUsageSnapshotV1(
                        **self._envelope("daily", now, f"{number}.{part}"),
                        rows=day_rows,
                    ),
                )
        return cycle_start

    async def _events(
        self,
        now: datetime,
        since: datetime | None,
        cycle_start: datetime | None,
        summary: PassSummary,
        on_events: PageProgress | None,
    ) -> None:
        checkpoint = await collector_state.checkpoint(
            self._db, provider=PROVIDER, account=self._account, feed=EVENTS_FEED
        )
        if since is not None:
            start = since
        elif checkpoint is not None:
            start = checkpoint - self._overlap
        else:
            start = now - self._backfill
            if cycle_start is not None:
                start = min(start, cycle_start)
        summary.window_start, summary.window_end = start, now
        held = False  # once a window is incomplete, later windows must not move the checkpoint
        for window_start, window_end in windows(start, now):
            complete = True
            async for page in self._client.usage_event_pages(window_start, window_end):
                await self._publish_events(page.events, summary)
                await self._dead_letter(subjects.usage_events(PROVIDER), page.invalid, summary)
                complete = complete and page.envelope_ok
                if on_events:
                    on_events(len(page.events) + len(page.invalid))
            held = held or not complete
            if held:
                summary.errors.append(
                    f"an unreadable page in {window_start:%Y-%m-%d %H:%M}.."
                    f"{window_end:%Y-%m-%d %H:%M}: the next pass reads it again"
                )
                continue
            await collector_state.save_checkpoint(
                self._db,
                provider=PROVIDER,
                account=self._account,
                feed=EVENTS_FEED,
                at=window_end,
            )

    async def _publish_events(self, events: list[UsageRecordedV1], summary: PassSummary) -> None:
        if not events:
            return
        stored = await collector_state.stored_event_ids(
            self._db,
            provider=PROVIDER,
            event_ids=[e.event_id for e in events],
            first=min(e.occurred_at for e in events),
            last=max(e.occurred_at for e in events),
        )
        subject = subjects.usage_events(PROVIDER)
        await publish_many(self._js, ((subject, e, e.event_id) for e in events))
        summary.events += len(events)
        summary.new_events += sum(1 for e in events if e.event_id not in stored)

    async def _dead_letter(
        self, subject: str, invalid: list[tuple[bytes, str]], summary: PassSummary
    ) -> None:
        """Park what Cursor sent that cannot be used, with the reason; the pass goes on."""
        for payload, reason in invalid:
            summary.invalid += 1
            await dead_letter_payload(self._js, subject, payload, reason)

    async def _publish_snapshot(
        self, kind: str, snapshot: RosterSnapshotV1 | SpendSnapshotV1 | DailyUsageSnapshotV1
    ) -> None:
        await publish_event(
            self._js,
            subjects.usage_snapshot(kind, PROVIDER),
            snapshot,
            msg_id=snapshot.snapshot_id,
        )

    def _envelope(self, kind: str, at: datetime, part: str) -> dict[str, Any]:
        """The fields every snapshot message carries; the id is stable for a capture and part."""
        return {
            "snapshot_id": f"{PROVIDER}:{self._account}:{kind}:{at.isoformat()}:{part}",
            "provider": PROVIDER,
            "account": self._account,
            "captured_at": at,
        }


def chunked(items: list[T], size: int) -> list[list[T]]:
    """`items` in consecutive lists of at most `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def _observe(summary: PassSummary) -> None:
    metrics.POLL_PASSES.labels(PROVIDER, summary.health).inc()
    metrics.POLL_PASS_SECONDS.labels(PROVIDER).observe(summary.duration_seconds)
    metrics.POLL_EVENTS.labels(PROVIDER).inc(summary.events)
    metrics.POLL_INVALID.labels(PROVIDER).inc(summary.invalid)
    metrics.POLL_REQUESTS.labels(PROVIDER).inc(summary.requests)


def _loggable(summary: PassSummary) -> dict[str, object]:
    return {
        "members": summary.members,
        "events": summary.events,
        "new_events": summary.new_events,
        "invalid": summary.invalid,
        "requests": summary.requests,
        "health": summary.health,
        "seconds": round(summary.duration_seconds, 2),
    }
