"""Day rules beyond the basics: spike warm-up and long lookback, z-score against the user's own
average, cost per request, seasonal baselines, the token cap.

Every expected number is worked out by hand from the spec in the comment next to it.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from spendwatch.common.thresholds import (
    CostPerRequest,
    Seasonal,
    SpendSpike,
    StaticCaps,
    ZScore,
)
from spendwatch.detector.findings import Finding
from spendwatch.detector.rules import (
    ModelDay,
    UserDay,
    cost_per_request,
    daily_caps,
    seasonal,
    spend_spike,
    usual_working_day,
    zscore,
)
from tests.unit.detector.test_rules import TODAY, ago, day, spike, team

UTC_TZ = ZoneInfo("UTC")
CRITICAL = Decimal(3)
OPUS = "claude-4.6-opus-max"
SIGMA = "\N{GREEK SMALL LETTER SIGMA}"

# --- spend spike: warm-up ----------------------------------------------------------------------

NO_LONG = SpendSpike(long_lookback_days=0)  # the default 7-day warm-up, the 7-day lookback only


def test_spike_needs_seven_days_of_history() -> None:
    # first usage 6 days ago: still warming up, whatever today's spend
    assert spend_spike(day(5000), [day(7, on=ago(6))], NO_LONG, CRITICAL, UTC_TZ) is None
    # 7 days ago: warm; baseline $7 / 7 = $1, threshold 5 x $1 = $5
    found = spend_spike(day(60), [day(7, on=ago(7))], NO_LONG, CRITICAL, UTC_TZ)
    assert found is not None
    assert (found.baseline, found.threshold) == (Decimal("1.00"), Decimal("5.00"))


def test_spike_without_history_waits_for_the_warm_up() -> None:
    assert spend_spike(day(5000), [], SpendSpike(), CRITICAL, UTC_TZ) is None


def test_spike_warm_up_looks_at_this_user_only() -> None:
    others = [day(100, on=ago(30), email="bob@x.com"), day(100, on=ago(1), email="bob@x.com")]
    assert spend_spike(day(5000), others, SpendSpike(), CRITICAL, UTC_TZ) is None


def test_spike_warm_up_is_off_at_zero() -> None:
    # a first day yesterday: $7 / 7 = $1, threshold $5
    found = spend_spike(day(60), [day(7, on=ago(1))], spike(), CRITICAL, UTC_TZ)
    assert found is not None


def test_spike_after_a_long_silence_uses_the_floor() -> None:
    # warm (first usage 40 days ago), but nothing in 28 days: baseline $0, floor $1 -> $5
    found = spend_spike(day(60), [day(1, on=ago(40))], SpendSpike(), CRITICAL, UTC_TZ)
    assert found is not None
    assert (found.baseline, found.threshold) == (Decimal("0.00"), Decimal("5.00"))
    assert found.message == "Alice: daily spend spiked to $60 (no spend in the previous 7 days)"


# --- spend spike: the long lookback ------------------------------------------------------------

# $20 a day from 28 to 8 days ago (21 days), then a week off: the 7-day average is $0, the
# 28-day one 21 x 20 / 28 = $15, so the threshold is 5 x $15 = $75
VACATION = [day(20, on=ago(n)) for n in range(8, 29)]


def test_the_first_day_after_a_vacation_is_not_a_spike() -> None:
    assert spend_spike(day(75), VACATION, SpendSpike(), CRITICAL, UTC_TZ) is None
    # with the 7-day average only, the same day would be a spike (floor $1 -> $5)
    assert spend_spike(day(75), VACATION, NO_LONG, CRITICAL, UTC_TZ) is not None


def test_the_long_lookback_baseline_and_message() -> None:
    found = spend_spike(day("75.01"), VACATION, SpendSpike(), CRITICAL, UTC_TZ)
    assert found is not None
    assert (found.baseline, found.threshold) == (Decimal("15.00"), Decimal("75.00"))
    # $90 / $15 = 6.0x, named as the 28-day average
    found = spend_spike(day(90), VACATION, SpendSpike(), CRITICAL, UTC_TZ)
    assert found is not None
    assert found.message == "Alice: daily spend spiked to $90 (6.0x their 28-day avg of $15)"


def test_the_long_lookback_severity() -> None:
    # baseline $15, threshold $75: critical when spend - 15 > 3 x 60 = 180, i.e. above $195
    warn = spend_spike(day(195), VACATION, SpendSpike(), CRITICAL, UTC_TZ)
    crit = spend_spike(day("195.01"), VACATION, SpendSpike(), CRITICAL, UTC_TZ)
    assert warn is not None
    assert crit is not None
    assert (warn.severity, crit.severity) == ("warning", "critical")


def test_the_higher_average_wins() -> None:
    # $20 on each of the last 7 days: 7-day $20, 28-day 140 / 28 = $5 -> the 7-day one
    week = [day(20, on=ago(n)) for n in range(1, 8)]
    found = spend_spike(day(120), week, SpendSpike(), CRITICAL, UTC_TZ)
    assert found is not None
    assert (found.baseline, found.threshold) == (Decimal("20.00"), Decimal("100.00"))
    assert found.message == "Alice: daily spend spiked to $120 (6.0x their 7-day avg of $20)"


def test_the_long_lookback_includes_its_first_day() -> None:
    warm = day(1, on=ago(40))
    # $560 28 days ago: 560 / 28 = $20 -> threshold $100
    assert (
        spend_spike(day(100), [warm, day(560, on=ago(28))], SpendSpike(), CRITICAL, UTC_TZ) is None
    )
    # 29 days ago it is outside both lookbacks: floor $1 -> threshold $5
    assert (
        spend_spike(day(100), [warm, day(560, on=ago(29))], SpendSpike(), CRITICAL, UTC_TZ)
        is not None
    )


def test_a_long_lookback_not_longer_than_the_lookback_is_ignored() -> None:
    # $35 yesterday: 7-day $5 (shown "$5.00", under $10); a "long" 5-day one would be $7, but 5 <= 7
    found = spend_spike(
        day(50), [day(35, on=ago(1))], spike(long_lookback_days=5), CRITICAL, UTC_TZ
    )
    assert found is not None
    assert found.message == "Alice: daily spend spiked to $50 (10.0x their 7-day avg of $5.00)"


# --- own average -------------------------------------------------------------------------------


def test_usual_working_day() -> None:
    today = day(60)
    assert usual_working_day(today, [], 28) is None
    assert usual_working_day(today, [day(70, on=ago(3), email="bob@x.com")], 28) is None
    # only days before the window: nothing known
    assert usual_working_day(today, [day(70, on=ago(29))], 28) is None
    # ($70 + $30) / 2 active days = $50; $0 days, today and later days do not count
    history = [
        day(70, on=ago(3)),
        day(30, on=ago(28)),
        day(0, on=ago(2)),
        day(999, on=TODAY),
        day(999, on=ago(-1)),
    ]
    assert usual_working_day(today, history, 28) == Decimal(50)


# --- z-score against the user's own average ----------------------------------------------------

# 8 users at $10 and one at $600: mean 680 / 9 = $75.56; one outlier among n equal users has
# sample sigma (600 - 10) / sqrt(9) = $196.67, so the threshold is 75.56 + 2.5 x 196.67 = $567.22
# and z = (600 - 75.56) / 196.67 = 8/3 = 2.7
NINE = team(*[10] * 8, 600)
OUTLIER = "user8@x.com"


def test_zscore_threshold_by_hand() -> None:
    [found] = zscore(NINE, ZScore(), CRITICAL, UTC_TZ)
    assert (found.subject, found.baseline, found.threshold) == (
        OUTLIER,
        Decimal("75.56"),
        Decimal("567.22"),
    )
    assert found.severity == "warning"  # 600 - 75.56 < 3 x 491.67
    assert found.message == f"User8: daily spend $600 is 2.7{SIGMA} above the team mean of $76"


def test_zscore_needs_min_own_ratio_times_the_users_usual_day() -> None:
    # 2 x $300 = $600: at the ratio still fires; 2 x $300.01 = $600.02 does not
    assert len(zscore(NINE, ZScore(), CRITICAL, UTC_TZ, own_averages={OUTLIER: Decimal(300)})) == 1
    steady = {OUTLIER: Decimal("300.01")}
    assert zscore(NINE, ZScore(), CRITICAL, UTC_TZ, own_averages=steady) == []


def test_zscore_own_ratio_unknown_zero_or_off() -> None:
    # given own averages, someone without one is not judged yet
    assert zscore(NINE, ZScore(), CRITICAL, UTC_TZ, own_averages={OUTLIER: None}) == []
    assert zscore(NINE, ZScore(), CRITICAL, UTC_TZ, own_averages={}) == []
    # without own averages at all, the team test alone decides
    assert len(zscore(NINE, ZScore(), CRITICAL, UTC_TZ)) == 1
    # a usual day of $0: any spend is 2 x of it
    assert len(zscore(NINE, ZScore(), CRITICAL, UTC_TZ, own_averages={OUTLIER: Decimal(0)})) == 1
    # min_own_ratio 0 turns the own-history test off
    off = ZScore(min_own_ratio=Decimal(0))
    assert len(zscore(NINE, off, CRITICAL, UTC_TZ, own_averages={OUTLIER: Decimal(10**6)})) == 1


def test_zscore_reports_only_candidates() -> None:
    assert zscore(NINE, ZScore(), CRITICAL, UTC_TZ, candidates={"user0@x.com"}) == []
    [found] = zscore(NINE, ZScore(), CRITICAL, UTC_TZ, candidates={OUTLIER})
    assert found.subject == OUTLIER


def test_zscore_floor_is_inclusive() -> None:
    # 20 users at $1 and one more: z = 20 / sqrt(21) = 4.4 whatever its spend
    assert zscore(team(*[1] * 20, "49.99"), ZScore(), CRITICAL, UTC_TZ) == []
    [found] = zscore(team(*[1] * 20, 50), ZScore(), CRITICAL, UTC_TZ)
    assert found.value == Decimal("50.00")


# --- cost per request --------------------------------------------------------------------------


def cday(spend: str | int, requests: int, *, on: int = 0, model: str | None = OPUS) -> UserDay:
    """Alice's day `on` days ago with that many requests."""
    return dataclasses.replace(day(spend, on=ago(on), model=model), requests=requests)


USUAL = [cday(25, 100, on=5)]  # $0.25 a request -> threshold 3 x 0.25 = $0.75


def cpr(
    today: UserDay,
    history: list[UserDay] = USUAL,
    models: list[ModelDay] | None = None,
    s: CostPerRequest | None = None,
) -> Finding | None:
    return cost_per_request(today, history, models or [], s or CostPerRequest(), CRITICAL, UTC_TZ)


def test_cost_per_request_fires_only_above_three_times_the_usual() -> None:
    assert cpr(cday(30, 40)) is None  # $30 / 40 = $0.75
    found = cpr(cday("30.04", 40))  # $0.751
    assert found is not None
    assert (found.metric, found.unit) == ("cost_per_request", "usd_per_request")
    assert (found.threshold, found.baseline) == (Decimal("0.75"), Decimal("0.25"))
    assert found.severity == "warning"


def test_cost_per_request_today_floors_are_inclusive() -> None:
    assert cpr(cday("19.99", 10)) is None  # $2.00 a request, but under $20
    assert cpr(cday(20, 9)) is None  # $2.22 a request, but only 9 requests
    found = cpr(cday(20, 10))  # $2.00 a request, $20, 10 requests
    assert found is not None
    assert found.value == Decimal("2.00")


def test_cost_per_request_needs_fifty_requests_of_history() -> None:
    # $12.25 / 49 = $0.25 a request, but 49 < 50; $12.50 / 50 is enough
    assert cpr(cday(20, 10), [cday("12.25", 49, on=5)]) is None
    assert cpr(cday(20, 10), [cday("12.50", 50, on=5)]) is not None


def test_cost_per_request_no_history_other_users_and_the_lookback() -> None:
    assert cpr(cday(20, 10), []) is None
    bob = dataclasses.replace(cday(25, 100, on=5), user_email="bob@x.com")
    assert cpr(cday(20, 10), [bob]) is None
    # 30 days back is inside the lookback, 31 is not; today is not history
    assert cpr(cday(20, 10), [cday(25, 100, on=30)]) is not None
    assert cpr(cday(20, 10), [cday(25, 100, on=31)]) is None
    assert cpr(cday(20, 10), [cday(25, 100, on=0)]) is None


def test_cost_per_request_free_history_is_no_baseline() -> None:
    assert cpr(cday(20, 10), [cday(0, 100, on=5)]) is None


def test_cost_per_request_multiplier_zero_disables() -> None:
    assert cpr(cday(500, 10), s=CostPerRequest(multiplier=Decimal(0))) is None


def test_cost_per_request_history_is_weighted_by_requests() -> None:
    # $1 over 100 requests and $49 over 50: (1 + 49) / 150 = $0.3333 a request, not the mean
    # of the days' rates (0.01 + 0.98) / 2 = $0.495
    found = cpr(cday(20, 10), [cday(1, 100, on=3), cday(49, 50, on=4)])
    assert found is not None
    assert found.baseline == Decimal("0.33")  # 50 / 150 = 0.333
    assert found.threshold == Decimal("1.00")  # 3 x 0.3333 = 1.00


def test_cost_per_request_warning_then_critical() -> None:
    # usual $0.25, threshold $0.75: critical when value - 0.25 > 3 x 0.50, i.e. above $1.75
    warn = cpr(cday(70, 40))  # $1.75
    crit = cpr(cday("70.04", 40))  # $1.751
    assert warn is not None
    assert crit is not None
    assert (warn.severity, crit.severity) == ("warning", "critical")


def model_day(
    model: str, spend: str | int, requests: int, *, email: str = "alice@x.com", on: int = 0
) -> ModelDay:
    return ModelDay(
        user_email=email, day=ago(on), model=model, spend=Decimal(spend), requests=requests
    )


def test_cost_per_request_names_the_model_with_the_largest_excess() -> None:
    # usual: $10 / 100 = $0.10 a request. Excess over that today:
    #   model-a $30 - 100 x 0.10 = $20 (the most spend)
    #   model-b $25 -  10 x 0.10 = $24 (the largest excess)
    #   model-c  $5 -   1 x 0.10 = $4.90 (the highest $/request)
    # today: $60 / 111 = $0.5405 > 3 x 0.10 -> "$0.54", 5.405 -> "5.4x"
    models = [
        model_day("model-a", 30, 100),
        model_day("model-b", 25, 10),
        model_day("model-c", 5, 1),
        model_day("model-d", 1000, 1, email="bob@x.com"),  # someone else
        model_day("model-e", 1000, 1, on=1),  # another day
    ]
    found = cpr(cday(60, 111), [cday(10, 100, on=1)], models)
    assert found == Finding(
        detector="cost_per_request",
        subject="alice@x.com",
        metric="cost_per_request",
        unit="usd_per_request",
        value=Decimal("0.54"),
        threshold=Decimal("0.30"),
        baseline=Decimal("0.10"),
        window_start=datetime(2026, 11, 21, tzinfo=UTC),
        window_end=datetime(2026, 11, 22, tzinfo=UTC),
        window_key="2026-11-21",
        model="model-b",
        message=(
            "Alice: $0.54 per request today, 5.4x their 30-day average of $0.10 — driven by model-b"
        ),
        severity="warning",  # critical only above 0.10 + 3 x 0.20 = $0.70
        evidence_first_at=datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
    )
    assert found.fingerprint == "alice@x.com:cost_per_request:2026-11-21"


def test_cost_per_request_without_model_rows_names_the_top_model() -> None:
    found = cpr(cday(20, 10))
    assert found is not None
    assert found.model == OPUS
    # $2.00 / $0.25 = 8.0x
    assert found.message == (
        f"Alice: $2.00 per request today, 8.0x their 30-day average of $0.25 — driven by {OPUS}"
    )
    bare = cpr(cday(20, 10, model=None))
    assert bare is not None
    assert bare.model is None
    assert bare.message == "Alice: $2.00 per request today, 8.0x their 30-day average of $0.25"


# --- seasonal ----------------------------------------------------------------------------------


def same_weekday(*spends: str | int) -> list[UserDay]:
    """Alice's spend 1, 2, 3... weeks before TODAY (a Saturday)."""
    return [day(s, on=ago(7 * w)) for w, s in enumerate(spends, start=1)]


# samples 10..24: median (16 + 18) / 2 = $17; |x - 17| = 7 5 3 1 1 3 5 7 -> MAD (3 + 5) / 2 = 4;
# with a 100 % increase floor: threshold max(17 + 4 x 1.4826 x 4, 2 x 17, 25) = $40.7216
RAMP = same_weekday(10, 12, 14, 16, 18, 20, 22, 24)
TWO_X = Seasonal(min_increase_pct=100)


def test_seasonal_default_increase_floor_is_200_percent() -> None:
    # default: threshold max(40.7216, (1 + 200 %) x 17 = 51, 25) = $51
    assert seasonal(day(51), RAMP, Seasonal(), CRITICAL, UTC_TZ) is None
    found = seasonal(day("51.01"), RAMP, Seasonal(), CRITICAL, UTC_TZ)
    assert found is not None
    assert found.threshold == Decimal("51.00")


def test_seasonal_fires_only_above_median_plus_k_mad() -> None:
    assert seasonal(day("40.72"), RAMP, TWO_X, CRITICAL, UTC_TZ) is None
    found = seasonal(day("40.73"), RAMP, TWO_X, CRITICAL, UTC_TZ)
    assert found == Finding(
        detector="seasonal",
        subject="alice@x.com",
        metric="daily_spend",
        unit="usd",
        value=Decimal("40.73"),
        threshold=Decimal("40.72"),
        baseline=Decimal("17.00"),
        window_start=datetime(2026, 11, 21, tzinfo=UTC),
        window_end=datetime(2026, 11, 22, tzinfo=UTC),
        window_key="2026-11-21",
        model=OPUS,
        message="Alice: spent $41 today, against their usual $17 on Saturdays (last 8)",
        severity="warning",
        evidence_first_at=datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
    )
    assert found.fingerprint == "alice@x.com:seasonal:2026-11-21"


def test_seasonal_warning_then_critical() -> None:
    # critical when spend - 17 > 3 x 23.7216 = 71.1648, i.e. above $88.1648
    warn = seasonal(day("88.16"), RAMP, TWO_X, CRITICAL, UTC_TZ)
    crit = seasonal(day("88.17"), RAMP, TWO_X, CRITICAL, UTC_TZ)
    assert warn is not None
    assert crit is not None
    assert (warn.severity, crit.severity) == ("warning", "critical")


def test_seasonal_ignores_other_weekdays_and_users() -> None:
    noise = [
        day(1000, on=ago(8)),
        day(1000, on=ago(13)),
        day(1000, on=ago(7), email="bob@x.com"),
    ]
    found = seasonal(day("40.73"), [*RAMP, *noise], TWO_X, CRITICAL, UTC_TZ)
    assert found is not None
    assert found.baseline == Decimal("17.00")


def test_seasonal_mad_zero_leaves_the_ratio() -> None:
    # eight $20 Saturdays: MAD 0, threshold max(20 + 0, 3 x 20, 25) = $60
    steady = same_weekday(*[20] * 8)
    assert seasonal(day(60), steady, Seasonal(), CRITICAL, UTC_TZ) is None
    found = seasonal(day("60.01"), steady, Seasonal(), CRITICAL, UTC_TZ)
    assert found is not None
    assert (found.baseline, found.threshold) == (Decimal("20.00"), Decimal("60.00"))


def test_seasonal_spend_floor() -> None:
    # eight $5 Saturdays: threshold max(5, 10, 25) = $25
    small = same_weekday(*[5] * 8)
    assert seasonal(day("24.99"), small, Seasonal(), CRITICAL, UTC_TZ) is None
    assert seasonal(day(25), small, Seasonal(), CRITICAL, UTC_TZ) is None
    found = seasonal(day("25.01"), small, Seasonal(), CRITICAL, UTC_TZ)
    assert found is not None
    assert found.threshold == Decimal("25.00")


# $1 on the Wednesday of weeks 5-8 back: present those weeks, no Saturday spend
WORKED_WEEKDAYS = [day(1, on=ago(7 * w + 3)) for w in range(5, 9)]


def test_seasonal_a_saturday_off_in_a_working_week_is_zero() -> None:
    # $100 on the last 4 Saturdays, $0 on the 4 before (weeks worked): samples 100 x 4, 0 x 4 ->
    # median (0 + 100) / 2 = $50, every |x - 50| = 50 -> MAD $50,
    # threshold max(50 + 4 x 1.4826 x 50, 3 x 50, 25) = 50 + 296.52 = $346.52
    four = [*same_weekday(100, 100, 100, 100), *WORKED_WEEKDAYS]
    assert seasonal(day("346.52"), four, Seasonal(), CRITICAL, UTC_TZ) is None
    found = seasonal(day("346.53"), four, Seasonal(), CRITICAL, UTC_TZ)
    assert found is not None
    assert (found.baseline, found.threshold) == (Decimal("50.00"), Decimal("346.52"))


def test_seasonal_weeks_away_are_not_samples() -> None:
    # the same, but nothing in weeks 5-7 (away): only week 8 counts, where the first usage was
    # ($1 on its Friday): samples 100 x 4 and 0 -> median $100, MAD 0,
    # threshold max(100, 3 x 100, 25) = $300 (with the away weeks as $0 it would be $346.52)
    four = [*same_weekday(100, 100, 100, 100), day(1, on=ago(57))]
    assert seasonal(day(300), four, Seasonal(), CRITICAL, UTC_TZ) is None
    found = seasonal(day("300.01"), four, Seasonal(), CRITICAL, UTC_TZ)
    assert found is not None
    assert found.message.endswith("against their usual $100 on Saturdays (last 5)")


def test_seasonal_weeks_before_the_first_usage_are_not_samples() -> None:
    # first usage 28 days ago: samples 100 x 4 only -> median $100, MAD 0,
    # threshold max(100 + 0, 2 x 100, 25) = $200 (a 100 % floor)
    four = same_weekday(100, 100, 100, 100)
    assert seasonal(day(200), four, TWO_X, CRITICAL, UTC_TZ) is None
    found = seasonal(day("200.01"), four, TWO_X, CRITICAL, UTC_TZ)
    assert found is not None
    assert (found.baseline, found.threshold) == (Decimal("100.00"), Decimal("200.00"))
    assert found.message.endswith("against their usual $100 on Saturdays (last 4)")


def test_seasonal_needs_21_days_of_history() -> None:
    assert seasonal(day(500), [], Seasonal(), CRITICAL, UTC_TZ) is None
    assert seasonal(day(500), [day(5, on=ago(20))], Seasonal(), CRITICAL, UTC_TZ) is None
    # first usage 22 days ago (a Friday): only the Saturday 21 days ago falls in a week with
    # spend, $0 -> threshold $25
    found = seasonal(day(30), [day(5, on=ago(22))], Seasonal(), CRITICAL, UTC_TZ)
    assert found is not None
    assert (
        found.message == "Alice: spent $30 today, against their usual $0.00 on Saturdays (last 1)"
    )
    assert seasonal(day(30), [day(5, on=ago(21))], Seasonal(), CRITICAL, UTC_TZ) is not None


def test_seasonal_k_zero_disables() -> None:
    assert seasonal(day(5000), RAMP, Seasonal(k=Decimal(0)), CRITICAL, UTC_TZ) is None


def test_seasonal_weeks_setting() -> None:
    # two weeks: samples 10 and 30 -> median $20, MAD $10,
    # threshold max(20 + 4 x 1.4826 x 10, 40, 25) = $79.304; the $1,000 three weeks ago is out
    history = same_weekday(10, 30, 1000)
    assert seasonal(day("79.30"), history, Seasonal(weeks=2), CRITICAL, UTC_TZ) is None
    assert seasonal(day("79.31"), history, Seasonal(weeks=2), CRITICAL, UTC_TZ) is not None


def test_seasonal_three_usual_saturdays_are_a_baseline_not_nothing() -> None:
    # first usage 21 days ago: samples 100, 100, 100 -> median $100, threshold 3 x 100 = $300
    assert seasonal(day(300), same_weekday(100, 100, 100), Seasonal(), CRITICAL, UTC_TZ) is None
    found = seasonal(day(301), same_weekday(100, 100, 100), Seasonal(), CRITICAL, UTC_TZ)
    assert found is not None
    assert (
        found.message == "Alice: spent $301 today, against their usual $100 on Saturdays (last 3)"
    )


# --- token cap ---------------------------------------------------------------------------------


def test_token_cap_at_over_and_critical() -> None:
    caps = StaticCaps(user_daily_tokens=1_000_000)
    at_cap = dataclasses.replace(day(10), tokens=1_000_000)
    assert daily_caps(at_cap, caps, CRITICAL, UTC_TZ) == []
    [over] = daily_caps(dataclasses.replace(at_cap, tokens=2_500_000), caps, CRITICAL, UTC_TZ)
    assert (over.detector, over.metric, over.unit) == ("tokens_cap", "daily_tokens", "tokens")
    assert (over.value, over.threshold, over.baseline) == (
        Decimal(2_500_000),
        Decimal(1_000_000),
        Decimal("0.00"),
    )
    assert over.message == "Alice: 2,500,000 tokens today, over the cap of 1,000,000"
    assert over.severity == "warning"
    # critical above 3 x the cap
    [at_three] = daily_caps(dataclasses.replace(at_cap, tokens=3_000_000), caps, CRITICAL, UTC_TZ)
    [crit] = daily_caps(dataclasses.replace(at_cap, tokens=3_000_001), caps, CRITICAL, UTC_TZ)
    assert (at_three.severity, crit.severity) == ("warning", "critical")
