"""The daily plan-exhaustion digest and the cycle summary on a seeded database: the numbers are
this cycle's only, each goes out once per day / cycle, on Slack and by email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from pydantic import SecretStr

from spendwatch.notifier.email import EmailChannel, ResendTransport
from spendwatch.notifier.service import Notifier
from spendwatch.notifier.slack import SlackChannel
from tests.fakes.resend import FakeResend
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(60)

BERLIN = ZoneInfo("Europe/Berlin")
MICROS = 1_000_000


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def at(self, day: date, hour: int, minute: int = 0) -> None:
        self.now = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


async def usage(
    db: asyncpg.Pool,
    day: date,
    user: str,
    dollars: int,
    *,
    requests: int = 10,
    on_demand: int = 0,
    on_demand_requests: int = 0,
    model: str = "claude-4.5-sonnet",
) -> None:
    at = datetime(day.year, day.month, day.day, 12, tzinfo=BERLIN)
    await db.execute(
        """
        INSERT INTO usage_daily_user_model (day, user_email, provider, model, events, cost_micros,
            usage_based_events, usage_based_micros, first_event_at, last_event_at)
        VALUES ($1, $2, 'cursor', $3, $4, $5, $6, $7, $8, $8)
        """,
        day,
        user,
        model,
        requests,
        dollars * MICROS,
        on_demand_requests,
        on_demand * MICROS,
        at,
    )


async def member(db: asyncpg.Pool, user: str, name: str, *, removed: bool = False) -> None:
    now = datetime.now(UTC)
    await db.execute(
        """
        INSERT INTO members (provider, user_email, name, is_removed, first_seen_at, captured_at)
        VALUES ('cursor', $1, $2, $3, $4, $4)
        """,
        user,
        name,
        removed,
        now,
    )


@pytest.fixture
async def seeded(pool: asyncpg.Pool) -> asyncpg.Pool:
    """Cycles start on the 5th; this cycle [Nov 5, Dec 5), the previous [Oct 5, Nov 5)."""
    await pool.execute(
        """
        INSERT INTO spend_snapshots (provider, cycle_start, user_email, spend_micros,
            overall_spend_micros, first_captured_at, captured_at)
        VALUES ('cursor', '2026-10-05T00:00:00Z', 'alice@x.com', 0, 0, now(), now()),
               ('cursor', '2026-11-05T00:00:00Z', 'alice@x.com', 0, 0, now(), now())
        """
    )
    # This cycle: alice, bob and frank (not on the roster) went past the plan; carol did not.
    await usage(pool, date(2026, 11, 6), "alice@x.com", 70, on_demand=50, on_demand_requests=20)
    await usage(
        pool,
        date(2026, 11, 12),
        "alice@x.com",
        50,
        on_demand=30,
        on_demand_requests=10,
        model="claude-4.6-opus-max",
    )
    await usage(pool, date(2026, 11, 8), "bob@x.com", 40, on_demand=10, on_demand_requests=5)
    await usage(pool, date(2026, 11, 9), "carol@x.com", 15)
    await usage(pool, date(2026, 11, 10), "frank@x.com", 5, on_demand=3, on_demand_requests=2)
    # The previous cycle: carol was far past the plan then, dave used it then only.
    await usage(pool, date(2026, 10, 6), "alice@x.com", 50)
    await usage(pool, date(2026, 10, 10), "carol@x.com", 520, on_demand=500, on_demand_requests=100)
    await usage(pool, date(2026, 10, 20), "dave@x.com", 30)
    await usage(pool, date(2026, 11, 3), "dave@x.com", 1000)  # after the same point of last cycle
    for user, name in [
        ("alice@x.com", "Alice"),
        ("bob@x.com", "Bob"),
        ("carol@x.com", "Carol"),
        ("dave@x.com", "Dave"),
        ("erin@x.com", "Erin"),
    ]:
        await member(pool, user, name)
    await member(pool, "gina@x.com", "Gina", removed=True)
    return pool


def digest_notifier(
    db: asyncpg.Pool, slack: FakeSlack, resend: FakeResend, clock: Clock
) -> tuple[Notifier, ResendTransport]:
    transport = ResendTransport(api_key=SecretStr(resend.api_key), base_url=resend.url)
    n = Notifier(
        db=db,
        slack=SlackChannel(token=SecretStr(slack.token), channel=slack.channel, base_url=slack.url),
        email=EmailChannel(transport, sender="alerts@example.com", recipients=["lead@x.com"]),
        commands=None,
        timezone="Europe/Berlin",
        dashboard_url="http://grafana.test",
        digest_hour=9,
        clock=clock,
    )
    return n, transport


def texts(message: object) -> str:
    blocks = getattr(message, "blocks", [])
    parts = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(f["text"] for f in block.get("fields", []))
        parts.extend(e.get("text", "") for e in block.get("elements", []))
    return "\n".join(str(p) for p in parts)


async def test_the_plan_digest_counts_this_cycle_only_and_goes_out_once_a_day(
    seeded: asyncpg.Pool, fake_slack: FakeSlack, fake_resend: FakeResend
) -> None:
    clock = Clock(datetime.now(UTC))
    n, transport = digest_notifier(seeded, fake_slack, fake_resend, clock)
    try:
        clock.at(date(2026, 11, 20), 8, 59)
        assert await n.digests() == []  # before the digest hour
        clock.at(date(2026, 11, 20), 9, 30)
        assert await n.digests() == [
            "slack:digest:plan:2026-11-20",
            "email:digest:plan:2026-11-20",
        ]
        clock.at(date(2026, 11, 20), 17, 0)
        assert await n.digests() == []  # once a day
        clock.at(date(2026, 11, 21), 9, 0)
        assert await n.digests() == [
            "slack:digest:plan:2026-11-21",
            "email:digest:plan:2026-11-21",
        ]
    finally:
        await transport.aclose()
    first = fake_slack.top_level()[0]
    # Active: alice, bob, carol, frank; past the plan: alice, bob, frank (carol only last cycle).
    assert first.text == "3/4 active users have exceeded their included plan this cycle"
    body = texts(first)
    assert "*3/4 active users have exceeded their included plan this cycle*" in body
    assert "On-demand spend so far: *$93.00*" in body
    assert (
        "1. Alice (alice@x.com): $80.00 on demand (30 requests past the plan)\n"
        "2. Bob (bob@x.com): $10.00 on demand (5 requests past the plan)\n"
        "3. frank@x.com: $3.00 on demand (2 requests past the plan)"
    ) in body
    assert "Cycle 2026-11-05 → 2026-12-04" in body
    assert len(fake_slack.top_level()) == 2
    mail = fake_resend.emails[0]
    assert mail.subject == (
        "[spendwatch] 3/4 active users have exceeded their included plan this cycle"
    )
    assert mail.text is not None
    assert "1. Alice (alice@x.com): $80.00 on demand (30 requests)" in mail.text
    assert len(fake_resend.emails) == 2


async def test_the_cycle_summary_goes_out_once_three_days_before_the_cycle_ends(
    seeded: asyncpg.Pool, fake_slack: FakeSlack, fake_resend: FakeResend
) -> None:
    clock = Clock(datetime.now(UTC))
    n, transport = digest_notifier(seeded, fake_slack, fake_resend, clock)
    try:
        clock.at(date(2026, 12, 1), 10)  # four days left: only the plan digest
        assert await n.digests() == [
            "slack:digest:plan:2026-12-01",
            "email:digest:plan:2026-12-01",
        ]
        clock.at(date(2026, 12, 2), 10)  # three days left (Dec 2, 3, 4)
        sent = await n.digests()
        assert "slack:digest:cycle:2026-11-05" in sent
        assert "email:digest:cycle:2026-11-05" in sent
        clock.at(date(2026, 12, 3), 10)
        assert await n.digests() == [  # once per cycle
            "slack:digest:plan:2026-12-03",
            "email:digest:plan:2026-12-03",
        ]
    finally:
        await transport.aclose()
    [summary] = [m for m in fake_slack.top_level() if m.text and m.text.startswith("Cycle")]
    assert summary.text == "Cycle summary: $180.00 spent, 2 unused seats"
    body = texts(summary)
    assert ":bar_chart: Cycle summary · ends 2026-12-04" in body
    assert "*Spend this cycle*\n$180.00" in body
    # Last cycle over its first 28 days (Oct 5 - Nov 1): 50 + 520 + 30; not the $1,000 after.
    assert "*Previous cycle at the same point*\n$600.00 (-70%)" in body
    assert "*Adoption*\n3/5 seats active (60%)" in body
    assert "*Unused seats*\n2: Dave, Erin" in body
    assert "*Exceeded the included plan*\n3 users" in body
    assert (
        "1. Alice (alice@x.com): $120.00\n2. Bob (bob@x.com): $40.00\n"
        "3. Carol (carol@x.com): $15.00\n4. frank@x.com: $5.00"
    ) in body
    assert "3 days left" in body
    [mail] = [m for m in fake_resend.emails if "Cycle summary" in m.subject]
    assert mail.subject == "[spendwatch] Cycle summary: $180.00 spent, cycle ends 2026-12-04"
    assert mail.html is not None
    assert "3/5 seats active (60%)" in mail.html
    rows = await seeded.fetch(
        "SELECT idempotency_key FROM notifications WHERE kind = 'digest' AND status = 'sent'"
        " ORDER BY idempotency_key"
    )
    assert [r["idempotency_key"] for r in rows if ":cycle:" in r["idempotency_key"]] == [
        "email:digest:cycle:2026-11-05",
        "slack:digest:cycle:2026-11-05",
    ]


async def test_a_failed_digest_is_recorded_and_tried_again_later(
    seeded: asyncpg.Pool, fake_slack: FakeSlack, fake_resend: FakeResend
) -> None:
    clock = Clock(datetime.now(UTC))
    n, transport = digest_notifier(seeded, fake_slack, fake_resend, clock)
    try:
        clock.at(date(2026, 11, 20), 9, 30)
        fake_slack.fail_next(3, status=503)  # one attempt, with the SDK's retries
        assert await n.digests() == ["email:digest:plan:2026-11-20"]
        failed = await seeded.fetchrow(
            "SELECT status, attempts FROM notifications"
            " WHERE idempotency_key = 'slack:digest:plan:2026-11-20'"
        )
        assert (failed["status"], failed["attempts"]) == ("failed", 1)
        assert await n.digests() == []  # backing off
        clock.now += timedelta(seconds=5)
        assert await n.digests() == ["slack:digest:plan:2026-11-20"]
    finally:
        await transport.aclose()
    assert len(fake_slack.top_level()) == 1
    assert len(fake_resend.emails) == 1
