"""SQL the notifier owns: the delivery log (`notifications`), the grouping windows, and the
usage, roster and billing-cycle reads behind the digests.

Every delivery is claimed before it is sent: the claim inserts a `pending` row keyed by the
idempotency key (`INSERT ... ON CONFLICT DO NOTHING RETURNING`), so of two consumers racing on
one delivery exactly one gets to send it; a `failed` row is claimed again by the next retry,
and a `pending` row whose claimer died is taken over once its lease has run out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from spendwatch.notifier.digests import Member, UserUsage

MICROS = Decimal(1_000_000)
Channel = Literal["slack", "email"]
Kind = Literal["message", "root", "reply", "update", "grouped", "digest"]
Db = Any  # an asyncpg Pool or Connection: both fetch and execute
Outcome = Literal["claimed", "sent", "busy", "waiting", "exhausted"]


def root_key(channel: str, incident_id: str) -> str:
    """The key of an incident's root message on `channel`."""
    return f"{channel}:root:{incident_id}"


def event_key(channel: str, event_id: str) -> str:
    """The key of what one incident event did on `channel`."""
    return f"{channel}:event:{event_id}"


def grouped_key(channel: str, window_id: int) -> str:
    """The key of the message listing a window's overflow on `channel`."""
    return f"{channel}:grouped:{window_id}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One row of the delivery log."""

    key: str
    channel: str
    kind: str
    status: str
    attempts: int
    incident_id: str | None
    slack_channel: str | None
    slack_ts: str | None
    message_key: str | None
    payload: dict[str, Any] | None
    error: str | None
    updated_at: datetime
    sent_at: datetime | None


_COLUMNS = """
idempotency_key, channel, kind, status, attempts, incident_id::text AS incident_id, slack_channel,
slack_ts, message_key, payload, error, updated_at, sent_at
"""


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        key=row["idempotency_key"],
        channel=row["channel"],
        kind=row["kind"],
        status=row["status"],
        attempts=row["attempts"],
        incident_id=row["incident_id"],
        slack_channel=row["slack_channel"],
        slack_ts=row["slack_ts"],
        message_key=row["message_key"],
        payload=row["payload"],
        error=row["error"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
    )


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim found: `claimed` (send it now), `sent` (done before: `row`), `busy` (someone
    else is sending it), `waiting` (failed lately, backing off), `exhausted` (given up)."""

    outcome: Outcome
    row: Delivery | None = None


async def delivery(db: Db, *, key: str) -> Delivery | None:
    """The row with this key."""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM notifications WHERE idempotency_key = $1", key)
    return _delivery(row) if row else None


async def claim(
    db: Db,
    *,
    key: str,
    channel: Channel,
    target: str,
    kind: Kind,
    now: datetime,
    lease: timedelta,
    incident_id: str | None = None,
    event_id: str | None = None,
    paced: bool = False,
    max_attempts: int | None = None,
) -> Claim:
    """Take the delivery `key` for sending, unless it was sent or someone else holds it.

    `paced`: a failed row is taken again only after a backoff that grows with its attempts
    (for what the periodic sweep retries; JetStream paces event redeliveries itself).
    """
    inserted = await db.fetchval(
        """
        INSERT INTO notifications (idempotency_key, incident_id, channel, target, status, kind,
                                   event_id, attempts, claimed_at, created_at, updated_at)
        VALUES ($1, $2::uuid, $3, $4, 'pending', $5, $6, 1, $7, $7, $7)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
        """,
        key,
        incident_id,
        channel,
        target,
        kind,
        event_id,
        now,
    )
    if inserted:
        return Claim("claimed")
    # READ COMMITTED re-checks the WHERE on the row a concurrent claimer just updated, so only
    # one of two racing retries gets it.
    retaken = await db.fetchval(
        """
        UPDATE notifications
        SET status = 'pending', attempts = attempts + 1, claimed_at = $2, updated_at = $2
        WHERE idempotency_key = $1
          AND ($5::int IS NULL OR attempts < $5)
          AND (
                (status = 'failed' AND (NOT $4::boolean OR updated_at
                    <= $2::timestamptz
                       - make_interval(secs => least(300, power(2, greatest(1, attempts))))))
             OR (status = 'pending' AND claimed_at < $3)
          )
        RETURNING 1
        """,
        key,
        now,
        now - lease,
        paced,
        max_attempts,
    )
    if retaken:
        return Claim("claimed")
    found = await delivery(db, key=key)
    if found is None:  # deleted in between: nothing sensible to do but try again later
        return Claim("busy")
    if found.status == "sent":
        return Claim("sent", found)
    if found.status == "pending":
        return Claim("busy", found)
    if max_attempts is not None and found.attempts >= max_attempts:
        return Claim("exhausted", found)
    return Claim("waiting", found)


async def mark_sent(
    db: Db,
    *,
    key: str,
    now: datetime,
    slack_channel: str | None = None,
    slack_ts: str | None = None,
    message_key: str | None = None,
    payload: dict[str, Any] | None = None,
    needs_alerted: bool = False,
) -> None:
    """The claimed delivery went out."""
    await db.execute(
        """
        UPDATE notifications
        SET status = 'sent', sent_at = $2, updated_at = $2, error = NULL, slack_channel = $3,
            slack_ts = $4, message_key = $5, payload = $6, needs_alerted = $7
        WHERE idempotency_key = $1
        """,
        key,
        now,
        slack_channel,
        slack_ts,
        message_key,
        payload,
        needs_alerted,
    )


async def mark_failed(db: Db, *, key: str, now: datetime, error: str) -> int:
    """The claimed delivery failed; returns how many attempts it has had."""
    attempts: int | None = await db.fetchval(
        """
        UPDATE notifications SET status = 'failed', error = $3, updated_at = $2
        WHERE idempotency_key = $1
        RETURNING attempts
        """,
        key,
        now,
        error[:2000],
    )
    return attempts or 0


async def release(db: Db, *, key: str) -> None:
    """Give a claimed delivery back untried (it is pending no more)."""
    await db.execute(
        "DELETE FROM notifications WHERE idempotency_key = $1 AND status = 'pending'", key
    )


# --- root messages and their edits -------------------------------------------------------------


async def lock_message(conn: Db, *, key: str) -> Delivery | None:
    """The row of a posted message, locked until the transaction ends (one edit at a time)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM notifications WHERE idempotency_key = $1 FOR UPDATE", key
    )
    return _delivery(row) if row else None


async def set_payload_if_newer(
    conn: Db, *, key: str, payload: dict[str, Any], now: datetime
) -> bool:
    """Store what a root shows, unless it already shows a newer version of the incident."""
    updated = await conn.fetchval(
        """
        UPDATE notifications SET payload = $2, updated_at = $3
        WHERE idempotency_key = $1
          AND (payload IS NULL OR coalesce(payload->>'version', '') < $2::jsonb->>'version')
        RETURNING 1
        """,
        key,
        payload,
        now,
    )
    return bool(updated)


async def message_payloads(conn: Db, *, message_key: str) -> list[dict[str, Any]]:
    """What a grouped message shows: its incidents' payloads, in the order they were listed."""
    rows = await conn.fetch(
        """
        SELECT payload FROM notifications
        WHERE message_key = $1 AND kind = 'root' AND payload IS NOT NULL
        ORDER BY notification_id
        """,
        message_key,
    )
    return [r["payload"] for r in rows]


async def add_grouped_roots(
    conn: Db,
    *,
    channel: Channel,
    target: str,
    message_key: str,
    slack_channel: str | None,
    slack_ts: str | None,
    members: Sequence[tuple[str, dict[str, Any]]],
    now: datetime,
    needs_alerted: bool,
) -> None:
    """Each listed incident's root is the grouped message."""
    await conn.executemany(
        """
        INSERT INTO notifications (idempotency_key, incident_id, channel, target, status, kind,
                                   message_key, slack_channel, slack_ts, payload, needs_alerted,
                                   attempts, created_at, updated_at, sent_at)
        VALUES ($1, $2::uuid, $3, $4, 'sent', 'root', $5, $6, $7, $8, $9, 1, $10, $10, $10)
        ON CONFLICT (idempotency_key) DO NOTHING
        """,
        [
            (
                root_key(channel, incident_id),
                incident_id,
                channel,
                target,
                message_key,
                slack_channel,
                slack_ts,
                payload,
                needs_alerted,
                now,
            )
            for incident_id, payload in members
        ],
    )


# --- the `alerted` command ---------------------------------------------------------------------


async def alerted_done(db: Db, *, incident_ids: Sequence[str]) -> None:
    """The incidents service has heard that these incidents were alerted."""
    await db.execute(
        "UPDATE notifications SET needs_alerted = false"
        " WHERE incident_id = ANY($1::uuid[]) AND needs_alerted",
        list(incident_ids),
    )


async def awaiting_alerted(db: Db, *, sent_before: datetime, limit: int = 200) -> list[str]:
    """Incidents alerted before `sent_before` whose `alerted` command is still unanswered."""
    rows = await db.fetch(
        """
        SELECT DISTINCT incident_id::text AS incident_id FROM notifications
        WHERE needs_alerted AND sent_at < $1 AND incident_id IS NOT NULL
        LIMIT $2
        """,
        sent_before,
        limit,
    )
    return [r["incident_id"] for r in rows]


# --- grouping windows --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admission:
    """How an incident was let in: posted at once, or in its window's overflow."""

    incident_id: str
    window_id: int
    overflow: bool
    position: int
    closes_at: datetime
    flush_started: bool
    flushed: bool


_ADMISSION = """
SELECT a.incident_id::text AS incident_id, a.window_id, a.overflow, a.position, w.closes_at,
       w.flush_started_at IS NOT NULL AS flush_started, w.flushed_at IS NOT NULL AS flushed
FROM notification_admissions AS a JOIN notification_windows AS w USING (window_id)
WHERE a.incident_id = $1::uuid
"""


def _admission(row: asyncpg.Record) -> Admission:
    return Admission(
        incident_id=row["incident_id"],
        window_id=row["window_id"],
        overflow=row["overflow"],
        position=row["position"],
        closes_at=row["closes_at"],
        flush_started=row["flush_started"],
        flushed=row["flushed"],
    )


async def admission(db: Db, *, incident_id: str) -> Admission | None:
    """How this incident was let in, if it was."""
    row = await db.fetchrow(_ADMISSION, incident_id)
    return _admission(row) if row else None


async def admit(
    conn: Db,
    *,
    incident_id: str,
    payload: dict[str, Any],
    now: datetime,
    window: timedelta,
    threshold: int,
) -> Admission:
    """Let an incident in (call inside a transaction): the first `threshold` of a window are
    posted at once, the rest overflow; a window opens with the first incident after the last
    one closed. Replicas take turns (transaction-scoped advisory lock)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('spendwatch.notifier:window'))")
    if found := await conn.fetchrow(_ADMISSION, incident_id):
        return _admission(found)
    current = await conn.fetchrow(
        "SELECT window_id, immediate FROM notification_windows WHERE closes_at > $1"
        " ORDER BY window_id DESC LIMIT 1",
        now,
    )
    if current is None:
        current = await conn.fetchrow(
            "INSERT INTO notification_windows (opened_at, closes_at) VALUES ($1, $2)"
            " RETURNING window_id, immediate",
            now,
            now + window,
        )
    overflow = current["immediate"] >= threshold
    counted = await conn.fetchrow(
        """
        UPDATE notification_windows
        SET immediate = immediate + CASE WHEN $2 THEN 0 ELSE 1 END,
            overflow = overflow + CASE WHEN $2 THEN 1 ELSE 0 END
        WHERE window_id = $1
        RETURNING immediate + overflow AS position
        """,
        current["window_id"],
        overflow,
    )
    await conn.execute(
        """
        INSERT INTO notification_admissions
            (incident_id, window_id, overflow, position, payload, admitted_at)
        VALUES ($1::uuid, $2, $3, $4, $5, $6)
        """,
        incident_id,
        current["window_id"],
        overflow,
        counted["position"],
        payload,
        now,
    )
    return _admission(await conn.fetchrow(_ADMISSION, incident_id))


async def refresh_admission(conn: Db, *, incident_id: str, payload: dict[str, Any]) -> bool:
    """Show the newer snapshot in the coming grouped message (call inside a transaction);
    False once that message is being posted."""
    started = await conn.fetchval(
        """
        SELECT w.flush_started_at IS NOT NULL
        FROM notification_windows AS w JOIN notification_admissions AS a USING (window_id)
        WHERE a.incident_id = $1::uuid
        FOR UPDATE OF w
        """,
        incident_id,
    )
    if started is None or started:
        return False
    await conn.execute(
        """
        UPDATE notification_admissions SET payload = $2
        WHERE incident_id = $1::uuid AND coalesce(payload->>'version', '') < $2::jsonb->>'version'
        """,
        incident_id,
        payload,
    )
    return True


async def start_flush(
    conn: Db, *, window_id: int, now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """Freeze a window's overflow (call inside a transaction): (incident id, payload) in order."""
    await conn.execute(
        "UPDATE notification_windows SET flush_started_at = coalesce(flush_started_at, $2)"
        " WHERE window_id = $1",
        window_id,
        now,
    )
    rows = await conn.fetch(
        """
        SELECT incident_id::text AS incident_id, payload FROM notification_admissions
        WHERE window_id = $1 AND overflow ORDER BY position
        """,
        window_id,
    )
    return [(r["incident_id"], r["payload"]) for r in rows]


async def finish_flush(db: Db, *, window_id: int, now: datetime) -> None:
    """Every channel has posted (or given up on) the window's grouped message."""
    await db.execute(
        "UPDATE notification_windows SET flushed_at = $2 WHERE window_id = $1", window_id, now
    )


async def due_windows(db: Db, *, now: datetime) -> list[tuple[int, datetime]]:
    """Closed windows whose overflow has not been posted: (window id, closes at)."""
    rows = await db.fetch(
        """
        SELECT window_id, closes_at FROM notification_windows
        WHERE flushed_at IS NULL AND overflow > 0 AND closes_at <= $1
        ORDER BY closes_at
        """,
        now,
    )
    return [(r["window_id"], r["closes_at"]) for r in rows]


# --- health ------------------------------------------------------------------------------------


async def failing_channels(db: Db, *, since: datetime) -> list[str]:
    """Channels whose latest delivery since `since` failed and that delivered nothing after."""
    rows = await db.fetch(
        """
        SELECT f.channel, max(f.updated_at) AS failed_at FROM notifications AS f
        WHERE f.status = 'failed' AND f.updated_at >= $1
        GROUP BY f.channel
        HAVING max(f.updated_at) > coalesce(
            (SELECT max(s.sent_at) FROM notifications AS s
             WHERE s.channel = f.channel AND s.status = 'sent'), '-infinity'::timestamptz)
        ORDER BY f.channel
        """,
        since,
    )
    return [r["channel"] for r in rows]


# --- digests -----------------------------------------------------------------------------------


async def cycle_anchor(db: Db) -> date | None:
    """The date (UTC, as Cursor dates it) of the latest billing-cycle start a provider reported."""
    found: datetime | None = await db.fetchval("SELECT max(cycle_start) FROM spend_snapshots")
    return found.date() if found else None


_NAMES = """
SELECT DISTINCT ON (user_email) user_email, name FROM members
WHERE user_email = ANY($1::text[]) AND name IS NOT NULL ORDER BY user_email, captured_at DESC
"""


async def cycle_usage(db: Db, *, first: date, end: date) -> list[UserUsage]:
    """Everyone's usage on days [first, end), with what went past the included plan."""
    rows = await db.fetch(
        """
        SELECT user_email, sum(cost_micros)::bigint AS micros, sum(events)::bigint AS requests,
               sum(usage_based_micros)::bigint AS on_demand,
               sum(usage_based_events)::bigint AS on_demand_requests
        FROM usage_daily_user_model
        WHERE day >= $1 AND day < $2
        GROUP BY user_email
        """,
        first,
        end,
    )
    users = [r["user_email"] for r in rows]
    names = {r["user_email"]: r["name"] for r in await db.fetch(_NAMES, users)}
    return [
        UserUsage(
            user_email=r["user_email"],
            spend=Decimal(r["micros"]) / MICROS,
            requests=r["requests"],
            on_demand=Decimal(r["on_demand"]) / MICROS,
            on_demand_requests=r["on_demand_requests"],
            name=names.get(r["user_email"]),
        )
        for r in rows
    ]


async def spend_between(db: Db, *, first: date, end: date) -> Decimal:
    """The team's spend on days [first, end)."""
    micros = await db.fetchval(
        "SELECT coalesce(sum(cost_micros), 0)::bigint FROM usage_daily_user_model"
        " WHERE day >= $1 AND day < $2",
        first,
        end,
    )
    return Decimal(micros) / MICROS


async def first_usage_day(db: Db) -> date | None:
    """The first day with any usage."""
    found: date | None = await db.fetchval("SELECT min(day) FROM usage_daily_user_model")
    return found


async def roster(db: Db) -> list[Member]:
    """The seats: every address whose latest roster entry is not removed."""
    rows = await db.fetch(
        """
        SELECT user_email, name FROM (
            SELECT DISTINCT ON (user_email) user_email, name, is_removed FROM members
            ORDER BY user_email, captured_at DESC
        ) AS latest
        WHERE NOT is_removed
        """
    )
    return [Member(user_email=r["user_email"], name=r["name"]) for r in rows]
