"""The daily plan-exhaustion digest and the end-of-cycle summary: pure computations.

Billing cycles are `spendwatch.common.cycles`' (the detector's and the API's): monthly from the
day of month of the latest cycle start a provider reported, clipped to short months, or the
calendar month when none was reported. Days are team-timezone days, as in the usage rollup.
Everything here is scoped to the current cycle; the repository reads the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from spendwatch.common.cycles import Cycle, cycle_containing

PLAN = "plan"
CYCLE = "cycle"
SUMMARY_LEAD_DAYS = 3  # the cycle summary goes out this many days before the cycle ends
TOP_ON_DEMAND = 10
TOP_SPENDERS = 5
UNUSED_LISTED = 10


def previous_cycle(cycle: Cycle, anchor: date | None) -> Cycle:
    """The cycle just before `cycle`."""
    return cycle_containing(cycle.start - timedelta(days=1), anchor)


def same_point_end(previous: Cycle, current: Cycle, today: date) -> date:
    """The exclusive end of `previous` after as many days as `current` has had up to `today`."""
    elapsed = (today - current.start).days + 1
    return min(previous.start + timedelta(days=elapsed), previous.end)


def local_now(now: datetime, timezone: str) -> datetime:
    """`now` in the team timezone."""
    return now.astimezone(ZoneInfo(timezone))


def digest_time(now_local: datetime, hour: int) -> bool:
    """True once the local day has reached the digest hour."""
    return now_local.hour >= hour


def summary_due(cycle: Cycle, today: date, lead_days: int = SUMMARY_LEAD_DAYS) -> bool:
    """True in the last `lead_days` days of the cycle (a late start still sends it once)."""
    return 1 <= cycle.days_left(today) <= lead_days


@dataclass(frozen=True, slots=True)
class UserUsage:
    """One user's usage in a cycle so far (money in USD)."""

    user_email: str
    spend: Decimal
    requests: int
    on_demand: Decimal  # what went past the included plan
    on_demand_requests: int
    name: str | None = None

    @property
    def label(self) -> str:
        """`Name (email)` or the email."""
        return f"{self.name} ({self.user_email})" if self.name else self.user_email


@dataclass(frozen=True, slots=True)
class Member:
    """A seat on the roster."""

    user_email: str
    name: str | None = None

    @property
    def label(self) -> str:
        """The name, or the email."""
        return self.name or self.user_email


@dataclass(frozen=True, slots=True)
class PlanDigest:
    """`exceeded`/`active` users went past their included plan this cycle; the top ones."""

    day: date
    cycle: Cycle
    active: int
    exceeded: int
    on_demand_total: Decimal
    top: tuple[UserUsage, ...]


def plan_digest(
    day: date, cycle: Cycle, usage: Sequence[UserUsage], top_n: int = TOP_ON_DEMAND
) -> PlanDigest | None:
    """The plan digest of `day`, or None when nobody has exceeded the plan (nothing to say).

    Active = users with usage this cycle; exceeded = users with on-demand requests this cycle.
    """
    active = [u for u in usage if u.requests > 0 or u.spend > 0]
    exceeded = [u for u in active if u.on_demand_requests > 0]
    if not exceeded:
        return None
    top = sorted(exceeded, key=lambda u: (-u.on_demand, -u.on_demand_requests, u.user_email))
    return PlanDigest(
        day=day,
        cycle=cycle,
        active=len(active),
        exceeded=len(exceeded),
        on_demand_total=sum((u.on_demand for u in exceeded), Decimal(0)),
        top=tuple(top[:top_n]),
    )


@dataclass(frozen=True, slots=True)
class CycleDigest:
    """Where the cycle stands a few days before it ends."""

    today: date
    cycle: Cycle
    spend: Decimal
    previous_spend: Decimal | None  # the previous cycle at the same point; None: no data then
    members: int
    active_members: int
    active_users: int
    unused: tuple[Member, ...]  # seats with no usage this cycle
    exceeded: int
    top_spenders: tuple[UserUsage, ...]

    @property
    def days_left(self) -> int:
        """Days left in the cycle, today included."""
        return self.cycle.days_left(self.today)

    @property
    def unused_seats(self) -> int:
        """Members with no usage this cycle."""
        return len(self.unused)

    @property
    def adoption(self) -> Decimal | None:
        """Active members / members, in percent (None without a roster)."""
        if not self.members:
            return None
        ratio = Decimal(self.active_members) * 100 / Decimal(self.members)
        return ratio.quantize(Decimal(1), ROUND_HALF_UP)

    @property
    def change(self) -> Decimal | None:
        """Spend change against the previous cycle at the same point, in percent."""
        if not self.previous_spend:
            return None
        ratio = (self.spend - self.previous_spend) * 100 / self.previous_spend
        return ratio.quantize(Decimal(1), ROUND_HALF_UP)


def cycle_digest(
    today: date,
    cycle: Cycle,
    usage: Sequence[UserUsage],
    members: Sequence[Member],
    previous_spend: Decimal | None,
    top_n: int = TOP_SPENDERS,
) -> CycleDigest | None:
    """The cycle summary, or None when there is neither usage nor a roster to talk about."""
    active = {u.user_email for u in usage if u.requests > 0 or u.spend > 0}
    if not active and not members:
        return None
    roster = sorted({m.user_email: m for m in members}.values(), key=lambda m: m.user_email)
    spenders = sorted((u for u in usage if u.spend > 0), key=lambda u: (-u.spend, u.user_email))
    return CycleDigest(
        today=today,
        cycle=cycle,
        spend=sum((u.spend for u in usage), Decimal(0)),
        previous_spend=previous_spend,
        members=len(roster),
        active_members=sum(1 for m in roster if m.user_email in active),
        active_users=len(active),
        unused=tuple(m for m in roster if m.user_email not in active),
        exceeded=sum(1 for u in usage if u.on_demand_requests > 0),
        top_spenders=tuple(spenders[:top_n]),
    )


def plan_key(channel: str, day: date) -> str:
    """Delivery-log key of the plan digest of `day` on `channel`: at most one per day."""
    return f"{channel}:digest:{PLAN}:{day.isoformat()}"


def cycle_key(channel: str, cycle: Cycle) -> str:
    """Delivery-log key of the summary of `cycle` on `channel`: at most one per cycle."""
    return f"{channel}:digest:{CYCLE}:{cycle.start.isoformat()}"
