"""Delivery of incident events to Slack and email, the grouped overflow, and the digests.

Per incident, Slack has one root message, posted when the incident opens and edited in place
on every later transition, whose thread says who did what; escalations and reopenings are
broadcast from the thread. Email, which cannot be edited, is sent when an incident opens,
escalates or reopens.

When more than `group_threshold` incidents open within `group_window` (shared by every replica
through the database), the first ones are posted at once and the rest are listed in one
message when the window closes; that message is their root from then on. Until it is posted,
their later events only change what it will show.

Every send is claimed in the delivery log first (see `repository.claim`), so a redelivered
event sends nothing twice. A failed send is recorded, counted and raised: the caller has
JetStream redeliver the event later. After the first alert for an incident went out (on Slack,
or by email when Slack is off), the incidents service is told with the `alerted` command; the
periodic sweep repeats the command until it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import nats.errors
from nats.aio.client import Client as NatsClient
from pydantic import ValidationError

from spendwatch.common.cycles import Cycle, cycle_containing
from spendwatch.common.db import exclusive
from spendwatch.common.events import (
    Incident,
    IncidentCommandReplyV1,
    IncidentCommandV1,
    IncidentEvent,
    utc_now,
)
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import encode, subjects
from spendwatch.notifier import metrics, repository, templates
from spendwatch.notifier.digests import (
    cycle_digest,
    cycle_key,
    digest_time,
    local_now,
    plan_digest,
    plan_key,
    previous_cycle,
    same_point_end,
    summary_due,
)
from spendwatch.notifier.email import EmailChannel
from spendwatch.notifier.errors import DeliveryBusyError, DeliveryError, EmailError, SlackError
from spendwatch.notifier.repository import Admission, Delivery, Kind
from spendwatch.notifier.rules import REACTIONS, Reaction, is_stale, version
from spendwatch.notifier.slack import SlackChannel
from spendwatch.notifier.templates import Email, SlackMessage

log = get_logger(__name__)

SWEEP_ATTEMPTS = 10  # tries of a grouped message or a digest before it is left as failed
_ALERTED_GRACE = timedelta(seconds=5)  # the inline `alerted` command gets this long first


def payload(event: IncidentEvent) -> dict[str, Any]:
    """What a message shows about an incident, with the version it is of."""
    return {"incident": event.incident.model_dump(mode="json"), "version": version(event)}


class IncidentCommands:
    """Request/reply to the incidents service."""

    def __init__(self, nc: NatsClient, *, timeout: float = 2.0) -> None:
        self._nc = nc
        self._timeout = timeout

    async def alerted(self, incident_id: str) -> bool:
        """Say the first alert for the incident went out; False if nobody answered."""
        command = IncidentCommandV1(action="alerted", incident_id=incident_id, actor="notifier")
        try:
            msg = await self._nc.request(
                subjects.incident_command("alerted"), encode(command), timeout=self._timeout
            )
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("notifier.alerted_unanswered", incident_id=incident_id, error=repr(exc))
            return False
        try:
            reply = IncidentCommandReplyV1.model_validate_json(msg.data)
        except ValidationError:
            log.warning("notifier.alerted_bad_reply", incident_id=incident_id)
            return True  # it answered; asking again would get the same answer
        if not reply.ok:
            log.info(
                "notifier.alerted_refused",
                incident_id=incident_id,
                code=reply.code,
                error=reply.error,
            )
        return True


class Notifier:
    """Sends what incident events mean to the configured channels."""

    def __init__(
        self,
        *,
        db: asyncpg.Pool,
        slack: SlackChannel | None,
        email: EmailChannel | None,
        commands: IncidentCommands | None,
        timezone: str,
        dashboard_url: str | None,
        group_window: timedelta = timedelta(seconds=30),
        group_threshold: int = 3,
        digest_hour: int = 9,
        max_event_age: timedelta | None = timedelta(hours=24),
        clock: Callable[[], datetime] = utc_now,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self._db = db
        self._slack = slack
        self._email = email
        self._commands = commands
        self._timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._dashboard = dashboard_url
        self._window = group_window
        self._threshold = group_threshold
        self._digest_hour = digest_hour
        self._max_age = max_event_age
        self._clock = clock
        self._lease = lease
        self._timers: dict[int, asyncio.Task[None]] = {}

    @property
    def _primary(self) -> str | None:
        """The channel whose first alert starts MTTI: Slack, or email without Slack."""
        if self._slack:
            return "slack"
        return "email" if self._email else None

    # --- incident events -------------------------------------------------------------------------

    async def handle(self, event: IncidentEvent) -> None:
        """Deliver what `event` means on every channel.

        Raises DeliveryError if a channel failed (the others went ahead) and DeliveryBusyError
        if another consumer is sending the same thing: both mean "try this event again later".
        """
        reaction = REACTIONS[event.transition]
        if event.transition == "alerted":
            await repository.alerted_done(self._db, incident_ids=[event.incident_id])
            return
        if is_stale(event, self._clock(), self._max_age):
            self._skip(event, "stale")
            return
        if self._primary is None:
            self._skip(event, "no_channel")
            return
        admission = await repository.admission(self._db, incident_id=event.incident_id)
        if admission is None:
            if not reaction.opens or event.incident.state == "resolved":
                self._skip(event, "never_alerted")
                return
            admission = await self._admit(event)
        if admission.overflow and not admission.flush_started and await self._fold(event):
            return
        failures: list[DeliveryError] = []
        busy = False
        for step in (self._slack_event, self._email_event):
            try:
                await step(event, reaction, admission)
            except DeliveryError as exc:
                failures.append(exc)
            except DeliveryBusyError:
                busy = True
        if failures:
            raise failures[0]
        if busy:
            raise DeliveryBusyError(f"event {event.event_id} is being delivered elsewhere")

    def _skip(self, event: IncidentEvent, reason: str) -> None:
        metrics.SKIPPED.labels(reason).inc()
        log.info("notifier.event_skipped", event_id=event.event_id, reason=reason)

    async def _admit(self, event: IncidentEvent) -> Admission:
        async with self._db.acquire() as conn, conn.transaction():
            admission = await repository.admit(
                conn,
                incident_id=event.incident_id,
                payload=payload(event),
                now=self._clock(),
                window=self._window,
                threshold=self._threshold,
            )
        if admission.overflow:
            metrics.GROUPED.inc()
            log.info(
                "notifier.grouped",
                incident_id=event.incident_id,
                window_id=admission.window_id,
                closes_at=admission.closes_at.isoformat(),
            )
            self._schedule_flush(admission.window_id, admission.closes_at)
        return admission

    async def _fold(self, event: IncidentEvent) -> bool:
        """Let the coming grouped message show this event's state; False once it is posting."""
        async with self._db.acquire() as conn, conn.transaction():
            return await repository.refresh_admission(
                conn, incident_id=event.incident_id, payload=payload(event)
            )

    # --- Slack -----------------------------------------------------------------------------------

    async def _slack_event(
        self, event: IncidentEvent, reaction: Reaction, admission: Admission
    ) -> None:
        if self._slack is None:
            return
        slack = self._slack
        root = await repository.delivery(
            self._db, key=repository.root_key("slack", event.incident_id)
        )
        fresh = False
        if root is None or root.status != "sent":
            if admission.overflow and not admission.flushed:
                # Its grouped message is being posted and will be its root: wait for it.
                raise DeliveryBusyError(f"incident {event.incident_id} is being grouped")
            if not reaction.opens or event.incident.state == "resolved":
                self._skip(event, "no_root")
                return
            root, fresh = await self._post_root(slack, event)
        if not (reaction.edit or reaction.reply) or event.transition == "opened":
            return
        key = repository.event_key("slack", event.event_id)
        kind: Kind = "reply" if reaction.reply else "update"
        if not await self._claim(key, "slack", slack.target, kind, event):
            return
        async with self._attempt(key, "slack", SlackError):
            if reaction.edit and not fresh:
                await self._edit(slack, root, event)
            posted = None
            text = templates.thread_reply(event, self._tz) if reaction.reply else None
            if text and root.slack_ts:
                posted = await slack.post(
                    SlackMessage(text=text, blocks=[]),
                    thread_ts=root.slack_ts,
                    broadcast=reaction.broadcast,
                )
        await repository.mark_sent(
            self._db,
            key=key,
            now=self._clock(),
            slack_channel=posted.channel if posted else None,
            slack_ts=posted.ts if posted else None,
        )
        metrics.DELIVERIES.labels("slack", kind).inc()

    async def _post_root(self, slack: SlackChannel, event: IncidentEvent) -> tuple[Delivery, bool]:
        """The incident's root message, posted now unless someone did already."""
        key = repository.root_key("slack", event.incident_id)
        if not await self._claim(key, "slack", slack.target, "root", event):
            found = await repository.delivery(self._db, key=key)
            assert found is not None  # _claim returned False: the row exists and was sent
            return found, False
        message = templates.incident_message(
            event.incident, dashboard_url=self._dashboard, tz=self._tz
        )
        async with self._attempt(key, "slack", SlackError):
            posted = await slack.post(message)
        primary = self._primary == "slack"
        await repository.mark_sent(
            self._db,
            key=key,
            now=self._clock(),
            slack_channel=posted.channel,
            slack_ts=posted.ts,
            message_key=key,
            payload=payload(event),
            needs_alerted=primary,
        )
        self._sent("slack", "root", event.incident)
        log.info("notifier.posted", incident_id=event.incident_id, channel="slack", ts=posted.ts)
        if primary:
            await self._confirm_alerted([event.incident_id])
        found = await repository.delivery(self._db, key=key)
        assert found is not None
        return found, True

    async def _edit(self, slack: SlackChannel, root: Delivery, event: IncidentEvent) -> None:
        """Show the event's state on the root message, unless it already shows a newer one.

        The message row stays locked while Slack is called, so edits of one message (several
        incidents share a grouped one) never overtake each other.
        """
        async with self._db.acquire() as conn, conn.transaction():
            message = await repository.lock_message(conn, key=root.message_key or root.key)
            if message is None or not message.slack_ts or not message.slack_channel:
                return
            if not await repository.set_payload_if_newer(
                conn, key=root.key, payload=payload(event), now=self._clock()
            ):
                return
            if message.kind == "grouped":
                shown = await repository.message_payloads(conn, message_key=message.key)
                rendered = templates.grouped_message(
                    [Incident.model_validate(p["incident"]) for p in shown],
                    dashboard_url=self._dashboard,
                    tz=self._tz,
                    threshold=self._threshold,
                    window_seconds=self._window.total_seconds(),
                )
            else:
                rendered = templates.incident_message(
                    event.incident, dashboard_url=self._dashboard, tz=self._tz
                )
            await slack.update(rendered, channel=message.slack_channel, ts=message.slack_ts)

    # --- email -----------------------------------------------------------------------------------

    async def _email_event(
        self, event: IncidentEvent, reaction: Reaction, admission: Admission
    ) -> None:
        if self._email is None or not reaction.email:
            return
        if admission.overflow and not admission.flushed:
            return  # the grouped email lists it, as it is when the window closes
        opened = event.transition == "opened"
        key = (
            repository.root_key("email", event.incident_id)
            if opened
            else repository.event_key("email", event.event_id)
        )
        kind: Kind = "root" if opened else "message"
        if not await self._claim(key, "email", self._email.target, kind, event):
            return
        rendered = templates.incident_email(
            event.incident, transition=event.transition, dashboard_url=self._dashboard, tz=self._tz
        )
        primary = self._primary == "email"
        await self._mail(key, rendered, payload=payload(event), needs_alerted=primary)
        self._sent("email", kind, event.incident)
        if primary:
            await self._confirm_alerted([event.incident_id])

    async def _mail(
        self,
        key: str,
        rendered: Email,
        *,
        payload: dict[str, Any] | None = None,
        needs_alerted: bool = False,
    ) -> None:
        assert self._email is not None
        async with self._attempt(key, "email", EmailError):
            await self._email.send(rendered, key=key)
        await repository.mark_sent(
            self._db,
            key=key,
            now=self._clock(),
            message_key=key,
            payload=payload,
            needs_alerted=needs_alerted,
        )

    # --- bookkeeping -----------------------------------------------------------------------------

    async def _claim(
        self, key: str, channel: repository.Channel, target: str, kind: Kind, event: IncidentEvent
    ) -> bool:
        """True if this consumer should send `key` now; False if it was sent already."""
        claim = await repository.claim(
            self._db,
            key=key,
            channel=channel,
            target=target,
            kind=kind,
            now=self._clock(),
            lease=self._lease,
            incident_id=event.incident_id,
            event_id=event.event_id,
        )
        if claim.outcome == "claimed":
            return True
        if claim.outcome == "sent":
            log.info("notifier.already_sent", key=key)
            return False
        raise DeliveryBusyError(f"{key} is being sent elsewhere")

    @contextlib.asynccontextmanager
    async def _attempt(
        self, key: str, channel: str, errors: type[DeliveryError]
    ) -> AsyncIterator[None]:
        """Around one send of a claimed delivery: the channel's error is recorded as a failed
        attempt (and re-raised, so the event is retried); any other interruption releases the
        claim, so the next delivery can take it at once."""
        try:
            yield
        except errors as exc:
            await self._failed(key, channel, exc)
            raise
        except BaseException:
            await repository.release(self._db, key=key)
            raise

    async def _failed(self, key: str, channel: str, exc: DeliveryError) -> None:
        attempts = await repository.mark_failed(
            self._db, key=key, now=self._clock(), error=str(exc)
        )
        metrics.DELIVERY_FAILURES.labels(channel).inc()
        log.warning(
            "notifier.delivery_failed", key=key, channel=channel, attempts=attempts, error=str(exc)
        )

    def _sent(self, channel: str, kind: str, incident: Incident) -> None:
        metrics.DELIVERIES.labels(channel, kind).inc()
        if channel == self._primary and kind in {"root", "grouped"}:
            latency = (self._clock() - incident.detected_at).total_seconds()
            metrics.ALERT_LATENCY.observe(max(latency, 0.0))

    async def _confirm_alerted(self, incident_ids: Sequence[str]) -> None:
        """Tell the incidents service; what goes unanswered is retried by the sweep."""
        if self._commands is None or not incident_ids:
            return
        commands = self._commands
        answered = await asyncio.gather(*(commands.alerted(i) for i in incident_ids))
        done = [i for i, ok in zip(incident_ids, answered, strict=True) if ok]
        if done:
            await repository.alerted_done(self._db, incident_ids=done)

    # --- grouped overflow ------------------------------------------------------------------------

    def _schedule_flush(self, window_id: int, closes_at: datetime) -> None:
        """Post the window's overflow as soon as it closes (the sweep is the safety net)."""
        if window_id in self._timers:
            return
        delay = max(0.0, (closes_at - self._clock()).total_seconds())

        async def later() -> None:
            await asyncio.sleep(delay)
            try:
                await self.flush(window_id)
            except Exception:  # a background task: log it, the sweep tries again
                log.warning("notifier.flush_failed", window_id=window_id, exc_info=True)
            finally:
                self._timers.pop(window_id, None)

        self._timers[window_id] = asyncio.create_task(later(), name=f"flush-{window_id}")

    async def flush(self, window_id: int) -> bool:
        """Post a closed window's overflow on every channel; True when all have (or gave up)."""
        now = self._clock()
        async with self._db.acquire() as conn, conn.transaction():
            members = await repository.start_flush(conn, window_id=window_id, now=now)
        done = True
        if members:
            for channel in (self._slack_grouped, self._email_grouped):
                try:
                    done = await channel(window_id, members) and done
                except (DeliveryError, DeliveryBusyError):
                    done = False
        if done:
            await repository.finish_flush(self._db, window_id=window_id, now=self._clock())
        return done

    async def _grouped_claim(self, key: str, channel: repository.Channel, target: str) -> str:
        claim = await repository.claim(
            self._db,
            key=key,
            channel=channel,
            target=target,
            kind="grouped",
            now=self._clock(),
            lease=self._lease,
            paced=True,
            max_attempts=SWEEP_ATTEMPTS,
        )
        if claim.outcome == "exhausted":
            log.error("notifier.grouped_given_up", key=key)
        return claim.outcome

    async def _slack_grouped(
        self, window_id: int, members: list[tuple[str, dict[str, Any]]]
    ) -> bool:
        if self._slack is None:
            return True
        slack = self._slack
        key = repository.grouped_key("slack", window_id)
        outcome = await self._grouped_claim(key, "slack", slack.target)
        if outcome != "claimed":
            return outcome in {"sent", "exhausted"}
        incidents = [Incident.model_validate(p["incident"]) for _, p in members]
        message = templates.grouped_message(
            incidents,
            dashboard_url=self._dashboard,
            tz=self._tz,
            threshold=self._threshold,
            window_seconds=self._window.total_seconds(),
        )
        async with self._attempt(key, "slack", SlackError):
            posted = await slack.post(message)
        primary = self._primary == "slack"
        now = self._clock()
        async with self._db.acquire() as conn, conn.transaction():
            await repository.mark_sent(
                conn, key=key, now=now, slack_channel=posted.channel, slack_ts=posted.ts
            )
            await repository.add_grouped_roots(
                conn,
                channel="slack",
                target=slack.target,
                message_key=key,
                slack_channel=posted.channel,
                slack_ts=posted.ts,
                members=members,
                now=now,
                needs_alerted=primary,
            )
        for incident in incidents:
            self._sent("slack", "grouped", incident)
        log.info("notifier.grouped_posted", window_id=window_id, incidents=len(members))
        if primary:
            await self._confirm_alerted([i for i, _ in members])
        return True

    async def _email_grouped(
        self, window_id: int, members: list[tuple[str, dict[str, Any]]]
    ) -> bool:
        if self._email is None:
            return True
        key = repository.grouped_key("email", window_id)
        outcome = await self._grouped_claim(key, "email", self._email.target)
        if outcome != "claimed":
            return outcome in {"sent", "exhausted"}
        incidents = [Incident.model_validate(p["incident"]) for _, p in members]
        rendered = templates.grouped_email(
            incidents, dashboard_url=self._dashboard, threshold=self._threshold
        )
        await self._mail(key, rendered)
        primary = self._primary == "email"
        await repository.add_grouped_roots(
            self._db,
            channel="email",
            target=self._email.target,
            message_key=key,
            slack_channel=None,
            slack_ts=None,
            members=members,
            now=self._clock(),
            needs_alerted=primary,
        )
        for incident in incidents:
            self._sent("email", "grouped", incident)
        if primary:
            await self._confirm_alerted([i for i, _ in members])
        return True

    # --- the periodic sweep ----------------------------------------------------------------------

    async def sweep(self) -> None:
        """Post closed windows' overflow, repeat unanswered `alerted` commands, send due digests."""
        for window_id, _ in await repository.due_windows(self._db, now=self._clock()):
            with contextlib.suppress(DeliveryError, DeliveryBusyError):
                await self.flush(window_id)
        waiting = await repository.awaiting_alerted(
            self._db, sent_before=self._clock() - _ALERTED_GRACE
        )
        await self._confirm_alerted(waiting)
        await self.digests()

    async def close(self) -> None:
        """Cancel the pending flush timers (the sweep of any replica picks their windows up)."""
        for task in list(self._timers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._timers.clear()

    # --- digests ---------------------------------------------------------------------------------

    async def digests(self) -> list[str]:
        """Send the plan digest (daily) and the cycle summary (once per cycle) when due; the keys
        sent now. One replica at a time."""
        now_local = local_now(self._clock(), self._timezone)
        if self._primary is None or not digest_time(now_local, self._digest_hour):
            return []
        async with exclusive(self._db, "spendwatch.notifier:digests") as mine:
            if not mine:
                return []
            today = now_local.date()
            anchor = await repository.cycle_anchor(self._db)
            cycle = cycle_containing(today, anchor)
            sent = await self._plan_digest(today, cycle)
            if summary_due(cycle, today):
                sent += await self._cycle_summary(today, cycle, anchor)
            return sent

    def _digest_channels(self) -> list[str]:
        return [c for c, on in (("slack", self._slack), ("email", self._email)) if on]

    async def _pending(self, keys: list[str]) -> list[str]:
        """The keys not yet sent (nor given up on)."""
        open_keys = []
        for key in keys:
            row = await repository.delivery(self._db, key=key)
            if row is None or (row.status != "sent" and row.attempts < SWEEP_ATTEMPTS):
                open_keys.append(key)
        return open_keys

    async def _plan_digest(self, today: date, cycle: Cycle) -> list[str]:
        keys = {plan_key(c, today): c for c in self._digest_channels()}
        if not await self._pending(list(keys)):
            return []
        end = min(today + timedelta(days=1), cycle.end)
        usage = await repository.cycle_usage(self._db, first=cycle.start, end=end)
        digest = plan_digest(today, cycle, usage)
        if digest is None:
            return []
        slack = templates.plan_digest_message(digest, dashboard_url=self._dashboard)
        mail = templates.plan_digest_email(digest, dashboard_url=self._dashboard)
        return await self._send_digest("plan", keys, slack, mail)

    async def _cycle_summary(self, today: date, cycle: Cycle, anchor: date | None) -> list[str]:
        keys = {cycle_key(c, cycle): c for c in self._digest_channels()}
        if not await self._pending(list(keys)):
            return []
        end = min(today + timedelta(days=1), cycle.end)
        usage = await repository.cycle_usage(self._db, first=cycle.start, end=end)
        previous = previous_cycle(cycle, anchor)
        first_day = await repository.first_usage_day(self._db)
        previous_spend = None
        if first_day is not None and first_day < cycle.start:
            previous_spend = await repository.spend_between(
                self._db, first=previous.start, end=same_point_end(previous, cycle, today)
            )
        members = await repository.roster(self._db)
        digest = cycle_digest(today, cycle, usage, members, previous_spend)
        if digest is None:
            return []
        slack = templates.cycle_digest_message(digest, dashboard_url=self._dashboard)
        mail = templates.cycle_digest_email(digest, dashboard_url=self._dashboard)
        return await self._send_digest("cycle", keys, slack, mail)

    async def _send_digest(
        self, kind: str, keys: dict[str, str], slack: SlackMessage, mail: Email
    ) -> list[str]:
        sent = []
        for key, channel in keys.items():
            target = self._slack.target if channel == "slack" and self._slack else ""
            if channel == "email" and self._email:
                target = self._email.target
            claim = await repository.claim(
                self._db,
                key=key,
                channel="email" if channel == "email" else "slack",
                target=target,
                kind="digest",
                now=self._clock(),
                lease=self._lease,
                paced=True,
                max_attempts=SWEEP_ATTEMPTS,
            )
            if claim.outcome != "claimed":
                continue
            try:
                if channel == "slack" and self._slack:
                    posted = await self._slack.post(slack)
                    await repository.mark_sent(
                        self._db,
                        key=key,
                        now=self._clock(),
                        slack_channel=posted.channel,
                        slack_ts=posted.ts,
                    )
                elif self._email:
                    await self._mail(key, mail)
            except SlackError as exc:
                await self._failed(key, "slack", exc)
                continue
            except EmailError:
                continue  # recorded by _mail
            metrics.DIGESTS.labels(kind).inc()
            log.info("notifier.digest_sent", key=key)
            sent.append(key)
        return sent
