"""Snapshots through the real sink: latest capture wins, replays of older ones change nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
from nats.js import JetStreamContext

from spendwatch.common.events import (
    DailyUsageRow,
    DailyUsageSnapshotV1,
    Event,
    Group,
    Member,
    MemberSpend,
    RosterSnapshotV1,
    SpendSnapshotV1,
)
from spendwatch.common.messaging import publish_event, subjects
from tests.integration.sinkkit import consumer_drained, running_sink, wait_for

CYCLE = datetime(2026, 11, 1, tzinfo=UTC)


def at(hour: int) -> datetime:
    return datetime(2026, 11, 21, hour, tzinfo=UTC)


async def deliver(js: JetStreamContext, pool: asyncpg.Pool, *snapshots: Event) -> None:
    for snapshot in snapshots:
        kind = {"usage.daily_snapshot.v1": "daily", "usage.spend_snapshot.v1": "spend"}.get(
            snapshot.type,
            "roster",  # type: ignore[attr-defined]
        )
        await publish_event(
            js,
            subjects.usage_snapshot(kind, "cursor"),
            snapshot,
            msg_id=snapshot.snapshot_id,  # type: ignore[attr-defined]
        )
    async with running_sink(js, pool):
        await wait_for(lambda: consumer_drained(js), what="snapshots stored")


def spend(hour: int, cents: int) -> SpendSnapshotV1:
    return SpendSnapshotV1(
        snapshot_id=f"spend-{hour}",
        provider="cursor",
        captured_at=at(hour),
        cycle_start=CYCLE,
        rows=[
            MemberSpend(
                user_email="alice@x.io",
                spend_micros=cents * 10_000,
                overall_spend_micros=cents * 10_000,
                monthly_limit_micros=200_000_000,
            )
        ],
    )


async def test_spend_history_keeps_the_latest_capture_per_cycle(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    await deliver(js, pool, spend(10, 2450), spend(12, 3100), spend(11, 2800))  # 11 arrives late
    row = await pool.fetchrow(
        "SELECT spend_micros, first_captured_at, captured_at FROM spend_snapshots"
    )
    assert row["spend_micros"] == 31_000_000
    assert row["captured_at"] == at(12)
    assert row["first_captured_at"] == at(10)


async def test_daily_usage_upserts_by_user_and_day(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    def daily(hour: int, agent: int) -> DailyUsageSnapshotV1:
        return DailyUsageSnapshotV1(
            snapshot_id=f"daily-{hour}",
            provider="cursor",
            captured_at=at(hour),
            rows=[
                DailyUsageRow(
                    user_email="Bob@x.io",
                    day=date(2026, 11, 20),
                    agent_requests=agent,
                    most_used_model="claude-4.5-sonnet",
                )
            ],
        )

    await deliver(js, pool, daily(9, 10), daily(13, 25), daily(8, 99))
    row = await pool.fetchrow("SELECT user_email, agent_requests, most_used_model FROM daily_usage")
    assert dict(row) == {
        "user_email": "bob@x.io",
        "agent_requests": 25,
        "most_used_model": "claude-4.5-sonnet",
    }


async def test_roster_replaces_group_membership_and_retires_missing_groups(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    first = RosterSnapshotV1(
        snapshot_id="roster-1",
        provider="cursor",
        captured_at=at(9),
        complete_groups=True,
        members=[Member(user_email="a@x.io", name="A"), Member(user_email="b@x.io", name="B")],
        groups=[
            Group(group_id="g1", name="Platform", member_emails=["a@x.io", "b@x.io"]),
            Group(group_id="g2", name="Mobile", member_emails=[]),
        ],
    )
    second = RosterSnapshotV1(
        snapshot_id="roster-2",
        provider="cursor",
        captured_at=at(10),
        complete_groups=True,
        members=[Member(user_email="b@x.io", is_removed=True)],
        groups=[Group(group_id="g1", name="Platform Eng", member_emails=["a@x.io"])],
    )
    await deliver(js, pool, first, second, first.model_copy(update={"snapshot_id": "roster-1b"}))
    groups = {
        r["group_id"]: (r["name"], r["removed_at"])
        for r in await pool.fetch("SELECT * FROM groups")
    }
    assert groups == {"g1": ("Platform Eng", None), "g2": ("Mobile", at(10))}
    members = await pool.fetch("SELECT user_email FROM group_members WHERE group_id = 'g1'")
    assert [m["user_email"] for m in members] == ["a@x.io"]
    b = await pool.fetchrow("SELECT name, is_removed FROM members WHERE user_email = 'b@x.io'")
    assert (b["name"], b["is_removed"]) == ("B", True)  # a name-less update keeps the known name
