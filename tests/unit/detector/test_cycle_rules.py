"""Billing-cycle rules: cycles and their windows, caps, budgets, outliers, expensive models, plans.

Every expected number is worked out by hand from the spec in the comment next to it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from spendwatch.common.cycles import Cycle, cycle_containing
from spendwatch.common.thresholds import CycleOutlier, ExpensiveModel, StaticCaps
from spendwatch.detector.cycle_rules import (
    CycleSpend,
    cycle_outlier,
    expensive_model,
    plan_exhaustion,
    team_budget,
    team_cost_per_request,
    user_cycle_cap,
)
from spendwatch.detector.findings import Finding, parse_fingerprint
from spendwatch.detector.rules import ModelDay

UTC_TZ = ZoneInfo("UTC")
CRITICAL = Decimal(3)
NOVEMBER = Cycle(date(2026, 11, 1), date(2026, 12, 1))
OPUS = "claude-4.6-opus-max"
SONNET = "claude-4.5-sonnet"


def spent(
    amount: str | int,
    email: str = "alice@x.com",
    *,
    model: str | None = OPUS,
    on_demand: str | int = 0,
    on_demand_requests: int = 0,
    first_on_demand_day: date | None = None,
    name: str | None = None,
) -> CycleSpend:
    return CycleSpend(
        user_email=email,
        spend=Decimal(amount),
        on_demand=Decimal(on_demand),
        on_demand_requests=on_demand_requests,
        first_on_demand_day=first_on_demand_day,
        top_model=model,
        name=name,
    )


def users(*amounts: str | int) -> list[CycleSpend]:
    return [spent(a, f"user{i}@x.com", model=None) for i, a in enumerate(amounts)]


# --- cycles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "anchor", "start", "end"),
    [
        # no anchor: the calendar month, December running into January
        (date(2026, 11, 21), None, date(2026, 11, 1), date(2026, 12, 1)),
        (date(2026, 12, 31), None, date(2026, 12, 1), date(2027, 1, 1)),
        # only the anchor's day of month matters, not its month or year
        (date(2026, 11, 21), date(2025, 6, 20), date(2026, 11, 20), date(2026, 12, 20)),
        # the anchor day itself opens a cycle; the day before belongs to the previous one
        (date(2026, 11, 15), date(2026, 10, 15), date(2026, 11, 15), date(2026, 12, 15)),
        (date(2026, 11, 14), date(2026, 10, 15), date(2026, 10, 15), date(2026, 11, 15)),
        # December -> January, from both sides of the new year
        (date(2026, 12, 20), date(2026, 10, 15), date(2026, 12, 15), date(2027, 1, 15)),
        (date(2027, 1, 10), date(2026, 10, 15), date(2026, 12, 15), date(2027, 1, 15)),
        (date(2027, 1, 15), date(2026, 10, 15), date(2027, 1, 15), date(2027, 2, 15)),
        # anchor 31: Feb 31 clips to Feb 28 (2026) / Feb 29 (2028), then back to 31 in March
        (date(2026, 2, 15), date(2026, 1, 31), date(2026, 1, 31), date(2026, 2, 28)),
        (date(2026, 2, 27), date(2026, 1, 31), date(2026, 1, 31), date(2026, 2, 28)),
        (date(2026, 2, 28), date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)),
        (date(2026, 3, 1), date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)),
        (date(2026, 3, 31), date(2026, 1, 31), date(2026, 3, 31), date(2026, 4, 30)),
        (date(2026, 4, 30), date(2026, 1, 31), date(2026, 4, 30), date(2026, 5, 31)),
        (date(2028, 2, 28), date(2026, 1, 31), date(2028, 1, 31), date(2028, 2, 29)),
        (date(2028, 2, 29), date(2026, 1, 31), date(2028, 2, 29), date(2028, 3, 31)),
        # anchor 30: March 1 is still in the cycle that started on the clipped Feb 28
        (date(2026, 3, 1), date(2026, 1, 30), date(2026, 2, 28), date(2026, 3, 30)),
    ],
)
def test_cycle_containing(day: date, anchor: date | None, start: date, end: date) -> None:
    assert cycle_containing(day, anchor) == Cycle(start, end)


def test_day_number_counts_from_one() -> None:
    clipped = Cycle(date(2026, 1, 31), date(2026, 2, 28))
    assert clipped.day_number(date(2026, 1, 31)) == 1
    assert clipped.day_number(date(2026, 2, 2)) == 3  # Jan 31, Feb 1, Feb 2
    assert clipped.day_number(date(2026, 2, 27)) == 28


@pytest.mark.parametrize(
    ("tz", "cycle", "start", "end"),
    [
        ("UTC", NOVEMBER, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        # DST ends 2026-11-01: Oct 15 midnight is PDT (UTC-7), Nov 15 midnight is PST (UTC-8)
        (
            "America/Los_Angeles",
            Cycle(date(2026, 10, 15), date(2026, 11, 15)),
            datetime(2026, 10, 15, 7, tzinfo=UTC),
            datetime(2026, 11, 15, 8, tzinfo=UTC),
        ),
        # DST starts 2026-03-08: Mar 1 midnight is PST (UTC-8), Apr 1 midnight is PDT (UTC-7)
        (
            "America/Los_Angeles",
            Cycle(date(2026, 3, 1), date(2026, 4, 1)),
            datetime(2026, 3, 1, 8, tzinfo=UTC),
            datetime(2026, 4, 1, 7, tzinfo=UTC),
        ),
        # IST is UTC+5:30 all year: local midnight is 18:30 UTC the evening before
        (
            "Asia/Kolkata",
            NOVEMBER,
            datetime(2026, 10, 31, 18, 30, tzinfo=UTC),
            datetime(2026, 11, 30, 18, 30, tzinfo=UTC),
        ),
    ],
)
def test_cycle_window(tz: str, cycle: Cycle, start: datetime, end: datetime) -> None:
    window_start, window_end = cycle.window(ZoneInfo(tz))
    assert (window_start, window_end) == (start, end)
    assert window_start.utcoffset() == timedelta(0)
    assert window_end.utcoffset() == timedelta(0)


def test_the_fall_back_cycle_is_one_hour_longer_than_its_days() -> None:
    start, end = Cycle(date(2026, 10, 15), date(2026, 11, 15)).window(
        ZoneInfo("America/Los_Angeles")
    )
    assert end - start == timedelta(days=31, hours=1)  # Oct 15 -> Nov 15 is 31 days, + 1 h


# --- user cycle cap ----------------------------------------------------------------------------


def test_user_cycle_cap_is_off_at_zero() -> None:
    assert user_cycle_cap([spent(10_000)], StaticCaps(), CRITICAL, NOVEMBER, UTC_TZ) == []


def test_user_cycle_cap_fires_only_above_the_cap() -> None:
    caps = StaticCaps(user_cycle_spend_usd=Decimal(500))
    assert user_cycle_cap([spent("500.00")], caps, CRITICAL, NOVEMBER, UTC_TZ) == []
    [found] = user_cycle_cap([spent("500.01")], caps, CRITICAL, NOVEMBER, UTC_TZ)
    assert (found.value, found.threshold, found.severity) == (
        Decimal("500.01"),
        Decimal("500.00"),
        "warning",
    )


def test_user_cycle_cap_critical_beyond_three_caps() -> None:
    # baseline $0: critical when spend - 0 > 3 x (500 - 0) = $1,500
    caps = StaticCaps(user_cycle_spend_usd=Decimal(500))
    [warn] = user_cycle_cap([spent("1500.00")], caps, CRITICAL, NOVEMBER, UTC_TZ)
    [crit] = user_cycle_cap([spent("1500.01")], caps, CRITICAL, NOVEMBER, UTC_TZ)
    assert (warn.severity, crit.severity) == ("warning", "critical")


def test_user_cycle_cap_reports_each_user_over_it() -> None:
    caps = StaticCaps(user_cycle_spend_usd=Decimal(100))
    found = user_cycle_cap(users(50, 150, 100, 101), caps, CRITICAL, NOVEMBER, UTC_TZ)
    assert [f.subject for f in found] == ["user1@x.com", "user3@x.com"]


def test_user_cycle_cap_finding() -> None:
    caps = StaticCaps(user_cycle_spend_usd=Decimal(1000))
    la = ZoneInfo("America/Los_Angeles")
    [found] = user_cycle_cap([spent("1234.567")], caps, CRITICAL, NOVEMBER, la)
    assert found == Finding(
        detector="user_cycle_cap",
        subject="alice@x.com",
        metric="cycle_spend",
        unit="usd",
        value=Decimal("1234.57"),  # cents, half up
        threshold=Decimal("1000.00"),
        baseline=Decimal("0.00"),
        window_start=datetime(2026, 11, 1, 7, tzinfo=UTC),  # PDT midnight
        window_end=datetime(2026, 12, 1, 8, tzinfo=UTC),  # PST midnight
        window_key="2026-11-01",
        model=OPUS,
        message="Alice: spent $1,235 this cycle, over the cap of $1,000",
        severity="warning",
        evidence_first_at=None,  # the service finds the crossing event
    )
    assert found.fingerprint == "alice@x.com:user_cycle_cap:2026-11-01"


# --- team budget -------------------------------------------------------------------------------

BUDGET = StaticCaps(team_cycle_budget_usd=Decimal(1000))


def test_team_budget_is_off_at_zero() -> None:
    assert team_budget(Decimal(10**6), StaticCaps(), NOVEMBER, UTC_TZ) is None


def test_team_budget_below_100_percent_is_quiet() -> None:
    assert team_budget(Decimal("999.99"), BUDGET, NOVEMBER, UTC_TZ) is None


def test_team_budget_at_exactly_100_percent_warns() -> None:
    found = team_budget(Decimal("1000.00"), BUDGET, NOVEMBER, UTC_TZ)
    assert found == Finding(
        detector="team_budget",
        subject="team",
        metric="cycle_spend",
        unit="usd",
        value=Decimal("1000.00"),
        threshold=Decimal("1000.00"),
        baseline=None,
        window_start=datetime(2026, 11, 1, tzinfo=UTC),
        window_end=datetime(2026, 12, 1, tzinfo=UTC),
        window_key="2026-11-01",
        model=None,
        message="Team spend $1,000 has reached the $1,000 budget for this cycle (100%)",
        severity="warning",
        evidence_first_at=None,
    )
    assert found.fingerprint == "team:team_budget:2026-11-01"


def test_team_budget_critical_at_exactly_110_percent() -> None:
    # 1.10 x $1,000 = $1,100
    below = team_budget(Decimal("1099.99"), BUDGET, NOVEMBER, UTC_TZ)
    at = team_budget(Decimal("1100.00"), BUDGET, NOVEMBER, UTC_TZ)
    assert below is not None
    assert at is not None
    assert (below.severity, at.severity) == ("warning", "critical")
    assert at.message == "Team spend $1,100 has reached the $1,000 budget for this cycle (110%)"


def test_team_budget_critical_ratio_is_configurable() -> None:
    caps = StaticCaps(team_cycle_budget_usd=Decimal(1000), team_budget_critical_ratio=Decimal(2))
    # critical at 2 x $1,000 = $2,000; 150 % is still a warning
    half_over = team_budget(Decimal(1500), caps, NOVEMBER, UTC_TZ)
    double = team_budget(Decimal(2000), caps, NOVEMBER, UTC_TZ)
    assert half_over is not None
    assert double is not None
    assert (half_over.severity, double.severity) == ("warning", "critical")
    assert half_over.message.endswith("(150%)")


# --- cycle outlier -----------------------------------------------------------------------------


def test_cycle_outlier_fires_only_above_ten_medians() -> None:
    # active users $10 x 4 and the candidate: median $10, threshold 10 x $10 = $100
    assert (
        cycle_outlier(users(10, 10, 10, 10, 100), CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ) == []
    )
    [found] = cycle_outlier(
        users(10, 10, 10, 10, "100.01"), CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ
    )
    assert (found.subject, found.baseline, found.threshold) == (
        "user4@x.com",
        Decimal("10.00"),
        Decimal("100.00"),
    )
    assert found.severity == "warning"


def test_cycle_outlier_needs_five_active_users() -> None:
    # four active users (the $0 ones do not count), however far out the fourth is
    spends = users(0, 0, 0, 10, 10, 10, 5000)
    assert cycle_outlier(spends, CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ) == []
    assert len(cycle_outlier([*spends, spent(10)], CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ)) == 1


def test_cycle_outlier_needs_a_ten_dollar_median() -> None:
    # median $9.99 < $10: nothing, even at 1,000 x the median
    low = users("9.99", "9.99", "9.99", "9.99", 9990)
    assert cycle_outlier(low, CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ) == []
    # median exactly $10 is enough
    at = users(10, 10, 10, 10, 9990)
    assert len(cycle_outlier(at, CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ)) == 1


def test_cycle_outlier_multiplier_zero_disables() -> None:
    spends = users(10, 10, 10, 10, 10**6)
    assert (
        cycle_outlier(spends, CycleOutlier(multiplier=Decimal(0)), CRITICAL, NOVEMBER, UTC_TZ) == []
    )


def test_cycle_outlier_all_equal_finds_nothing() -> None:
    # median $50 = everyone's spend; nobody is above $500
    assert cycle_outlier(users(*[50] * 8), CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ) == []


def test_cycle_outlier_warning_then_critical() -> None:
    # median $10, threshold $100: critical when spend - 10 > 3 x (100 - 10) = 270, i.e. > $280
    warn = cycle_outlier(users(10, 10, 10, 10, 280), CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ)
    crit = cycle_outlier(
        users(10, 10, 10, 10, "280.01"), CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ
    )
    assert [f.severity for f in warn + crit] == ["warning", "critical"]


def test_cycle_outlier_even_count_median_and_exact_message() -> None:
    # active: 10, 20, 30, 40, 50, 1000 -> median (30 + 40) / 2 = $35, threshold $350;
    # 1000 / 35 = 28.57 -> "28.6x"; critical: 1000 - 35 = 965 > 3 x (350 - 35) = 945
    spends = [*users(10, 20, 30, 40, 50), spent(1000, "eve.jones@x.com")]
    [found] = cycle_outlier(spends, CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ)
    assert (found.baseline, found.threshold, found.value) == (
        Decimal("35.00"),
        Decimal("350.00"),
        Decimal("1000.00"),
    )
    assert found.severity == "critical"
    assert found.model == OPUS
    assert found.message == (
        f"Eve Jones: cycle spend $1,000 is 28.6x the team median of $35 — mostly {OPUS}"
    )
    assert found.fingerprint == "eve.jones@x.com:cycle_outlier:2026-11-01"
    assert found.window_key == "2026-11-01"


def test_cycle_outlier_message_without_a_model() -> None:
    # median $10, 101 / 10 = 10.1x
    [found] = cycle_outlier(users(10, 10, 10, 10, 101), CycleOutlier(), CRITICAL, NOVEMBER, UTC_TZ)
    assert found.message == "User4: cycle spend $101 is 10.1x the team median of $10"
    assert found.model is None


# --- plan exhaustion ---------------------------------------------------------------------------


def test_plan_exhaustion_is_info_with_the_day_number() -> None:
    alice = spent(
        900,
        on_demand="56.40",
        on_demand_requests=1234,
        first_on_demand_day=date(2026, 11, 5),
        name="Alice S.",
    )
    [found] = plan_exhaustion([alice], NOVEMBER, UTC_TZ)
    assert found == Finding(
        detector="plan_exhaustion",
        subject="alice@x.com",
        metric="on_demand_spend",
        unit="usd",
        value=Decimal("56.40"),
        threshold=Decimal("0.00"),
        baseline=None,
        window_start=datetime(2026, 11, 1, tzinfo=UTC),
        window_end=datetime(2026, 12, 1, tzinfo=UTC),
        window_key="2026-11-01",
        model=OPUS,
        # Nov 1 is day 1, so Nov 5 is day 5
        message=(
            "Alice S.: went past the included plan on day 5 of the cycle (Nov 5); "
            "1,234 requests and $56 billed on demand since"
        ),
        severity="info",
        evidence_first_at=None,
    )
    assert found.fingerprint == "alice@x.com:plan_exhaustion:2026-11-01"


def test_plan_exhaustion_day_number_in_a_clipped_cycle() -> None:
    # anchor 31 in February: the cycle Jan 31 -> Feb 28, so Feb 2 is day 3
    cycle = cycle_containing(date(2026, 2, 10), date(2026, 1, 31))
    bob = spent(
        80,
        "bob@x.com",
        on_demand="4.75",
        on_demand_requests=12,
        first_on_demand_day=date(2026, 2, 2),
    )
    [found] = plan_exhaustion([bob], cycle, UTC_TZ)
    assert found.message == (
        "Bob: went past the included plan on day 3 of the cycle (Feb 2); "
        "12 requests and $4.75 billed on demand since"
    )
    assert found.window_key == "2026-01-31"


def test_plan_exhaustion_skips_users_still_within_the_plan() -> None:
    spends = [
        spent(100, "a@x.com"),  # no on-demand requests
        spent(100, "b@x.com", on_demand_requests=3),  # no first day known
        spent(100, "c@x.com", first_on_demand_day=date(2026, 11, 3)),  # no requests
        spent(100, "d@x.com", on_demand_requests=1, first_on_demand_day=date(2026, 11, 3)),
    ]
    assert [f.subject for f in plan_exhaustion(spends, NOVEMBER, UTC_TZ)] == ["d@x.com"]


# --- team cost per request ---------------------------------------------------------------------


def test_team_cost_per_request_is_the_median_of_users_own_rates() -> None:
    # rates 10/100 = 0.10, 30/100 = 0.30, 60/100 = 0.60 (c has no requests) -> median 0.30
    three = [
        ("a", Decimal(10), 100),
        ("b", Decimal(30), 100),
        ("c", Decimal(5), 0),
        ("d", Decimal(60), 100),
    ]
    assert team_cost_per_request(three) == Decimal("0.30")
    # a fourth rate 100/100 = 1.00 -> median (0.30 + 0.60) / 2 = 0.45
    assert team_cost_per_request([*three, ("e", Decimal(100), 100)]) == Decimal("0.45")


def test_team_cost_per_request_weights_users_not_requests() -> None:
    # pooled it would be (1 + 90) / (10 + 100) = 0.83; per user: 0.10 and 0.90 -> 0.50
    assert team_cost_per_request([("a", Decimal(1), 10), ("b", Decimal(90), 100)]) == Decimal("0.5")


def test_team_cost_per_request_without_requests_is_none() -> None:
    assert team_cost_per_request([]) is None
    assert team_cost_per_request([("a", Decimal(5), 0)]) is None


# --- expensive model ---------------------------------------------------------------------------

MEDIAN = Decimal("0.40")  # team median $/request -> threshold 5 x 0.40 = $2.00
FIRST = datetime(2026, 11, 21, 9, 15, tzinfo=UTC)


def on_model(
    spend: str | int,
    requests: int = 40,
    *,
    email: str = "bob@x.com",
    model: str = OPUS,
    on: date = date(2026, 11, 21),
) -> ModelDay:
    return ModelDay(
        user_email=email,
        day=on,
        model=model,
        spend=Decimal(spend),
        requests=requests,
        first_event_at=FIRST,
    )


def expensive(
    days: list[ModelDay],
    median: Decimal | None = MEDIAN,
    team_model: str | None = SONNET,
    s: ExpensiveModel | None = None,
    **kwargs: set[str],
) -> list[Finding]:
    settings = s or ExpensiveModel()
    return expensive_model(days, median, team_model, settings, CRITICAL, NOVEMBER, UTC_TZ, **kwargs)


def test_expensive_model_fires_only_above_five_team_medians() -> None:
    # $80 / 40 = $2.00 = the threshold; $80.40 / 40 = $2.01
    assert expensive([on_model(80)]) == []
    [found] = expensive([on_model("80.40")])
    assert (found.value, found.threshold, found.baseline) == (
        Decimal("2.01"),
        Decimal("2.00"),
        Decimal("0.40"),
    )


def test_expensive_model_finding_keys_the_model_and_cycle() -> None:
    # $208 / 40 = $5.20: critical when 5.20 - 0.40 > 3 x (2.00 - 0.40) = 4.80 -> not yet
    [found] = expensive([on_model(208)])
    assert found == Finding(
        detector="expensive_model",
        subject="bob@x.com",
        metric="cost_per_request",
        unit="usd_per_request",
        value=Decimal("5.20"),
        threshold=Decimal("2.00"),
        baseline=Decimal("0.40"),
        window_start=datetime(2026, 11, 1, tzinfo=UTC),
        window_end=datetime(2026, 12, 1, tzinfo=UTC),
        window_key=f"2026-11-01/{OPUS}",
        model=OPUS,
        message=(
            f"Bob: averaged $5.20/req on {OPUS} today over 40 requests "
            f"(team median $0.40/req across models; most of the team uses {SONNET})"
        ),
        severity="warning",
        evidence_first_at=FIRST,
    )
    assert found.fingerprint == f"bob@x.com:expensive_model:2026-11-01/{OPUS}"
    assert parse_fingerprint(found.fingerprint) == (
        "bob@x.com",
        "expensive_model",
        f"2026-11-01/{OPUS}",
    )


def test_expensive_model_critical() -> None:
    # $208.40 / 40 = $5.21 > 0.40 + 4.80
    [found] = expensive([on_model("208.40")])
    assert found.severity == "critical"


def test_expensive_model_message_without_a_team_model() -> None:
    [found] = expensive([on_model(208, 40)], team_model=None)
    assert found.message.endswith("over 40 requests (team median $0.40/req across models)")


def test_expensive_model_request_and_spend_floors() -> None:
    s = ExpensiveModel()
    # 19 requests at $3 = $57 (rate far above): too few requests; 20 are enough
    assert expensive([on_model(57, 19)], s=s) == []
    assert len(expensive([on_model(60, 20)], s=s)) == 1
    # median $0.10 -> threshold $0.50: $19.99 / 20 = $1.00 is above, but under the $20 floor
    assert expensive([on_model("19.99", 20)], Decimal("0.10"), s=s) == []
    assert len(expensive([on_model(20, 20)], Decimal("0.10"), s=s)) == 1


def test_expensive_model_without_a_team_median_or_multiplier_finds_nothing() -> None:
    huge = [on_model(10_000)]
    assert expensive(huge, None) == []
    assert expensive(huge, Decimal(0)) == []  # every user's rate was $0
    assert expensive(huge, s=ExpensiveModel(multiplier=Decimal(0))) == []


def test_expensive_model_only_reports_candidates() -> None:
    days = [on_model(208, email="bob@x.com"), on_model(208, email="carol@x.com")]
    assert [f.subject for f in expensive(days, candidates={"carol@x.com"})] == ["carol@x.com"]
    assert expensive(days, candidates=set()) == []
    assert len(expensive(days)) == 2  # no filter: everyone


def test_expensive_model_one_fingerprint_per_user_model_and_cycle() -> None:
    days = [
        on_model(208),
        on_model(208, on=date(2026, 11, 22)),  # same cycle, next day: same incident
        on_model(208, model=SONNET),  # another model: another incident
        on_model(208, email="carol@x.com"),  # another user: another incident
    ]
    prints = [f.fingerprint for f in expensive(days)]
    assert len(prints) == 4
    assert len(set(prints)) == 3
    assert prints[0] == prints[1]


def test_expensive_model_fingerprint_parses_back_with_a_colon_in_the_model() -> None:
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    [found] = expensive([on_model(208, model=model)])
    assert parse_fingerprint(found.fingerprint) == (
        "bob@x.com",
        "expensive_model",
        f"2026-11-01/{model}",
    )
