"""The simulated Cursor team: determinism, shape of the data, anomalies and exact money."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from spendwatch.common.errors import ConfigError
from spendwatch.simulator import wire
from spendwatch.simulator.errors import DuplicateEventError, InvalidSimRequestError
from spendwatch.simulator.models import MODEL_INDEX
from spendwatch.simulator.team import (
    DAY_MS,
    ERRORED,
    HEADLESS,
    INCLUDED,
    OLD_SHAPE,
    USAGE_BASED,
    EventRow,
    SimulatedTeam,
    cost_micros_from_cents,
    day_of,
)

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
THINKING_FAST = MODEL_INDEX["claude-4.6-opus-max-thinking-fast"]


@pytest.fixture(scope="module")
def team() -> SimulatedTeam:
    return SimulatedTeam(seed=7, developers=60, days=30, now=NOW)


@pytest.fixture(scope="module")
def events(team: SimulatedTeam) -> list[EventRow]:
    return list(team.iter_events(team.window_start_ms, team.now_ms))


def _served_cost(event: dict[str, object]) -> Decimal:
    """The cost rule applied to an event exactly as JSON carries it."""
    parsed = json.loads(json.dumps(event), parse_float=Decimal)
    usage = parsed.get("tokenUsage") or {}
    return cost_micros_from_cents(
        None if "chargedCents" not in parsed else Decimal(parsed["chargedCents"]),
        None if "totalCents" not in usage else Decimal(usage["totalCents"]),
        None if "cursorTokenFee" not in parsed else Decimal(parsed["cursorTokenFee"]),
    )


def test_same_seed_same_team_other_seed_other_team(team: SimulatedTeam) -> None:
    again = SimulatedTeam(seed=7, developers=60, days=30, now=NOW)
    other = SimulatedTeam(seed=8, developers=60, days=30, now=NOW)
    assert [m.email for m in again.members] == [m.email for m in team.members]
    assert again.truth() == team.truth()
    page = team.events_page(team.window_start_ms, team.now_ms, member=None, offset=500, limit=50)
    assert (
        again.events_page(team.window_start_ms, team.now_ms, member=None, offset=500, limit=50)
        == page
    )
    assert other.truth().total_cost_micros != team.truth().total_cost_micros


def test_members_groups_and_cycle(team: SimulatedTeam) -> None:
    assert len(team.members) == 60
    assert len({m.email.lower() for m in team.members}) == 60
    assert len({m.id for m in team.members}) == 60
    assert all(m.user_id.startswith("user_") for m in team.members)
    assert [m.role for m in team.members].count("owner") == 1
    assert sum(m.is_removed for m in team.members) == 1
    grouped = Counter(m.group for m in team.members)
    assert 0 < grouped[None] < 15  # some unassigned
    assert len([g for g in grouped if g is not None]) == len(team.groups) == 10
    cycle_first, cycle_after = team.cycle_of(team.last_day)
    assert 10 <= team.last_day - cycle_first <= 20
    assert 28 <= cycle_after - cycle_first <= 31
    assert team.cycle_start_ms == cycle_first * DAY_MS


def test_events_fill_the_window_in_order_and_are_unique(
    team: SimulatedTeam, events: list[EventRow]
) -> None:
    assert 20_000 < len(events) == team.truth().total_events
    assert all(team.window_start_ms <= e.ts <= team.now_ms for e in events)
    keys = [(-e.ts, team.members[e.member].id) for e in events]
    assert keys == sorted(keys)
    assert len({(e.member, e.ts) for e in events}) == len(events)
    leaver = next(m for m in team.members if m.is_removed)
    assert leaver.removed_day is not None
    assert all(day_of(e.ts) < leaver.removed_day for e in events if e.member == leaver.index)


def test_weekends_are_much_quieter(team: SimulatedTeam, events: list[EventRow]) -> None:
    per_day = Counter(day_of(e.ts) for e in events)
    whole_days = range(team.first_day + 1, team.last_day)
    weekday = [per_day[d] for d in whole_days if (d + 3) % 7 < 5]
    weekend = [per_day[d] for d in whole_days if (d + 3) % 7 >= 5]
    assert statistics.mean(weekend) < 0.3 * statistics.mean(weekday)


def test_model_mix_kinds_and_shapes(team: SimulatedTeam, events: list[EventRow]) -> None:
    models = Counter(e.model for e in events)
    assert len(models) >= 9
    assert models[MODEL_INDEX["claude-4.5-sonnet"]] == max(models.values())
    kinds = Counter(e.kind for e in events)
    assert all(kinds[k] > 0 for k in range(4))
    assert 0.01 < kinds[ERRORED] / len(events) < 0.04
    old = [e for e in events if e.flags & OLD_SHAPE]
    assert 0.02 < len(old) / len(events) < 0.08
    assert any(e.discount for e in events)
    assert sum(e.flags & HEADLESS for e in events) > 1000  # background agents and the loop


def test_included_plans_run_out_partway_through_the_cycle(
    team: SimulatedTeam, events: list[EventRow]
) -> None:
    cycle_first = team.cycle_of(team.last_day)[0]
    in_cycle = sorted((e for e in events if day_of(e.ts) >= cycle_first), key=lambda e: e.ts)
    by_member: dict[int, list[int]] = defaultdict(list)
    for e in in_cycle:
        if e.kind in (INCLUDED, USAGE_BASED):
            by_member[e.member].append(e.kind)
    for kinds in by_member.values():  # once a plan is used up it stays used up
        assert kinds == sorted(kinds)
    exhausted = sum(INCLUDED in k and USAGE_BASED in k for k in by_member.values())
    assert exhausted > len(by_member) / 2


def test_charged_is_discounted_model_cost_plus_fee(
    team: SimulatedTeam, events: list[EventRow]
) -> None:
    for e in events:
        served = wire.usage_event(team, e)
        if e.kind == ERRORED:
            assert served["chargedCents"] == 0
            assert "cursorTokenFee" not in served
        if e.flags & OLD_SHAPE:
            assert "chargedCents" not in served
            assert "cursorTokenFee" not in served
            assert "totalCents" in served["tokenUsage"]
            continue
        charged = Decimal(str(served["chargedCents"]))
        assert charged * 10_000 == e.charged
        if "tokenUsage" in served:
            usage = served["tokenUsage"]
            model = Decimal(str(usage["totalCents"])) * (100 - usage.get("discountPercentOff", 0))
            fee = Decimal(str(served.get("cursorTokenFee", 0)))
            assert charged == model / 100 + fee
    assert any(-charged % 1 for charged in (Decimal(e.charged) / 10_000 for e in events))


def test_truth_equals_the_cost_rule_on_served_events(
    team: SimulatedTeam, events: list[EventRow]
) -> None:
    per: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for e in events:
        served = wire.usage_event(team, e)
        cell = per[
            served["userEmail"].lower(), datetime.fromtimestamp(e.ts / 1000, UTC).date().isoformat()
        ]
        cell[0] += 1
        cell[1] += _served_cost(served)
    truth = team.truth()
    assert {
        (u.user_email, u.day.isoformat()): (u.events, u.cost_micros) for u in truth.user_days
    } == {key: (int(count), int(cost)) for key, (count, cost) in per.items()}
    assert truth.total_cost_micros == sum(u.cost_micros for u in truth.user_days)


def test_pages_concatenate_to_the_range(team: SimulatedTeam) -> None:
    start, end = team.now_ms - 3 * DAY_MS - 12_345, team.now_ms - DAY_MS // 3
    expected = list(team.iter_events(start, end))
    member = team.members[5].index
    for who in (None, member):
        want = [e for e in expected if who is None or e.member == who]
        total, got = 0, []
        for offset in range(0, len(want) + 700, 700):
            total, page = team.events_page(start, end, member=who, offset=offset, limit=700)
            got += page
        assert total == len(want) == team.count_events(start, end, who)
        assert got == want
        truth = team.truth(start, end, who)
        assert truth.total_events == len(want)
        assert truth.total_cost_micros == sum(e.charged for e in want)


def test_anomalies_have_ground_truth(team: SimulatedTeam, events: list[EventRow]) -> None:
    anomalies = {a.kind: a for a in team.anomalies}
    assert set(anomalies) == {"spend_spike", "model_switch", "runaway_agent", "cycle_outlier"}
    assert len({a.user_email for a in team.anomalies}) == 4

    spike = anomalies["spend_spike"]
    day_cost = int(spike.details["day_cost_micros"])
    assert day_cost >= 50_000_000  # clears a $50 daily floor
    assert 5 < day_cost / int(spike.details["baseline_avg_micros_active_days"]) < 10
    assert 5 < day_cost / int(spike.details["baseline_avg_micros_7_days"]) < 15

    switch = anomalies["model_switch"]
    fast = [e for e in events if e.model == THINKING_FAST]
    assert fast
    assert {team.members[e.member].email.lower() for e in fast} == {switch.user_email}
    assert all(switch.window_start_ms <= e.ts <= switch.window_end_ms for e in fast)
    ratio = int(switch.details["cost_per_request_micros"]) / int(
        switch.details["history_cost_per_request_micros"]
    )
    assert ratio > 5

    loop = anomalies["runaway_agent"]
    looping = sorted(
        e.ts
        for e in events
        if team.members[e.member].email.lower() == loop.user_email
        and loop.window_start_ms <= e.ts <= loop.window_end_ms
        and e.flags & HEADLESS
    )
    assert len(looping) == int(loop.details["headless_events"]) > 1500
    gaps = [b - a for a, b in pairwise(looping)]
    assert 3000 <= statistics.median(gaps) <= 8000
    assert loop.window_end_ms - loop.window_start_ms > 3 * 3_600_000

    outlier = anomalies["cycle_outlier"]
    assert int(outlier.details["cycle_spend_micros"]) > 10 * int(
        outlier.details["team_median_micros"]
    )


def test_no_other_user_spikes(team: SimulatedTeam) -> None:
    """Only the injected users cross a 5x-own-average, $50 day: the truth is the whole truth."""
    injected = {a.user_email for a in team.anomalies}
    for member in team.members:
        if member.email.lower() in injected:
            continue
        for day in range(team.first_day + 7, team.last_day + 1):
            stats = team.day_stats(member.index, day)
            if stats is None or stats.charged < 50_000_000:
                continue
            before = [team.day_stats(member.index, d) for d in range(day - 7, day)]
            active = [s.charged for s in before if s is not None and s.charged]
            assert not active or stats.charged <= 5 * sum(active) / len(active)


def test_small_teams_get_no_anomalies() -> None:
    small = SimulatedTeam(seed=1, developers=5, days=30, now=NOW)
    assert small.anomalies == []
    assert small.truth().total_events > 0


def test_late_events_join_counts_pages_and_truth() -> None:
    team = SimulatedTeam(seed=3, developers=10, days=14, now=NOW)
    member = team.members[4]
    at = team.now_ms - 2 * DAY_MS - 1234
    before = team.truth()
    row = team.add_late_event(
        timestamp_ms=at,
        email=member.email.upper(),
        model="claude-4.5-sonnet",
        charged_cents=Decimal("12.345675"),
        fee_cents=Decimal("1.18"),
    )
    assert row.charged == Decimal("123456.75")
    after = team.truth()
    assert after.total_events == before.total_events + 1
    assert after.total_cost_micros == round(before.total_cost_micros + Decimal("123456.75"))
    total, page = team.events_page(at, at, member=None, offset=0, limit=10)
    assert (total, page) == (1, [row])
    assert wire.usage_event(team, row)["chargedCents"] == 12.345675
    with pytest.raises(DuplicateEventError):
        team.add_late_event(
            timestamp_ms=at, email=member.email, model="auto", charged_cents=Decimal(1)
        )
    old = team.add_late_event(
        timestamp_ms=at + 1, email=member.email, model="auto", charged_cents=None,
        total_cents=Decimal("0.00005"),
    )  # fmt: skip
    assert "chargedCents" not in wire.usage_event(team, old)
    assert old.charged == Decimal("0.5")
    with pytest.raises(InvalidSimRequestError):
        team.add_late_event(
            timestamp_ms=team.now_ms + 1, email=member.email, model="auto", charged_cents=None
        )
    with pytest.raises(InvalidSimRequestError):
        team.add_late_event(
            timestamp_ms=at + 2, email="nobody@example.com", model="auto", charged_cents=Decimal(1)
        )


def test_half_even_rounding_happens_once_at_the_end() -> None:
    team = SimulatedTeam(seed=3, developers=8, days=3, now=NOW, anomalies=False)
    at = team.now_ms - 5 * 3_600_000 + 777
    member = team.members[1]
    before = team.truth(at, at + 10)
    assert before.total_events == 0
    for i in range(3):  # 3 x 0.5 micro = 1.5 micros -> 2 (half-even), not 3 x round(0.5) = 0
        team.add_late_event(
            timestamp_ms=at + i, email=member.email, model="auto", charged_cents=Decimal("0.00005")
        )
    truth = team.truth(at, at + 10)
    assert (truth.total_events, truth.total_cost_micros) == (3, 2)


@pytest.mark.parametrize(
    ("developers", "days", "seed"),
    [(0, 30, 1), (5001, 30, 1), (60, 0, 1), (60, 91, 1), (60, 30, -1)],
)
def test_out_of_range_parameters_are_refused(developers: int, days: int, seed: int) -> None:
    with pytest.raises(ConfigError):
        SimulatedTeam(now=NOW, developers=developers, days=days, seed=seed)


def test_now_defaults_to_the_real_now() -> None:
    team = SimulatedTeam(seed=1, developers=3, days=2)
    real = datetime.now(UTC)
    assert abs(team.now_ms - real.timestamp() * 1000) < timedelta(minutes=1).total_seconds() * 1000
