"""Pure arithmetic behind the usage endpoints: windows, changes, projections, concentration.

Money stays in integer micro-dollars; ratios are Decimals rounded once, at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

PERCENT_PLACES = Decimal("0.01")
GINI_PLACES = Decimal("0.0001")
MILLION = 1_000_000
TRAILING_DAYS = 7
TOP_SHARE = Decimal("0.10")


@dataclass(frozen=True, slots=True)
class Window:
    """Team-timezone days `first` to `last`, both included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        """How many days the window has."""
        return (self.last - self.first).days + 1

    def previous(self) -> Window:
        """The window of equal length just before this one."""
        return Window(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    def dates(self) -> list[date]:
        """Every day of the window, oldest first."""
        return [self.first + timedelta(days=i) for i in range(self.days)]


def team_today(now: datetime, timezone: str) -> date:
    """Today's date in the team's timezone."""
    return now.astimezone(ZoneInfo(timezone)).date()


def last_days(today: date, days: int) -> Window:
    """The last `days` days up to `today`, today included."""
    return Window(today - timedelta(days=days - 1), today)


def percent(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """`part` as a percentage of `whole` (2 places); None when `whole` is 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(PERCENT_PLACES, ROUND_HALF_EVEN)


def change_percent(current: int | Decimal, previous: int | Decimal) -> Decimal | None:
    """Change from `previous` to `current` in percent; None when there was nothing before."""
    if not previous:
        return None
    return percent(Decimal(current) - Decimal(previous), previous)


def per_unit_micros(micros: int, units: int, *, scale: int = 1) -> int | None:
    """Micro-dollars per `units / scale` (per request, or per million tokens with scale=10^6),
    rounded half-even; None without units."""
    if not units:
        return None
    return int((Decimal(micros) * scale / units).quantize(Decimal(1), ROUND_HALF_EVEN))


def project_cycle_end(
    *, spent_before_today: int, spent_today: int, trailing_micros: int, days_left: int
) -> int:
    """Projected spend at the end of the cycle, in micro-dollars.

    Method: the spend of complete days so far, plus the average daily spend of the last
    `TRAILING_DAYS` complete days (missing days count as $0) for each day still to come, today
    included (today is only partly known, so its actual spend is not extrapolated). Never below
    what has already been spent. A recent-pace projection rather than a whole-cycle pace, so
    a quiet first week does not hide a busy last one.
    """
    average = Decimal(trailing_micros) / TRAILING_DAYS
    projected = Decimal(spent_before_today) + average * days_left
    floor = spent_before_today + spent_today
    return max(floor, int(projected.quantize(Decimal(1), ROUND_HALF_EVEN)))


@dataclass(frozen=True, slots=True)
class Concentration:
    """How concentrated spend is across users."""

    users: int
    top_users: int
    top_share_percent: Decimal | None
    top_user_share_percent: Decimal | None
    gini: Decimal | None


def concentration(spends: Sequence[int]) -> Concentration:
    """The share of the top 10 % of users (at least one) and the Gini coefficient of `spends`.

    Gini = sum_i (2i - n - 1) x_i / (n * sum x), with x sorted ascending and i from 1: 0 when
    everyone spends the same, (n - 1) / n when one user spends everything.
    """
    ordered = sorted(spends)
    n = len(ordered)
    total = sum(ordered)
    if not n or not total:
        return Concentration(n, 0, None, None, None)
    top = max(1, int((Decimal(n) * TOP_SHARE).to_integral_value(rounding="ROUND_CEILING")))
    weighted = sum((2 * i - n - 1) * x for i, x in enumerate(ordered, start=1))
    gini = (Decimal(weighted) / (n * total)).quantize(GINI_PLACES, ROUND_HALF_EVEN)
    return Concentration(
        users=n,
        top_users=top,
        top_share_percent=percent(sum(ordered[-top:]), total),
        top_user_share_percent=percent(ordered[-1], total),
        gini=gini,
    )


def average(total: int, count: int) -> Decimal:
    """`total / count` with two places (0 for no count)."""
    if not count:
        return Decimal("0.00")
    return (Decimal(total) / count).quantize(PERCENT_PLACES, ROUND_HALF_EVEN)


def median(values: Sequence[int]) -> Decimal | None:
    """The exact median (the mean of the middle two for an even count); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[middle])
    return (Decimal(ordered[middle - 1]) + Decimal(ordered[middle])) / 2


def median_micros(values: Sequence[int]) -> int | None:
    """The median, rounded half-even to a micro-dollar; None for no values."""
    found = median(values)
    return None if found is None else int(found.quantize(Decimal(1), ROUND_HALF_EVEN))
