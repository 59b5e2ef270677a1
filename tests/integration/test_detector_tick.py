"""The detector's tick and clears on a real database and bus, with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
from nats.js import JetStreamContext

from spendwatch.collector import repository as sink
from spendwatch.collector.batch import commit_notices
from spendwatch.common.events import (
    AnomalyClearedV1,
    AnomalyDetectedV1,
    UsageCommittedV1,
    UsageRecordedV1,
)
from spendwatch.detector.service import Detector
from tests.clock import Clock

NOV = datetime(2026, 11, 1, tzinfo=UTC)


def spend(
    user: str,
    at: datetime,
    dollars: str,
    *,
    n: int = 0,
    kind: str = "included",
    headless: bool = False,
    model: str = "claude-4.5-sonnet",
) -> UsageRecordedV1:
    return UsageRecordedV1(
        event_id=f"t:{user}:{at.isoformat()}:{n}",
        provider="cursor",
        occurred_at=at,
        user_email=user,
        model=model,
        kind=kind,
        cost_micros=int(Decimal(dollars) * 1_000_000),
        is_headless=headless,
        ingested_at=at,
    )


async def store(pool: asyncpg.Pool, events: list[UsageRecordedV1]) -> UsageCommittedV1:
    """Write events exactly as the sink does; the notice it would publish."""
    async with pool.acquire() as conn, conn.transaction():
        await sink.prepare_stage(conn)
        touched = await sink.insert_usage_events(conn, events=events, timezone="UTC")
    [notice] = commit_notices(touched, max(e.occurred_at for e in events))
    return notice


async def set_thresholds(pool: asyncpg.Pool, document: dict[str, object]) -> None:
    await pool.execute(
        "INSERT INTO settings (key, value, updated_by) VALUES ('detection', $1, 'test')"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        document,
    )


def by_detector(
    found: list[AnomalyDetectedV1 | AnomalyClearedV1], detector: str
) -> list[AnomalyDetectedV1 | AnomalyClearedV1]:
    return [a for a in found if a.detector == detector]


async def test_team_budget_fires_at_the_crossing_event_then_escalates(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    await set_thresholds(pool, {"static_caps": {"team_cycle_budget_usd": "100"}})
    clock = Clock(NOV + timedelta(days=21, hours=12))
    detector = Detector(db=pool, js=js, timezone="UTC", clock=clock)
    await store(
        pool,
        [
            spend("alice@x.com", NOV + timedelta(days=2, hours=10), "30"),
            spend("bob@x.com", NOV + timedelta(days=9, hours=10), "40", kind="usage_based"),
            spend("alice@x.com", NOV + timedelta(days=14, hours=9), "35"),  # $105: crossed here
        ],
    )
    found = await detector.tick()

    [budget] = by_detector(found, "team_budget")
    assert isinstance(budget, AnomalyDetectedV1)
    assert (budget.subject, budget.severity) == ("team", "warning")
    assert (budget.value, budget.threshold) == (Decimal("105.00"), Decimal("100.00"))
    assert budget.fingerprint == "team:team_budget:2026-11-01"
    assert budget.evidence_first_at == NOV + timedelta(days=14, hours=9)
    assert budget.window_start == NOV
    assert budget.window_end == datetime(2026, 12, 1, tzinfo=UTC)
    assert budget.message == "Team spend $105 has reached the $100 budget for this cycle (105%)"
    [plan] = by_detector(found, "plan_exhaustion")
    assert isinstance(plan, AnomalyDetectedV1)
    assert (plan.subject, plan.severity, plan.value) == ("bob@x.com", "info", Decimal("40.00"))
    assert plan.evidence_first_at == NOV + timedelta(days=9, hours=10)
    assert "went past the included plan on day 10 of the cycle (Nov 10)" in plan.message

    assert await detector.tick() == []  # nothing new

    await store(pool, [spend("bob@x.com", NOV + timedelta(days=19), "10")])  # $115 >= 110 %
    [escalated] = await detector.tick()
    assert isinstance(escalated, AnomalyDetectedV1)
    assert (escalated.fingerprint, escalated.severity) == (budget.fingerprint, "critical")
    assert escalated.anomaly_id != budget.anomaly_id
    assert (await js.stream_info("ANOMALIES")).state.messages == 3
    assert await pool.fetchval("SELECT count(*) FROM anomalies") == 3


async def test_a_window_closed_below_its_threshold_clears_and_a_new_firing_is_new(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    day = NOV + timedelta(days=20)
    clock = Clock(day + timedelta(hours=18))
    detector = Detector(db=pool, js=js, timezone="UTC", clock=clock)
    team = [f"user{i}@x.com" for i in range(8)]
    # Zed's usual working day is $100 (the z-score also wants 2x the user's own usual day).
    await store(
        pool, [spend("zed@x.com", day - timedelta(days=d, hours=-9), "100") for d in (1, 2, 3)]
    )
    notice = await store(
        pool,
        [spend(u, day + timedelta(hours=9), "10") for u in team]
        + [
            spend("zed@x.com", day + timedelta(hours=8, minutes=30 * i), "50", n=i)
            for i in range(10)
        ],
    )
    [outlier] = await detector.evaluate(notice)  # 8 x $10 and $500: sample z = 8/3 > 2.5
    assert (outlier.detector, outlier.subject) == ("zscore", "zed@x.com")

    # Later that day half the team catches up: $500 is no longer an outlier.
    await store(pool, [spend(u, day + timedelta(hours=15), "590") for u in team[:4]])
    clock.now = day + timedelta(days=1, minutes=59)  # closed, but within the 1-hour grace
    assert await detector.tick() == []
    clock.now = day + timedelta(days=1, hours=1, minutes=1)
    [cleared] = await detector.tick()
    assert isinstance(cleared, AnomalyClearedV1)
    assert cleared.fingerprint == outlier.fingerprint
    assert cleared.cleared_at == clock.now
    assert cleared.message.startswith("Cleared (the window closed below the threshold): ")
    assert await detector.tick() == []
    kinds = await pool.fetch("SELECT kind FROM anomalies ORDER BY detected_at")
    assert [r["kind"] for r in kinds] == ["detected", "cleared"]

    # The same fingerprint firing again after its clear is a new anomaly, not a duplicate.
    notice = await store(
        pool,
        [spend("zed@x.com", day + timedelta(hours=20, minutes=i), "200", n=i) for i in range(20)],
    )
    [again] = by_detector(list(await detector.evaluate(notice)), "zscore")  # and a runaway
    assert again.fingerprint == outlier.fingerprint
    assert again.anomaly_id not in {outlier.anomaly_id, cleared.anomaly_id}


async def test_a_runaway_agent_is_reported_and_clears_when_the_burst_ends(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    user = "carol@x.com"
    today = NOV + timedelta(days=21)
    history = [  # two weeks of 30 requests a day, 16 minutes apart: one request per window
        spend(user, today - timedelta(days=d) + timedelta(hours=9, minutes=16 * i), "0.50", n=i)
        for d in range(1, 15)
        for i in range(30)
    ]
    await store(pool, history)
    loop = [  # from 02:00, every 5 s for 40 minutes: 480 headless requests of $0.10
        spend(user, today + timedelta(hours=2, seconds=5 * i), "0.10", n=i, headless=True)
        for i in range(480)
    ]
    clock = Clock(today + timedelta(hours=2, minutes=45))
    detector = Detector(db=pool, js=js, timezone="UTC", clock=clock)
    [burst] = await detector.evaluate(await store(pool, loop))
    assert (burst.detector, burst.subject) == ("runaway", user)
    assert burst.metric == "window_requests"  # 180 requests / 60 beats $18 / $10
    assert (burst.value, burst.threshold) == (Decimal(180), Decimal(60))
    assert burst.evidence_first_at is not None
    assert (
        today + timedelta(hours=2)
        <= burst.evidence_first_at
        < today + timedelta(hours=2, minutes=1)
    )
    assert "180 requests in 15 minutes" in burst.message

    clock.now = today + timedelta(hours=3, minutes=50)  # data through 02:50: the loop ran to 02:40
    assert await detector.tick() == []  # headless requests in the last window: not over yet
    clock.now = today + timedelta(hours=4)
    [cleared] = await detector.tick()
    assert isinstance(cleared, AnomalyClearedV1)
    assert cleared.fingerprint == burst.fingerprint
    assert cleared.message.startswith("Cleared (the burst ended): ")


async def test_old_usage_is_history_unless_asked_for(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    user = "dan@x.com"
    today = NOV + timedelta(days=21)
    old = today - timedelta(days=10)
    events = [spend(user, old - timedelta(days=d, hours=-9), "10") for d in range(1, 8)]
    await store(pool, events)
    notice = await store(pool, [spend(user, old + timedelta(hours=9), "400")])
    detector = Detector(db=pool, js=js, timezone="UTC", clock=Clock(today + timedelta(hours=12)))
    assert await detector.evaluate(notice) == []  # a backfill pages nobody
    [spike] = await detector.evaluate_days(12)  # `spendwatch detect --once --days 12` does
    assert spike.fingerprint == f"{user}:spend_spike:{old.date()}"


async def test_a_stored_settings_row_that_does_not_validate_keeps_the_last_good_one(
    pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    detector = Detector(db=pool, js=js, timezone="UTC")
    upsert = (
        "INSERT INTO settings (key, value) VALUES ('detection', $1)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    )
    await pool.execute(upsert, {"zscore": {"multiplier": "7"}})
    assert (await detector.settings()).zscore.multiplier == Decimal(7)
    for broken in ("not a document", {"zscore": {"multiplier": "seven"}}, {"zscore": 3}):
        await pool.execute(upsert, broken)  # as if edited by hand, past the API
        assert (await detector.settings()).zscore.multiplier == Decimal(7)
