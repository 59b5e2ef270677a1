"""Detection rules: spend spike and z-score arithmetic, severities, windows, messages."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from spendwatch.common.thresholds import SpendSpike, ZScore
from spendwatch.detector.findings import Finding, day_window, severity
from spendwatch.detector.rules import UserDay, spend_spike, zscore

TODAY = date(2026, 11, 21)
UTC_TZ = ZoneInfo("UTC")
CRITICAL = Decimal(3)
SIGMA = "\N{GREEK SMALL LETTER SIGMA}"


def day(
    spend: str | int,
    *,
    on: date = TODAY,
    email: str = "alice@x.com",
    model: str | None = "claude-4.6-opus-max",
    name: str | None = None,
) -> UserDay:
    return UserDay(
        user_email=email,
        day=on,
        spend=Decimal(spend),
        requests=10,
        first_event_at=datetime(on.year, on.month, on.day, 8, 30, tzinfo=UTC),
        top_model=model,
        name=name,
    )


def spike(**overrides: object) -> SpendSpike:
    """The spike settings without the warm-up and the long lookback (tested on their own)."""
    return SpendSpike.model_validate({"warmup_days": 0, "long_lookback_days": 0, **overrides})


def ago(n: int) -> date:
    return TODAY - timedelta(days=n)


# --- spend spike -------------------------------------------------------------------------------

ONE_70_DAY = [day(70, on=ago(3))]  # $70 over 7 days -> baseline $10 -> threshold $50 at 5x


def test_missing_days_count_as_zero() -> None:
    found = spend_spike(day("60"), ONE_70_DAY, spike(), CRITICAL, UTC_TZ)
    assert found is not None
    assert found.baseline == Decimal("10.00")
    assert found.threshold == Decimal("50.00")
    assert found.value == Decimal("60.00")


def test_spike_fires_only_above_the_threshold() -> None:
    settings = spike(min_daily_spend_usd=Decimal(0))
    assert spend_spike(day("50.00"), ONE_70_DAY, settings, CRITICAL, UTC_TZ) is None
    found = spend_spike(day("50.01"), ONE_70_DAY, settings, CRITICAL, UTC_TZ)
    assert found is not None
    assert found.severity == "warning"


def test_spike_ignores_today_the_future_other_users_and_days_before_the_lookback() -> None:
    history = [
        *ONE_70_DAY,
        day(1000, on=TODAY),
        day(1000, on=ago(-1)),
        day(1000, on=ago(8)),
        day(1000, on=ago(1), email="bob@x.com"),
    ]
    found = spend_spike(day("60"), history, spike(), CRITICAL, UTC_TZ)
    assert found is not None
    assert found.baseline == Decimal("10.00")


def test_the_lookback_includes_its_first_day() -> None:
    found = spend_spike(day("60"), [day(70, on=ago(7))], spike(), CRITICAL, UTC_TZ)
    assert found is not None
    assert found.baseline == Decimal("10.00")


def test_no_history_uses_the_floor_and_says_so() -> None:
    found = spend_spike(day("60"), [], spike(), CRITICAL, UTC_TZ)
    assert found is not None
    assert found.baseline == Decimal("0.00")  # the true baseline is reported
    assert found.threshold == Decimal("5.00")  # $1 floor x 5
    assert found.message == "Alice: daily spend spiked to $60 (no spend in the previous 7 days)"


def test_a_tiny_baseline_is_floored_for_the_threshold() -> None:
    history = [day("0.70", on=ago(1))]  # baseline $0.10, floored to $1 -> threshold $5
    settings = spike(min_daily_spend_usd=Decimal(0))
    assert spend_spike(day("4.99"), history, settings, CRITICAL, UTC_TZ) is None
    found = spend_spike(day("5.01"), history, settings, CRITICAL, UTC_TZ)
    assert found is not None
    assert (found.baseline, found.threshold) == (Decimal("0.10"), Decimal("5.00"))
    assert found.message == "Alice: daily spend spiked to $5.01 (50.1x their 7-day avg of $0.10)"


def test_below_the_daily_floor_nothing_fires() -> None:
    assert spend_spike(day("49.99"), [], spike(), CRITICAL, UTC_TZ) is None


def test_spike_warning_then_critical() -> None:
    # baseline $10, threshold $50: critical once the excess is > 3 x $40, i.e. above $130
    warn = spend_spike(day("130"), ONE_70_DAY, spike(), CRITICAL, UTC_TZ)
    crit = spend_spike(day("130.01"), ONE_70_DAY, spike(), CRITICAL, UTC_TZ)
    assert warn is not None
    assert crit is not None
    assert (warn.severity, crit.severity) == ("warning", "critical")


def test_spike_multiplier_zero_disables() -> None:
    settings = spike(multiplier=Decimal(0))
    assert spend_spike(day("5000"), [], settings, CRITICAL, UTC_TZ) is None


def test_spike_finding_fields_and_exact_message() -> None:
    history = [day(357, on=ago(2))]  # $357 / 7 = $51
    found = spend_spike(day("214"), history, spike(multiplier=Decimal(4)), CRITICAL, UTC_TZ)
    assert found == Finding(
        detector="spend_spike",
        subject="alice@x.com",
        metric="daily_spend",
        unit="usd",
        value=Decimal("214.00"),
        threshold=Decimal("204.00"),
        baseline=Decimal("51.00"),
        window_start=datetime(2026, 11, 21, tzinfo=UTC),
        window_end=datetime(2026, 11, 22, tzinfo=UTC),
        window_key="2026-11-21",
        model="claude-4.6-opus-max",
        message="Alice: daily spend spiked to $214 (4.2x their 7-day avg of $51)",
        severity="warning",
        evidence_first_at=datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
    )
    assert found.fingerprint == "alice@x.com:spend_spike:2026-11-21"


def test_the_display_name_wins_over_the_email() -> None:
    named = day("60", email="a.smith+cursor@x.com", name="Alice S.")
    anonymous = day("60", email="alice_mae.smith-jones+cursor@x.com")
    first = spend_spike(named, [], spike(), CRITICAL, UTC_TZ)
    second = spend_spike(anonymous, [], spike(), CRITICAL, UTC_TZ)
    assert first is not None
    assert second is not None
    assert first.message.startswith("Alice S.: ")
    assert second.message.startswith("Alice Mae Smith Jones: ")


def test_spike_window_follows_the_team_timezone() -> None:
    found = spend_spike(day("60"), [], spike(), CRITICAL, ZoneInfo("Asia/Kolkata"))
    assert found is not None
    assert found.window_start == datetime(2026, 11, 20, 18, 30, tzinfo=UTC)
    assert found.window_key == "2026-11-21"


# --- z-score -----------------------------------------------------------------------------------


def team(*spends: str | int) -> list[UserDay]:
    return [day(s, email=f"user{i}@x.com", model=None) for i, s in enumerate(spends)]


def test_zscore_needs_the_minimum_number_of_active_users() -> None:
    assert zscore(team(10, 10, 10, 500), ZScore(), CRITICAL, UTC_TZ) == []
    # inactive ($0) users do not count towards the minimum
    assert zscore(team(0, 0, 0, 0, 10, 10, 10, 500), ZScore(), CRITICAL, UTC_TZ) == []


def test_zscore_sigma_zero_finds_nothing() -> None:
    assert zscore(team(*[80] * 10), ZScore(), CRITICAL, UTC_TZ) == []


def test_zscore_uses_the_sample_standard_deviation() -> None:
    # One outlier among n equal users: population z = sqrt(n-1), sample z = (n-1)/sqrt(n).
    eight = team(*[10] * 7, 500)
    spends = [float(d.spend) for d in eight]
    population_z = (500 - statistics.mean(spends)) / statistics.pstdev(spends)
    sample_z = (500 - statistics.mean(spends)) / statistics.stdev(spends)
    assert population_z == pytest.approx(7**0.5)  # 2.65 > 2.5: the peer would alert
    assert sample_z == pytest.approx(7 / 8**0.5)  # 2.47 <= 2.5: we do not
    assert zscore(eight, ZScore(), CRITICAL, UTC_TZ) == []

    nine = team(*[10] * 8, 500)  # sample z = 8/3 = 2.67
    [found] = zscore(nine, ZScore(), CRITICAL, UTC_TZ)
    assert found.subject == "user8@x.com"
    assert (
        found.message
        == "User8: daily spend $500 is 2.7\N{GREEK SMALL LETTER SIGMA} above the team mean of $64"
    )


def test_zscore_threshold_and_baseline() -> None:
    nine = team(*[10] * 8, 500)
    [found] = zscore(nine, ZScore(), CRITICAL, UTC_TZ)
    spends = [float(d.spend) for d in nine]
    expected = statistics.mean(spends) + 2.5 * statistics.stdev(spends)
    assert found.baseline == Decimal("64.44")
    assert found.threshold == Decimal(f"{expected:.2f}")
    assert found.value == Decimal("500.00")
    assert found.severity == "warning"
    assert found.fingerprint == "user8@x.com:zscore:2026-11-21"


def test_zscore_candidates_below_the_floor_are_not_reported() -> None:
    assert zscore(team(*[1] * 20, 40), ZScore(), CRITICAL, UTC_TZ) == []
    [found] = zscore(team(*[1] * 20, 40), ZScore(min_daily_spend_usd=Decimal(0)), CRITICAL, UTC_TZ)
    assert found.value == Decimal("40.00")


def test_zscore_critical_beyond_the_critical_factor() -> None:
    # 60 users at $10 and one at $5,000: sample z = 60/sqrt(61) = 7.68 > 3 x 2.5
    [found] = zscore(team(*[10] * 60, 5000), ZScore(), CRITICAL, UTC_TZ)
    assert found.severity == "critical"
    [found] = zscore(team(*[10] * 60, 5000), ZScore(), Decimal(4), UTC_TZ)
    assert found.severity == "warning"


def test_zscore_multiplier_zero_disables() -> None:
    assert zscore(team(*[10] * 20, 5000), ZScore(multiplier=Decimal(0)), CRITICAL, UTC_TZ) == []


def test_zscore_exact_message_with_the_model() -> None:
    population = [
        *team(*[10] * 9),
        day("412", email="bob@x.com", model="claude-4.6-opus-max"),
    ]
    [found] = zscore(population, ZScore(), CRITICAL, UTC_TZ)
    assert found.model == "claude-4.6-opus-max"
    assert found.message == (
        f"Bob: daily spend $412 is 2.8{SIGMA} above the team mean of $50"
        " — mostly claude-4.6-opus-max"
    )


def test_zscore_rejects_a_mixed_day_population() -> None:
    mixed = [*team(*[10] * 5), day(500, on=ago(1), email="bob@x.com")]
    with pytest.raises(ValueError, match="one day"):
        zscore(mixed, ZScore(), CRITICAL, UTC_TZ)


# --- severity and windows ----------------------------------------------------------------------


def test_severity_counts_threshold_distances_from_the_baseline() -> None:
    assert severity(Decimal(40), Decimal(20), Decimal(10), Decimal(3)) == "warning"
    assert severity(Decimal(41), Decimal(20), Decimal(10), Decimal(3)) == "critical"


@pytest.mark.parametrize(
    ("tz", "on", "start", "hours"),
    [
        ("UTC", date(2026, 11, 21), datetime(2026, 11, 21, tzinfo=UTC), 24),
        ("America/Los_Angeles", date(2026, 11, 21), datetime(2026, 11, 21, 8, tzinfo=UTC), 24),
        # DST ends on 2026-11-01: midnight is PDT (-07:00), the next midnight PST (-08:00)
        ("America/Los_Angeles", date(2026, 11, 1), datetime(2026, 11, 1, 7, tzinfo=UTC), 25),
        # DST starts on 2026-03-08: a 23-hour day
        ("America/Los_Angeles", date(2026, 3, 8), datetime(2026, 3, 8, 8, tzinfo=UTC), 23),
        ("Asia/Kolkata", date(2026, 11, 21), datetime(2026, 11, 20, 18, 30, tzinfo=UTC), 24),
    ],
)
def test_day_window(tz: str, on: date, start: datetime, hours: int) -> None:
    window_start, window_end = day_window(on, ZoneInfo(tz))
    assert window_start == start
    assert window_end - window_start == timedelta(hours=hours)
    assert window_start.utcoffset() == timedelta(0)
    assert window_end.utcoffset() == timedelta(0)
