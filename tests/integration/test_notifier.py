"""The notifier against a fake Slack Web API (real HTTP, the real `AsyncWebClient`), real NATS
and a real database: root messages, edits, threads, grouping, no duplicates, retries, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
from faststream.exceptions import AckMessage
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import REGISTRY
from pydantic import SecretStr

from spendwatch.common.events import IncidentCommandReplyV1, IncidentCommandV1, IncidentEvent
from spendwatch.common.localstack import free_port
from spendwatch.common.messaging import encode, publish_event, subjects
from spendwatch.notifier import templates
from spendwatch.notifier.errors import DeliveryBusyError, SlackError
from spendwatch.notifier.main import DURABLE, MAX_DELIVER, NotifierRuntime, build
from spendwatch.notifier.service import IncidentCommands, Notifier
from spendwatch.notifier.settings import NotifierSettings
from spendwatch.notifier.slack import SlackChannel
from tests.fakes.slack import FakeSlack
from tests.unit.notifier.builders import event, incident, store_incident

pytestmark = pytest.mark.timeout(60)

UTC_ZONE = ZoneInfo("UTC")
WINDOW = 1.5  # grouping window of these tests, seconds
DASHBOARD = "http://grafana.test"


# --- harness -----------------------------------------------------------------------------------


def settings(
    database_url: str, nats_url: str, slack: FakeSlack | None, **extra: Any
) -> NotifierSettings:
    env: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "METRICS_PORT": 0,
        "DASHBOARD_URL": DASHBOARD,
        "NOTIFY_GROUP_WINDOW_SECONDS": WINDOW,
        "NOTIFY_SWEEP_SECONDS": 0.5,
    }
    if slack:
        env |= {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_CHANNEL_ID": slack.channel,
            "SLACK_API_BASE_URL": slack.url,
        }
    return NotifierSettings.model_validate(env | extra)


@asynccontextmanager
async def running(config: NotifierSettings) -> AsyncIterator[NotifierRuntime]:
    """The notifier's real app (broker, subscriber, sweep) in this process."""
    app, runtime = build(config)
    await app.start()
    try:
        yield runtime
    finally:
        await app.stop()


@asynccontextmanager
async def incidents_service(nc: NatsClient) -> AsyncIterator[list[IncidentCommandV1]]:
    """Answers `alerted` commands as the incidents service does; yields what it received."""
    received: list[IncidentCommandV1] = []

    async def answer(msg: Msg) -> None:
        received.append(IncidentCommandV1.model_validate_json(msg.data))
        await msg.respond(encode(IncidentCommandReplyV1(ok=True, changed=True)))

    sub = await nc.subscribe(subjects.incident_command("alerted"), cb=answer)
    await nc.flush()
    try:
        yield received
    finally:
        await sub.unsubscribe()


def notifier(
    pool: asyncpg.Pool,
    slack: FakeSlack,
    *,
    commands: IncidentCommands | None = None,
    **kwargs: Any,
) -> Notifier:
    """A notifier wired to the fake Slack, for tests that call it directly."""
    return Notifier(
        db=pool,
        slack=SlackChannel(token=SecretStr(slack.token), channel=slack.channel, base_url=slack.url),
        email=None,
        commands=commands,
        timezone="UTC",
        dashboard_url=DASHBOARD,
        group_window=timedelta(seconds=WINDOW),
        **kwargs,
    )


async def publish(js: JetStreamContext, ev: IncidentEvent, *, msg_id: str | None = None) -> None:
    await publish_event(
        js, subjects.incidents_events(ev.transition), ev, msg_id=msg_id or ev.event_id
    )


async def until(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]], *, timeout: float = 8, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


async def drained(js: JetStreamContext) -> bool:
    info = await js.consumer_info("INCIDENTS", DURABLE)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def row(pool: asyncpg.Pool, key: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT status, attempts, error, slack_ts, needs_alerted FROM notifications"
        " WHERE idempotency_key = $1",
        key,
    )


def actions(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == "actions"]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- root message, edits, threads --------------------------------------------------------------


async def test_an_opened_incident_is_posted_at_once_with_its_buttons_and_marked_alerted(
    pool: asyncpg.Pool,
    nc: NatsClient,
    js: JetStreamContext,
    fake_slack: FakeSlack,
    database_url: str,
    nats_url: str,
) -> None:
    inc = incident(severity="critical")
    await store_incident(pool, inc)
    opened = event("opened", inc)
    async with (
        incidents_service(nc) as commands,
        running(settings(database_url, nats_url, fake_slack)),
    ):
        started = time.monotonic()
        await publish(js, opened)
        await until(fake_slack.top_level, what="the root message")
        [root] = fake_slack.top_level()
        posted_at = fake_slack.ok_calls("chat.postMessage")[0].at
        assert posted_at - started < 2.0  # the alert latency target
        await until(lambda: commands, what="the alerted command")
        key = f"slack:root:{inc.incident_id}"
        await until(lambda: row(pool, key), what="the delivery row")
        await until(
            lambda: pool.fetchval(
                "SELECT NOT needs_alerted FROM notifications WHERE idempotency_key = $1", key
            ),
            what="the alerted command's answer to be recorded",
        )
    expected = templates.incident_message(opened.incident, dashboard_url=DASHBOARD, tz=UTC_ZONE)
    assert root.blocks == expected.blocks
    assert root.text == expected.text
    assert root.channel == fake_slack.channel
    header = root.blocks[0]["text"]["text"]
    assert header == ":rotating_light: Critical · Spend spike"
    link = f"{DASHBOARD}/d/spendwatch-user/user-drilldown?var-user=alice%40example.com"
    assert any(link in b.get("text", {}).get("text", "") for b in root.blocks)
    [buttons] = actions(root.blocks)
    assert buttons["block_id"] == f"incident:{inc.incident_id}"
    ids = {e["action_id"]: e for e in buttons["elements"]}
    assert ids["incident.acknowledge"]["value"] == inc.incident_id
    assert ids["incident.resolve"]["value"] == inc.incident_id
    assert [o["value"] for o in ids["incident.snooze"]["options"]] == [
        f"{inc.incident_id}|60",
        f"{inc.incident_id}|240",
        f"{inc.incident_id}|1440",
    ]
    assert [(c.action, c.incident_id, c.actor) for c in commands] == [
        ("alerted", inc.incident_id, "notifier")
    ]
    stored = await row(pool, key)
    assert stored is not None
    assert (stored["status"], stored["slack_ts"]) == ("sent", root.ts)


async def test_acknowledge_and_resolve_edit_the_root_and_say_who_in_its_thread(
    pool: asyncpg.Pool,
    nc: NatsClient,
    js: JetStreamContext,
    fake_slack: FakeSlack,
    database_url: str,
    nats_url: str,
) -> None:
    inc = incident()
    await store_incident(pool, inc)
    now = datetime.now(UTC)
    opened = event("opened", inc)
    acked = event(
        "acknowledged",
        opened.incident,
        actor="slack:U024BE7LH",
        acknowledged_at=now,
        acknowledged_by="slack:U024BE7LH",
    )
    resolved = event(
        "resolved",
        acked.incident,
        actor="api:ops-bot",
        resolved_at=now,
        resolved_by="api:ops-bot",
        resolution="manual",
        note="Switched her back to sonnet",
    )
    async with incidents_service(nc), running(settings(database_url, nats_url, fake_slack)):
        # One at a time: events fetched together are handled concurrently, and the later state
        # wins (an acknowledgement arriving after the resolution edits nothing).
        await publish(js, opened)
        await until(fake_slack.top_level, what="the root message")
        await publish(js, acked)
        await until(lambda: len(fake_slack.updates()) == 1, what="the first edit")
        await publish(js, resolved)
        await until(lambda: len(fake_slack.updates()) == 2, what="the second edit")
        [root] = fake_slack.top_level()
        await until(lambda: len(fake_slack.replies(root.ts)) == 2, what="two thread replies")
    after_ack = root.history[1]
    after_resolve: dict[str, Any] = {"blocks": root.blocks, "text": root.text}
    state = after_ack["blocks"][2]["fields"][-1]["text"]
    assert state == "*State*\n:eyes: Acknowledged by <@U024BE7LH>"
    [ack_buttons] = actions(after_ack["blocks"])
    assert [e["action_id"] for e in ack_buttons["elements"]] == [
        "incident.resolve",
        "incident.snooze",
    ]
    assert actions(after_resolve["blocks"]) == []  # resolved: the buttons are gone
    assert after_resolve["blocks"][0]["text"]["text"].startswith(":white_check_mark: Resolved")
    assert after_resolve["blocks"][2]["fields"][-1]["text"].endswith("Resolved by ops-bot (API)")
    replies = fake_slack.replies(root.ts)
    assert [r.text for r in replies] == [
        ":eyes: <@U024BE7LH> acknowledged *Spend spike* · alice@example.com.",
        ":white_check_mark: ops-bot (API) resolved *Spend spike* · alice@example.com."
        "\n>Switched her back to sonnet",
    ]
    assert not any(r.reply_broadcast for r in replies)
    assert [c.args["ts"] for c in fake_slack.updates()] == [root.ts, root.ts]


async def test_escalation_renotifies_in_the_channel_and_updates_the_root(
    pool: asyncpg.Pool, fake_slack: FakeSlack
) -> None:
    n = notifier(pool, fake_slack)
    inc = incident(severity="warning")
    await store_incident(pool, inc)
    opened = event("opened", inc)
    escalated = event("escalated", opened.incident, severity="critical", message="Alice: $640")
    updated = event("updated", escalated.incident, value=Decimal("428.00"))
    for ev in (opened, escalated, updated):
        await n.handle(ev)
    [root] = fake_slack.top_level()
    [reply] = fake_slack.replies(root.ts)
    assert reply.reply_broadcast is True
    assert reply.text == (
        ":rotating_light: *Spend spike* · alice@example.com escalated to *critical*: Alice: $640"
    )
    assert root.edits == 2  # escalated, then updated (an update edits, without a reply)
    assert root.blocks[0]["text"]["text"] == ":rotating_light: Critical · Spend spike"
    assert "*Value*\n$428.00" in [f["text"] for f in root.blocks[2]["fields"]]


async def test_an_event_for_an_incident_never_posted_posts_its_root_first(
    pool: asyncpg.Pool, fake_slack: FakeSlack
) -> None:
    """The `opened` event was lost (or failed for good): the next event brings the root."""
    n = notifier(pool, fake_slack)
    inc = incident()
    await store_incident(pool, inc)
    snoozed = event("snoozed", inc, actor="slack:U1ABC", snoozed_until=datetime.now(UTC))
    await n.handle(snoozed)
    [root] = fake_slack.top_level()
    assert "Snoozed until" in root.blocks[2]["fields"][-1]["text"]
    [reply] = fake_slack.replies(root.ts)
    assert reply.text is not None
    assert reply.text.startswith(":zzz: <@U1ABC> snoozed *Spend spike*")
    assert fake_slack.updates() == []  # posted as it is now: nothing to edit
    # A resolution of an incident nobody was told about is not worth a first message.
    other = incident("bob@example.com")
    await store_incident(pool, other)
    await n.handle(event("resolved", other, resolved_by="system", resolution="auto"))
    assert len(fake_slack.top_level()) == 1


async def test_an_older_event_never_overwrites_a_newer_state(
    pool: asyncpg.Pool, fake_slack: FakeSlack
) -> None:
    n = notifier(pool, fake_slack)
    inc = incident()
    await store_incident(pool, inc)
    opened = event("opened", inc)
    acked = event("acknowledged", opened.incident, actor="slack:U1", acknowledged_by="slack:U1")
    resolved = event("resolved", acked.incident, actor="slack:U1", resolved_by="slack:U1")
    await n.handle(opened)
    await n.handle(resolved)
    await n.handle(acked)  # arrives late
    [root] = fake_slack.top_level()
    assert root.edits == 1
    assert actions(root.blocks) == []
    assert len(fake_slack.replies(root.ts)) == 2  # both still say who did what


# --- grouping ----------------------------------------------------------------------------------


async def test_more_than_three_at_once_post_three_now_and_one_grouped_message_for_the_rest(
    pool: asyncpg.Pool,
    nc: NatsClient,
    js: JetStreamContext,
    fake_slack: FakeSlack,
    database_url: str,
    nats_url: str,
) -> None:
    incidents = [incident(f"dev{i}@example.com", severity="warning") for i in range(6)]
    for inc in incidents:
        await store_incident(pool, inc)
    opened = [event("opened", inc) for inc in incidents]
    async with (
        incidents_service(nc) as commands,
        running(settings(database_url, nats_url, fake_slack)),
    ):
        started = time.monotonic()
        for ev in opened:
            await publish(js, ev)
        await until(lambda: len(fake_slack.top_level()) == 3, what="three root messages")
        first_three = time.monotonic() - started
        await until(lambda: len(fake_slack.top_level()) == 4, what="the grouped message")
        grouped_at = fake_slack.ok_calls("chat.postMessage")[-1].at - started
        grouped = fake_slack.top_level()[-1]
        # Acknowledging a grouped incident edits the grouped message and replies in its thread.
        listed = {b["block_id"] for b in actions(grouped.blocks)}
        later = next(ev for ev in opened if f"incident:{ev.incident_id}" in listed)
        await publish(
            js,
            event(
                "acknowledged", later.incident, actor="slack:U9ABC", acknowledged_by="slack:U9ABC"
            ),
        )
        await until(lambda: fake_slack.replies(grouped.ts), what="a reply in the grouped thread")
        await until(lambda: len(commands) == 6, what="six alerted commands")
    assert first_three < 2.0  # the first three are not held back
    assert grouped_at >= WINDOW - 0.2  # the rest waited for the window to close
    roots = fake_slack.top_level()
    # Events fetched together are handled concurrently: any three go first.
    who = {r.blocks[2]["fields"][0]["text"].removeprefix("*Who*\n") for r in roots[:3]}
    first = [i for i in incidents if i.subject in who]
    rest = [i for i in incidents if i.subject not in who]
    assert len(first) == len(rest) == 3
    assert grouped.blocks[0]["text"]["text"] == ":warning: 3 more incidents opened together"
    listed = {b["block_id"] for b in actions(grouped.history[0]["blocks"])}
    assert listed == {f"incident:{inc.incident_id}" for inc in rest}
    # After the acknowledgement the grouped message shows it: no Acknowledge button for it.
    after = {b["block_id"]: b for b in actions(grouped.blocks)}
    ack_ids = [e["action_id"] for e in after[f"incident:{rest[0].incident_id}"]["elements"]]
    assert "incident.acknowledge" not in ack_ids
    assert grouped.edits == 1
    [reply] = fake_slack.replies(grouped.ts)
    assert reply.text == f":eyes: <@U9ABC> acknowledged *Spend spike* · {rest[0].subject}."
    assert sorted(c.incident_id for c in commands) == sorted(i.incident_id for i in incidents)
    rows = await pool.fetch(
        "SELECT incident_id::text, slack_ts FROM notifications"
        " WHERE kind = 'root' AND channel = 'slack'"
    )
    by_incident = {r["incident_id"]: r["slack_ts"] for r in rows}
    assert {by_incident[i.incident_id] for i in rest} == {grouped.ts}


async def test_events_of_a_grouped_incident_before_the_window_closes_change_what_it_shows(
    pool: asyncpg.Pool, fake_slack: FakeSlack
) -> None:
    n = notifier(pool, fake_slack, group_threshold=1)
    try:
        a, b = incident("a@example.com"), incident("b@example.com", severity="warning")
        for inc in (a, b):
            await store_incident(pool, inc)
        await n.handle(event("opened", a))
        opened_b = event("opened", b)
        await n.handle(opened_b)  # overflow
        await n.handle(event("escalated", opened_b.incident, severity="critical"))
        assert len(fake_slack.top_level()) == 1  # nothing more until the window closes
        await until(lambda: len(fake_slack.top_level()) == 2, what="the grouped message")
    finally:
        await n.close()
    grouped = fake_slack.top_level()[1]
    assert grouped.blocks[0]["text"]["text"] == ":rotating_light: 1 more incident opened together"
    assert grouped.blocks[2]["text"]["text"].startswith(":rotating_light: *Spend spike*")
    assert fake_slack.replies(grouped.ts) == []


# --- exactly once ------------------------------------------------------------------------------


async def test_a_redelivered_event_posts_nothing_twice(
    pool: asyncpg.Pool,
    nc: NatsClient,
    js: JetStreamContext,
    fake_slack: FakeSlack,
    database_url: str,
    nats_url: str,
) -> None:
    inc = incident()
    await store_incident(pool, inc)
    opened = event("opened", inc)
    acked = event("acknowledged", opened.incident, actor="slack:U1", acknowledged_by="slack:U1")
    async with incidents_service(nc), running(settings(database_url, nats_url, fake_slack)):
        for ev in (opened, acked):
            await publish(js, ev)
            # The same event again under another message id: past JetStream's duplicate check.
            await publish(js, ev, msg_id=f"{ev.event_id}:again")
        await until(lambda: drained(js), what="every message handled")
        await asyncio.sleep(0.3)
        assert await drained(js)
    [root] = fake_slack.top_level()
    assert len(fake_slack.ok_calls("chat.postMessage")) == 2  # the root and one reply
    assert len(fake_slack.replies(root.ts)) == 1
    assert len(fake_slack.updates()) == 1


async def test_two_consumers_racing_on_one_event_post_it_once(
    pool: asyncpg.Pool, fake_slack: FakeSlack
) -> None:
    fake_slack.delay = 0.3  # both are inside the send at the same time
    first, second = notifier(pool, fake_slack), notifier(pool, fake_slack)
    inc = incident()
    await store_incident(pool, inc)
    opened = event("opened", inc)
    results = await asyncio.gather(
        first.handle(opened), second.handle(opened), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["DeliveryBusyError", "NoneType"]
    acked = event("acknowledged", opened.incident, actor="slack:U1", acknowledged_by="slack:U1")
    results = await asyncio.gather(
        first.handle(acked), second.handle(acked), return_exceptions=True
    )
    assert sum(isinstance(r, DeliveryBusyError) for r in results) == 1
    # The loser's retry finds everything done.
    await second.handle(opened)
    await second.handle(acked)
    [root] = fake_slack.top_level()
    assert len(fake_slack.replies(root.ts)) == 1
    assert len(fake_slack.updates()) == 1


async def test_two_replicas_sharing_the_consumer_post_each_thing_once(
    pool: asyncpg.Pool,
    nc: NatsClient,
    js: JetStreamContext,
    fake_slack: FakeSlack,
    database_url: str,
    nats_url: str,
) -> None:
    fake_slack.delay = 0.1
    config = settings(database_url, nats_url, fake_slack)
    incidents = [incident(f"dev{i}@example.com") for i in range(3)]
    for inc in incidents:
        await store_incident(pool, inc)
    async with incidents_service(nc) as commands, running(config), running(config):
        for inc in incidents:
            ev = event("opened", inc)
            for copy in range(3):
                await publish(js, ev, msg_id=f"{ev.event_id}:{copy}")
        await until(lambda: drained(js), what="every message handled")
    assert len(fake_slack.top_level()) == 3
    assert len(fake_slack.ok_calls("chat.postMessage")) == 3
    assert len({c.incident_id for c in commands}) == 3


# --- Slack trouble -----------------------------------------------------------------------------


async def test_a_rate_limited_post_waits_for_retry_after_and_then_goes_through(
    pool: asyncpg.Pool, fake_slack: FakeSlack
) -> None:
    n = notifier(pool, fake_slack)
    inc = incident()
    await store_incident(pool, inc)
    fake_slack.fail_next(1, status=429, retry_after=1)
    await n.handle(event("opened", inc))
    limited, posted = [c for c in fake_slack.calls if c.method == "chat.postMessage"]
    assert (limited.status, posted.status) == (429, 200)
    assert posted.at - limited.at >= 1.0  # Retry-After was honoured
    stored = await row(pool, f"slack:root:{inc.incident_id}")
    assert stored is not None
    assert (stored["status"], stored["attempts"]) == ("sent", 1)


async def test_a_failing_slack_is_recorded_counted_and_unhealthy_until_it_recovers(
    pool: asyncpg.Pool,
    nc: NatsClient,
    js: JetStreamContext,
    fake_slack: FakeSlack,
    database_url: str,
    nats_url: str,
) -> None:
    port = free_port()
    inc = incident()
    await store_incident(pool, inc)
    key = f"slack:root:{inc.incident_id}"
    before = metric("spendwatch_notifier_delivery_failures_total", channel="slack")
    async with (
        incidents_service(nc),
        running(settings(database_url, nats_url, fake_slack, METRICS_PORT=port)),
        aiohttp.ClientSession() as http,
    ):
        fake_slack.fail_next(1000, status=500)
        await publish(js, event("opened", inc))
        await until(
            lambda: pool.fetchval("SELECT status = 'failed' FROM notifications"), what="failed"
        )
        failed = await row(pool, key)
        assert failed is not None
        assert failed["status"] == "failed"
        assert failed["attempts"] >= 1
        assert "internal_error" in failed["error"]
        assert metric("spendwatch_notifier_delivery_failures_total", channel="slack") > before
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 503
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert 'spendwatch_notifier_delivery_failures_total{channel="slack"}' in (
                await response.text()
            )
        fake_slack.reset()  # Slack is back: the redelivery goes through
        await until(fake_slack.top_level, timeout=15, what="the redelivered post")
        await until(lambda: drained(js), what="the event acked")
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
    recovered = await row(pool, key)
    assert recovered is not None
    assert recovered["status"] == "sent"
    assert recovered["attempts"] >= 2


async def test_an_event_that_keeps_failing_is_dead_lettered_after_the_last_delivery(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    fake_slack: FakeSlack,
    database_url: str,
    nats_url: str,
) -> None:
    inc = incident()
    await store_incident(pool, inc)
    opened = event("opened", inc)
    await publish(js, opened)
    # Deliver it MAX_DELIVER times on a consumer of our own, failing all but the last quickly.
    await js.add_consumer(
        "INCIDENTS",
        ConsumerConfig(durable_name="probe", ack_policy=AckPolicy.EXPLICIT, max_deliver=99),
    )
    sub = await js.pull_subscribe_bind("probe", stream="INCIDENTS")
    for _ in range(MAX_DELIVER - 1):
        [msg] = await sub.fetch(1, timeout=2)
        await msg.nak()
    [last] = await sub.fetch(1, timeout=2)
    assert last.metadata.num_delivered == MAX_DELIVER
    app, runtime = build(settings(database_url, nats_url, fake_slack))
    await runtime.start()
    fake_slack.fail_next(1000, status=500)
    try:
        before = metric("spendwatch_notifier_dead_lettered_total")
        with pytest.raises(AckMessage):
            await runtime.handle(opened, cast(Any, type("M", (), {"raw_message": last})()))
        assert metric("spendwatch_notifier_dead_lettered_total") == before + 1
        dlq = await js.subscribe(subjects.dlq(subjects.incidents_events("opened")), stream="DLQ")
        parked = await dlq.next_msg(timeout=2)
        assert parked.headers is not None
        assert "gave up" in parked.headers["Spendwatch-Dlq-Reason"]
        await dlq.unsubscribe()
    finally:
        await runtime.stop()
        assert app.broker is not None
        await app.broker.stop()
    stored = await row(pool, f"slack:root:{inc.incident_id}")
    assert stored is not None
    assert stored["status"] == "failed"  # and it stays on the record


async def test_slack_errors_say_what_slack_said(pool: asyncpg.Pool, fake_slack: FakeSlack) -> None:
    n = Notifier(
        db=pool,
        slack=SlackChannel(
            token=SecretStr("xoxb-wrong"), channel=fake_slack.channel, base_url=fake_slack.url
        ),
        email=None,
        commands=None,
        timezone="UTC",
        dashboard_url=None,
    )
    inc = incident()
    await store_incident(pool, inc)
    with pytest.raises(SlackError, match="invalid_auth"):
        await n.handle(event("opened", inc))
