"""Billing cycles: the shared definition the detector, the API and reports agree on.

A cycle is a run of team-timezone days starting on the cycle date the provider reports
(`spend_snapshots.cycle_start`), monthly from that anchor's day of month (clipped in short
months, as billing systems do); calendar months when there is no anchor.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Cycle:
    """Days `start` (inclusive) to `end` (exclusive) in the team timezone."""

    start: date
    end: date

    def window(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The cycle as aware UTC datetimes (local midnight to local midnight)."""
        start = datetime.combine(self.start, time(), tzinfo=tz).astimezone(UTC)
        stop = datetime.combine(self.end, time(), tzinfo=tz).astimezone(UTC)
        return start, stop

    def day_number(self, day: date) -> int:
        """1 on the cycle's first day."""
        return (day - self.start).days + 1

    @property
    def length_days(self) -> int:
        """How many days the cycle has."""
        return (self.end - self.start).days

    @property
    def last_day(self) -> date:
        """The cycle's last day."""
        return self.end - timedelta(days=1)

    def days_left(self, today: date) -> int:
        """Days from `today` to the end, today included (1 on the last day)."""
        return (self.end - today).days


def cycle_containing(day: date, anchor: date | None) -> Cycle:
    """The monthly cycle containing `day`, anchored on `anchor`'s day of month (clipped to short
    months, as billing systems do); the calendar month without an anchor."""
    anchor_day = anchor.day if anchor else 1
    start = _on(day.year, day.month, anchor_day)
    if start > day:
        start = _shift(start, -1, anchor_day)
    return Cycle(start, _shift(start, 1, anchor_day))


def anchor_date(cycle_start: datetime | None) -> date | None:
    """The anchor of a reported cycle start (Cursor dates it in UTC)."""
    return cycle_start.astimezone(UTC).date() if cycle_start else None


def _on(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _shift(start: date, months: int, anchor_day: int) -> date:
    index = start.year * 12 + start.month - 1 + months
    return _on(index // 12, index % 12 + 1, anchor_day)
