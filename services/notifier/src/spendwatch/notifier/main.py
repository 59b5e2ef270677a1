"""Composition root of the notifier: settings -> logging -> broker/app -> lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import aiohttp
import asyncpg
import nats.errors
import uvloop
from aiohttp import web
from faststream import FastStream
from faststream.exceptions import AckMessage, NackMessage
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.js.api import ConsumerConfig

from spendwatch.common.db import create_pool
from spendwatch.common.errors import DatabaseError
from spendwatch.common.events import IncidentEvent, parse_incident_event, utc_now
from spendwatch.common.logging import configure_logging, get_logger
from spendwatch.common.messaging import dead_letter, describe, ensure_streams, make_broker, subjects
from spendwatch.common.messaging.consumer import redelivery_delay
from spendwatch.common.messaging.lag import LagWatcher
from spendwatch.common.messaging.streams import INCIDENTS
from spendwatch.common.observability import start_metrics_server
from spendwatch.notifier import metrics, repository
from spendwatch.notifier.email import (
    EmailChannel,
    EmailTransport,
    ResendTransport,
    SmtpTransport,
    parse_smtp_url,
)
from spendwatch.notifier.errors import DeliveryBusyError, DeliveryError, SlackError
from spendwatch.notifier.service import IncidentCommands, Notifier
from spendwatch.notifier.settings import NotifierSettings
from spendwatch.notifier.slack import SlackChannel

log = get_logger("spendwatch.notifier")

DURABLE = subjects.durable("notifier", INCIDENTS.name)
MAX_DELIVER = 20  # then the event goes to the DLQ: 1, 2, 4 ... 60 s apart, about 15 minutes
HEALTH_WINDOW = timedelta(hours=1)  # a failure older than this no longer makes us unhealthy
_TRANSIENT: tuple[type[Exception], ...] = (
    DeliveryError,
    DatabaseError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    nats.errors.Error,
)

_RETRIED: tuple[type[Exception], ...] = (*_TRANSIENT, DeliveryBusyError)


def build_email(settings: NotifierSettings) -> EmailChannel | None:
    """The email channel, or None (logged) when it is not configured."""
    if not settings.email_enabled:
        log.info(
            "notifier.channel_off",
            channel="email",
            reason="set ALERT_EMAIL_FROM, ALERT_EMAIL_TO and RESEND_API_KEY or SMTP_URL",
        )
        return None
    transport: EmailTransport
    if settings.email_transport == "resend":
        assert settings.resend_api_key is not None  # email_transport says so
        transport = ResendTransport(
            api_key=settings.resend_api_key, base_url=settings.resend_api_base_url
        )
    else:
        assert settings.smtp_url is not None
        transport = SmtpTransport(parse_smtp_url(settings.smtp_url.get_secret_value()))
    assert settings.alert_email_from is not None
    log.info(
        "notifier.channel_on",
        channel="email",
        transport=settings.email_transport,
        recipients=len(settings.email_recipients),
    )
    return EmailChannel(
        transport, sender=settings.alert_email_from, recipients=settings.email_recipients
    )


class NotifierRuntime:
    """What runs between start-up and shutdown: the pool, the channels, the sweep, /metrics."""

    def __init__(self, settings: NotifierSettings, broker: NatsBroker) -> None:
        self._settings = settings
        self._broker = broker
        self._pool: asyncpg.Pool | None = None
        self._session: aiohttp.ClientSession | None = None
        self._email: EmailChannel | None = None
        self._http: web.AppRunner | None = None
        self._sweeping: asyncio.Task[None] | None = None
        self.notifier: Notifier | None = None

    async def start(self) -> None:
        """Pool, streams and channels before the subscriber consumes."""
        s = self._settings
        self._pool = await create_pool(s.database_url.get_secret_value(), max_size=12)
        await self._broker.connect()
        await ensure_streams(self._broker.connection.jetstream())
        slack = None
        if s.slack_enabled:
            assert s.slack_bot_token is not None
            assert s.slack_channel_id is not None
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            slack = SlackChannel(
                token=s.slack_bot_token,
                channel=s.slack_channel_id,
                base_url=s.slack_api_base_url,
                session=self._session,
            )
            await self._check_slack(slack)
        else:
            log.info(
                "notifier.channel_off",
                channel="slack",
                reason="set SLACK_BOT_TOKEN and SLACK_CHANNEL_ID",
            )
        self._email = build_email(s)
        self.notifier = Notifier(
            db=self._pool,
            slack=slack,
            email=self._email,
            commands=IncidentCommands(self._broker.connection),
            timezone=s.team_timezone,
            dashboard_url=s.dashboard_url,
            group_window=timedelta(seconds=s.group_window_seconds),
            group_threshold=s.group_threshold,
            digest_hour=s.digest_hour,
            max_event_age=(
                timedelta(hours=s.max_event_age_hours) if s.max_event_age_hours else None
            ),
        )

    @staticmethod
    async def _check_slack(slack: SlackChannel) -> None:
        """Say once whether the token works; a bad one is not fatal (deliveries record it)."""
        try:
            who = await slack.check()
        except SlackError as exc:
            log.error("notifier.slack_check_failed", error=str(exc))
            return
        log.info("notifier.channel_on", channel="slack", team=who.get("team"), bot=who.get("user"))

    async def ready(self) -> None:
        """Start the sweep, serve /metrics and say so."""
        self._sweeping = asyncio.create_task(self._sweep_forever(), name="notifier-sweep")
        if self._settings.metrics_port:
            self._http = await start_metrics_server(self._settings.metrics_port, self.healthy)
        log.info("service.ready", service="notifier")

    async def healthy(self) -> bool:
        """Connected to NATS, and no channel whose latest delivery failed (within the hour)."""
        if not self._broker.connection.is_connected or self._pool is None:
            return False
        try:
            failing = await repository.failing_channels(self._pool, since=utc_now() - HEALTH_WINDOW)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        if failing:
            log.warning("notifier.unhealthy", failing_channels=failing)
        return not failing

    async def handle(self, event: IncidentEvent, msg: NatsMessage) -> None:
        """Deliver one event; a transient failure is redelivered later, the last one parked."""
        assert self.notifier is not None  # set before the subscriber starts
        try:
            await self.notifier.handle(event)
        except _RETRIED as exc:
            # Another consumer holding the delivery (busy) is retried like a failure, with the
            # same growing delay, so a claimer that died is outlived by its lease and nothing
            # is ever dropped: the last delivery parks the event in the DLQ.
            deliveries = msg.raw_message.metadata.num_delivered
            if deliveries >= MAX_DELIVER:
                js = self._broker.connection.jetstream()
                await dead_letter(js, msg.raw_message, f"gave up: {describe(exc)}")
                metrics.DEAD_LETTERED.inc()
                log.error("notifier.gave_up", event_id=event.event_id, deliveries=deliveries)
                raise AckMessage from exc
            delay = redelivery_delay(deliveries)
            log.warning(
                "notifier.retry_later",
                event_id=event.event_id,
                deliveries=deliveries,
                delay=delay,
                error=str(exc),
            )
            raise NackMessage(delay=delay) from exc

    async def sweep(self) -> None:
        """One sweep; a failure on our side is logged and retried at the next one."""
        assert self.notifier is not None
        try:
            await self.notifier.sweep()
        except _RETRIED:
            log.warning("notifier.sweep_failed", exc_info=True)

    async def _sweep_forever(self) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(self._settings.sweep_seconds)

    async def stop(self) -> None:
        """Release what start() took (the broker is stopped by FastStream before this)."""
        if self._sweeping:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
        if self.notifier:
            await self.notifier.close()
        if self._http:
            await self._http.cleanup()
        if self._email:
            await self._email.aclose()
        if self._session:
            await self._session.close()
        if self._pool:
            await self._pool.close()


def build(settings: NotifierSettings) -> tuple[FastStream, NotifierRuntime]:
    """The notifier app and its runtime (tests reach the runtime through the second item)."""
    broker = make_broker(settings, name="notifier")
    runtime = NotifierRuntime(settings, broker)
    app = FastStream(broker, logger=log)
    app.on_startup(runtime.start)
    app.after_startup(runtime.ready)
    app.after_shutdown(runtime.stop)
    LagWatcher(broker, [(INCIDENTS.name, DURABLE)]).attach(app)

    @broker.subscriber(
        subjects.INCIDENTS_ALL,
        stream=JStream(INCIDENTS.name, declare=False),
        durable=DURABLE,
        # Messages fetched together are handled concurrently (the delivery log keeps them
        # apart); a batch of 10 lets a burst of incidents post in parallel.
        pull_sub=PullSub(batch_size=10, timeout=0.5),
        config=ConsumerConfig(max_deliver=MAX_DELIVER, ack_wait=120),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_incident_event(msg: NatsMessage) -> None:
        # An invalid payload raises ValidationError here: the DLQ middleware parks it.
        await runtime.handle(parse_incident_event(msg.body), msg)

    return app, runtime


def build_app(settings: NotifierSettings) -> FastStream:
    """The notifier: sends every incident transition to Slack and email."""
    return build(settings)[0]


def main() -> None:
    """Run the notifier until SIGINT/SIGTERM."""
    settings = NotifierSettings()
    configure_logging(settings.log_level)
    uvloop.run(build_app(settings).run())
