"""The arithmetic behind the usage endpoints: windows, percentages, projection, concentration."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from spendwatch.api.figures import (
    Window,
    average,
    change_percent,
    concentration,
    last_days,
    median,
    median_micros,
    per_unit_micros,
    percent,
    project_cycle_end,
    team_today,
)

M = 1_000_000


def test_the_last_n_days_include_today_and_the_previous_window_is_as_long() -> None:
    window = last_days(date(2026, 3, 2), 3)
    assert window == Window(date(2026, 2, 28), date(2026, 3, 2))
    assert window.days == 3
    assert window.dates() == [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]
    assert window.previous() == Window(date(2026, 2, 25), date(2026, 2, 27))


@pytest.mark.parametrize(
    ("now", "timezone", "today"),
    [
        (datetime(2026, 11, 21, 23, 30, tzinfo=UTC), "UTC", date(2026, 11, 21)),
        (datetime(2026, 11, 21, 23, 30, tzinfo=UTC), "Europe/Berlin", date(2026, 11, 22)),
        (datetime(2026, 11, 22, 4, 59, tzinfo=UTC), "America/New_York", date(2026, 11, 21)),
        (datetime(2026, 11, 22, 5, 0, tzinfo=UTC), "America/New_York", date(2026, 11, 22)),
        # the night the clocks go forward in Berlin
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 29)),
    ],
)
def test_today_is_the_team_timezone_date(now: datetime, timezone: str, today: date) -> None:
    assert team_today(now, timezone) == today


def test_percentages_round_half_even_to_two_places_and_none_without_a_base() -> None:
    assert percent(1, 3) == Decimal("33.33")
    assert percent(2, 3) == Decimal("66.67")
    assert percent(1, 8) == Decimal("12.50")
    assert percent(1, 0) is None
    assert change_percent(45, 20) == Decimal("125.00")
    assert change_percent(10, 40) == Decimal("-75.00")
    assert change_percent(5, 0) is None
    assert average(4, 3) == Decimal("1.33")
    assert average(4, 0) == Decimal("0.00")


def test_per_unit_micros() -> None:
    assert per_unit_micros(40 * M, 30) == 1_333_333
    assert per_unit_micros(5, 2) == 2  # 2.5 rounds half to even
    assert per_unit_micros(7, 2) == 4  # 3.5 rounds half to even
    assert per_unit_micros(30 * M, 1500, scale=1_000_000) == 20_000 * M
    assert per_unit_micros(1, 0) is None


def test_projection_adds_the_trailing_week_average_for_each_day_left() -> None:
    # $20 over complete days, $70 over the last 7 complete days ($10/day), 10 days left
    assert (
        project_cycle_end(
            spent_before_today=20 * M, spent_today=3 * M, trailing_micros=70 * M, days_left=10
        )
        == 120 * M
    )
    # $40 over 7 days = $5.714285714.../day, 25 days left: 20 + 142.857142857 = 162.857143
    assert (
        project_cycle_end(
            spent_before_today=20 * M, spent_today=0, trailing_micros=40 * M, days_left=25
        )
        == 162_857_143
    )


def test_projection_is_never_below_what_is_already_spent() -> None:
    # a quiet week but a big day today: the spend so far is the floor
    assert (
        project_cycle_end(
            spent_before_today=10 * M, spent_today=50 * M, trailing_micros=0, days_left=1
        )
        == 60 * M
    )


def test_concentration_of_even_and_lopsided_spend() -> None:
    even = concentration([5 * M] * 4)
    assert (even.users, even.top_users, even.gini) == (4, 1, Decimal("0.0000"))
    assert even.top_share_percent == Decimal("25.00")
    one = concentration([0, 0, 0, 9 * M])
    assert one.gini == Decimal("0.7500")  # (n - 1) / n
    assert (one.top_share_percent, one.top_user_share_percent) == (Decimal("100.00"),) * 2
    mixed = concentration([5 * M, 40 * M, 5 * M])
    assert mixed.gini == Decimal("0.4667")  # (-2*5 + 0*5 + 2*40) / (3 * 50)
    assert mixed.top_share_percent == Decimal("80.00")


def test_the_top_ten_percent_is_rounded_up() -> None:
    spends = list(range(1, 21))  # 20 users, top 10 % = the 2 biggest: 19 + 20 of 210
    found = concentration(spends)
    assert (found.top_users, found.top_share_percent) == (2, Decimal("18.57"))
    assert concentration(list(range(1, 22))).top_users == 3  # 2.1 users: 3


def test_concentration_without_spend() -> None:
    assert concentration([]).gini is None
    nothing = concentration([0, 0])
    assert (nothing.users, nothing.top_share_percent, nothing.gini) == (2, None, None)


def test_medians() -> None:
    assert median([]) is None
    assert median([3, 1, 2]) == Decimal(2)
    assert median([4, 1, 2, 3]) == Decimal("2.5")
    assert median_micros([1, 2]) == 2  # 1.5 rounds half to even
    assert median_micros([5 * M, 40 * M, 5 * M]) == 5 * M
    assert median_micros([]) is None
