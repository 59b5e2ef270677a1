"""Billing-cycle arithmetic and the digest numbers (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from spendwatch.common.cycles import Cycle, cycle_containing
from spendwatch.notifier.digests import (
    Member,
    UserUsage,
    cycle_digest,
    cycle_key,
    digest_time,
    local_now,
    plan_digest,
    plan_key,
    previous_cycle,
    same_point_end,
    summary_due,
)


@pytest.mark.parametrize(
    ("day", "anchor", "start", "end"),
    [
        (date(2026, 11, 20), date(2026, 10, 5), date(2026, 11, 5), date(2026, 12, 5)),
        (date(2026, 11, 4), date(2026, 10, 5), date(2026, 10, 5), date(2026, 11, 5)),
        (date(2026, 11, 5), date(2026, 10, 5), date(2026, 11, 5), date(2026, 12, 5)),
        (date(2026, 12, 20), date(2026, 10, 5), date(2026, 12, 5), date(2027, 1, 5)),
        (date(2027, 1, 2), date(2026, 10, 5), date(2026, 12, 5), date(2027, 1, 5)),
        # An anchor on the 31st is clipped in short months, as billing systems do.
        (date(2027, 2, 15), date(2026, 12, 31), date(2027, 1, 31), date(2027, 2, 28)),
        (date(2027, 2, 28), date(2026, 12, 31), date(2027, 2, 28), date(2027, 3, 31)),
        (date(2027, 3, 30), date(2026, 12, 31), date(2027, 2, 28), date(2027, 3, 31)),
        (date(2027, 3, 31), date(2026, 12, 31), date(2027, 3, 31), date(2027, 4, 30)),
        (date(2028, 2, 29), date(2026, 12, 30), date(2028, 2, 29), date(2028, 3, 30)),
        # Without a cycle start from a provider: the calendar month.
        (date(2026, 11, 20), None, date(2026, 11, 1), date(2026, 12, 1)),
        (date(2026, 12, 31), None, date(2026, 12, 1), date(2027, 1, 1)),
    ],
)
def test_cycle_containing(day: date, anchor: date | None, start: date, end: date) -> None:
    cycle = cycle_containing(day, anchor)
    assert (cycle.start, cycle.end) == (start, end)
    assert cycle.start <= day < cycle.end


def test_previous_cycle_and_the_same_point_in_it() -> None:
    anchor = date(2026, 1, 5)
    current = cycle_containing(date(2026, 11, 20), anchor)
    previous = previous_cycle(current, anchor)
    assert previous == Cycle(date(2026, 10, 5), date(2026, 11, 5))
    # 16 days into this cycle (Nov 5..20): the first 16 days of the last one.
    assert same_point_end(previous, current, date(2026, 11, 20)) == date(2026, 10, 21)
    # A longer cycle than the previous one: clipped to the previous one's end.
    march = cycle_containing(date(2026, 4, 4), anchor)
    february = previous_cycle(march, anchor)
    assert (february.start, february.end) == (date(2026, 2, 5), date(2026, 3, 5))
    assert same_point_end(february, march, date(2026, 4, 4)) == date(2026, 3, 5)


@pytest.mark.parametrize(("today", "due"), [(1, False), (2, True), (4, True), (5, False)])
def test_the_summary_is_due_in_the_last_three_days(today: int, due: bool) -> None:
    cycle = Cycle(date(2026, 11, 5), date(2026, 12, 5))
    assert cycle.days_left(date(2026, 12, today)) == 5 - today
    assert summary_due(cycle, date(2026, 12, today)) is due


def test_the_digest_hour_is_local() -> None:
    now = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert digest_time(local_now(now, "Europe/Berlin"), 9) is True  # 09:30 in Berlin
    assert digest_time(local_now(now, "UTC"), 9) is False
    assert digest_time(local_now(now, "America/New_York"), 9) is False


def usage(
    user: str, spend: str, on_demand: str = "0", on_demand_requests: int = 0, **kw: object
) -> UserUsage:
    return UserUsage(
        user_email=user,
        spend=Decimal(spend),
        requests=int(kw.get("requests", 10)),  # type: ignore[call-overload]
        on_demand=Decimal(on_demand),
        on_demand_requests=on_demand_requests,
        name=kw.get("name"),  # type: ignore[arg-type]
    )


def test_the_plan_digest_counts_active_and_exceeded_users() -> None:
    cycle = Cycle(date(2026, 11, 5), date(2026, 12, 5))
    rows = [
        usage("a@x.com", "100", "80", 30, name="Alice"),
        usage("b@x.com", "40", "10", 5),
        usage("c@x.com", "15"),
        usage("d@x.com", "0", requests=0),  # a row without usage is not activity
        usage("e@x.com", "12", "10", 7),
    ]
    digest = plan_digest(date(2026, 11, 20), cycle, rows, top_n=2)
    assert digest is not None
    assert (digest.exceeded, digest.active) == (3, 4)
    assert digest.on_demand_total == Decimal(100)
    # Most on-demand spend first; a tie goes to more requests past the plan.
    assert [u.user_email for u in digest.top] == ["a@x.com", "e@x.com"]
    assert digest.top[0].label == "Alice (a@x.com)"
    assert plan_digest(date(2026, 11, 20), cycle, [usage("c@x.com", "15")]) is None


def test_the_cycle_digest() -> None:
    cycle = Cycle(date(2026, 11, 5), date(2026, 12, 5))
    rows = [usage("a@x.com", "120", "80", 30), usage("b@x.com", "40"), usage("z@x.com", "5")]
    members = [Member("a@x.com", "Alice"), Member("b@x.com"), Member("c@x.com", "Carol")]
    digest = cycle_digest(date(2026, 12, 2), cycle, rows, members, Decimal(150))
    assert digest is not None
    assert digest.spend == Decimal(165)
    assert digest.change == Decimal(10)
    assert (digest.members, digest.active_members, digest.active_users) == (3, 2, 3)
    assert digest.adoption == Decimal(67)
    assert [m.label for m in digest.unused] == ["Carol"]
    assert digest.exceeded == 1
    assert [u.user_email for u in digest.top_spenders] == ["a@x.com", "b@x.com", "z@x.com"]
    assert digest.days_left == 3
    no_history = cycle_digest(date(2026, 12, 2), cycle, rows, [], Decimal(0))
    assert no_history is not None
    assert no_history.change is None
    assert no_history.adoption is None
    assert cycle_digest(date(2026, 12, 2), cycle, [], [], None) is None


def test_keys_are_one_per_day_and_one_per_cycle() -> None:
    cycle = Cycle(date(2026, 11, 5), date(2026, 12, 5))
    assert plan_key("slack", date(2026, 11, 20)) == "slack:digest:plan:2026-11-20"
    assert cycle_key("email", cycle) == "email:digest:cycle:2026-11-05"
