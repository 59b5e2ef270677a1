"""A deterministic simulated Cursor team: members, groups, usage events and injected anomalies.

Everything follows from `(seed, developers, days, now)`. Events are not kept in memory: each
(user, UTC day) draws its events from its own random stream, seeded by (seed, user, day), so
any day can be drawn again, identically, when the API serves it. Start-up draws every day once
to keep per-(user, day) statistics (counts, exact cost, the included-plan balance at the start
of the day), which is all the aggregate endpoints and the ground truth need; the event pages
re-draw the days they touch, with a small cache of recent team days.

Money is integer micro-dollars throughout (1 cent = 10,000 micros). Generated events have at
most 4 decimals of cents, so every served cent value is exactly `micros / 10_000`. Late events
(`add_late_event`) may carry up to 6 decimals; their micros are then a `Decimal`.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import accumulate, pairwise
from typing import Final, NamedTuple

from spendwatch.common.errors import ConfigError
from spendwatch.simulator.errors import DuplicateEventError, InvalidSimRequestError
from spendwatch.simulator.models import (
    BASE_WEIGHTS,
    MODEL_INDEX,
    MODELS,
    OPUS_HIGH,
    OPUS_HIGH_THINKING,
    OPUS_MAX,
    OPUS_MAX_THINKING_FAST,
    SONNET,
)

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
MICROS_PER_CENT: Final = 10_000
MAX_DEVELOPERS: Final = 5_000
MAX_DAYS: Final = 90
MIN_ANOMALY_DEVELOPERS: Final = 10  # fewer, and the four misbehaving users skew the median
MIN_ANOMALY_DAYS: Final = 14  # a spike needs a week of history before it

Money = int | Decimal
"""Micro-dollars: an int for generated events, a Decimal for late events finer than a micro."""


class EventRow(NamedTuple):
    """One usage event, compactly (money in micro-dollars)."""

    ts: int  # epoch ms
    member: int  # index into SimulatedTeam.members
    model: int  # index into MODELS
    kind: int  # index into KIND_NAMES
    flags: int  # HEADLESS | TOKEN_BASED | OLD_SHAPE
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    total: Money  # model cost (tokenUsage.totalCents)
    fee: Money | None  # Cursor Token Fee, None when the event has none
    discount: int  # percent off the model cost
    charged: Money  # chargedCents: total less discount, plus the fee
    request_tenths: int  # requestsCosts x 10


INCLUDED, USAGE_BASED, ERRORED, ABORTED = range(4)
KIND_NAMES: Final = (
    "Included in Business",
    "Usage-based",
    "Errored, Not Charged",
    "Aborted, Not Charged",
)
HEADLESS, TOKEN_BASED, OLD_SHAPE = 1, 2, 4
"""Flag bits. OLD_SHAPE: served as the older docs' shape, without chargedCents/cursorTokenFee."""

_REQUEST_TENTHS: Final = (10, 14, 20, 28)  # request-priced calls: 1, 1.4, 2, 2.8 requests
_MICROS_PER_REQUEST_TENTH: Final = 4_000  # one request = $0.04
_STANDARD_INCLUDED: Final = 20_000_000  # $20 of included usage per cycle
_PREMIUM_INCLUDED: Final = 100_000_000  # premium seats: 5x

_FIRST_NAMES: Final = (
    "Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Karl",
    "Lena", "Mallory", "Nina", "Oscar", "Peggy", "Quentin", "Rita", "Sam", "Trent", "Uma",
    "Victor", "Wendy", "Xavier", "Yara", "Zoe", "Aaron", "Bianca", "Chen", "Dmitri", "Elif",
    "Fatima", "Goran", "Hana", "Ines", "Jonas", "Kenji", "Leila", "Mateo", "Noor", "Olga",
    "Priya", "Rafael", "Sofia", "Tariq", "Ulla", "Vera", "Wei", "Yusuf", "Zara",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Smith", "Jones", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Anderson", "Thomas",
    "Moore", "Martin", "Lee", "Perez", "White", "Harris", "Clark", "Lewis", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell",
    "Mitchell", "Roberts", "Carter", "Phillips", "Evans", "Turner", "Torres", "Parker", "Collins",
    "Edwards", "Stewart", "Morris", "Nguyen", "Murphy", "Rivera", "Cook", "Rogers", "Morgan",
    "Peterson", "Cooper", "Reed",
)  # fmt: skip
_GROUPS: Final = (  # name, share of the team (the peer's mock: 65 people, 10 groups)
    ("Platform > Core", 12), ("Platform > Infrastructure", 8), ("Frontend > Web App", 10),
    ("Frontend > Mobile", 6), ("Backend > API", 9), ("Data > Analytics", 5), ("Data > ML", 4),
    ("DevOps > SRE", 5), ("QA > Automation", 3), ("Security > AppSec", 3),
)  # fmt: skip
_CLIENT_VERSIONS: Final = ("2.3.21", "2.3.29", "2.4.21", "2.4.35", "2.5.8", "2.5.12")

_RATES: Final = tuple(
    (
        m.input_rate,
        m.cache_write_rate,
        m.cache_read_rate,
        m.output_rate,
        3 if m.thinking else 1,
        m.token_fee,
    )
    for m in MODELS
)

_CONTEXT_TIERS: Final = (25_000, 50_000, 100_000, 200_000)  # mean cache-read tokens per request
_Tail = tuple[int, int, int, int, int, int | None, int, int, int]
_Shape = tuple[int, int, int, int, _Tail]
"""(kind or -1 for "decided by the plan balance", flags, charged micros, output tokens,
the row's tail from input tokens on)"""

COST_RULE: Final = (
    "cost_micros = chargedCents x 10000 when the event has chargedCents, otherwise "
    "(tokenUsage.totalCents + cursorTokenFee) x 10000 (a missing fee counts as 0); "
    "the exact decimal products are summed and each reported figure is rounded half-even "
    "to an integer only at the end. Errored events (0 cents) still count as events."
)


def cost_micros_from_cents(
    charged_cents: Decimal | None, total_cents: Decimal | None, fee_cents: Decimal | None
) -> Decimal:
    """One event's exact cost in micro-dollars from the cents the API serves (see COST_RULE)."""
    if charged_cents is not None:
        return charged_cents * MICROS_PER_CENT
    return ((total_cents or Decimal(0)) + (fee_cents or Decimal(0))) * MICROS_PER_CENT


def round_micros(value: Money) -> int:
    """Round an exact micro-dollar amount half-even to an integer."""
    if isinstance(value, int):
        return value
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def day_of(ms: int) -> int:
    """The UTC day (days since 1970-01-01) an epoch-ms instant falls on."""
    return ms // DAY_MS


def day_date(day: int) -> date:
    """The calendar date of a UTC day number."""
    return date(1970, 1, 1) + timedelta(days=day)


def day_number(value: date) -> int:
    """The UTC day number of a calendar date."""
    return (value - date(1970, 1, 1)).days


def iso_ms(ms: int) -> str:
    """Epoch ms as an ISO-8601 UTC string with milliseconds, the way Cursor writes them."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _add_months(value: date, months: int) -> date:
    month0 = value.month - 1 + months
    return value.replace(year=value.year + month0 // 12, month=month0 % 12 + 1)


@dataclass(frozen=True, slots=True)
class Member:
    """A team member as `/teams/members`, `/teams/spend` and `/teams/groups` show them."""

    index: int
    id: int
    user_id: str
    name: str
    email: str
    role: str
    joined_ms: int
    group: int | None
    included_micros: int
    hard_limit_override_dollars: int
    monthly_limit_dollars: int | None
    client_version: str
    removed_day: int | None = None

    @property
    def is_removed(self) -> bool:
        """Whether the member has left the team."""
        return self.removed_day is not None


@dataclass(frozen=True, slots=True)
class BillingGroup:
    """A billing group (`/teams/groups`)."""

    index: int
    id: str
    name: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An injected anomaly and what should notice it (the window includes both ends)."""

    kind: str
    user_email: str
    window_start_ms: int
    window_end_ms: int
    expected_detector: str
    also_fires: tuple[str, ...]
    model: str
    details: dict[str, int | str]


@dataclass(frozen=True, slots=True)
class DayPlan:
    """What an anomaly changes about one (user, day)."""

    min_charged_micros: int = 0
    volume: float = 1.0
    force_model: int | None = None
    force_active: bool = False
    runaway: tuple[int, int] | None = None


_NO_PLAN: Final = DayPlan()


@dataclass(slots=True)
class _Profile:
    """How one developer works (drawn once per member)."""

    per_weekday: float
    p_weekday: float
    p_weekend: float
    weekend_factor: float
    model_thresholds: list[int]  # cumulative model weights scaled to 2^24
    start_ms: int
    span_ms: int
    context_tier: int  # index into _CONTEXT_TIERS
    headless_below: int  # headless when a 16-bit draw is below this


@dataclass(slots=True)
class DayStats:
    """One member's day: what start-up drew, plus any late events."""

    cum_start: int  # included-plan consumption in the cycle before this day (micros)
    generated: int = 0
    events: int = 0
    charged: Money = 0
    usage_charged: Money = 0
    included: int = 0
    usage_based: int = 0
    errored: int = 0
    headless: int = 0
    output_tokens: int = 0
    top_model: int | None = None

    def add(self, row: EventRow) -> None:
        """Count one more event (a late one: start-up counts its own in `_draw_day`)."""
        self.events += 1
        self.charged += row.charged
        if row.kind == INCLUDED:
            self.included += 1
        elif row.kind == USAGE_BASED:
            self.usage_based += 1
            self.usage_charged += row.charged
        else:
            self.errored += 1
        self.headless += row.flags & HEADLESS
        self.output_tokens += row.output_tokens
        if self.top_model is None:
            self.top_model = row.model


@dataclass(frozen=True, slots=True)
class UserDayTruth:
    """Ground truth for one (user, UTC day)."""

    user_email: str
    day: date
    events: int
    cost_micros: int


@dataclass(frozen=True, slots=True)
class Truth:
    """Ground truth over a time range."""

    start_ms: int
    end_ms: int
    total_events: int
    total_cost_micros: int
    user_days: list[UserDayTruth] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MemberSpend:
    """A member's spend in one billing cycle."""

    member: Member
    overall_micros: Money
    usage_micros: Money
    usage_events: int


class SimulatedTeam:
    """A Cursor team with usage over `days` days up to `now`, and its ground truth."""

    _CACHE_BUDGET: Final = 250_000  # events kept in the cache of team days

    def __init__(
        self,
        *,
        seed: int = 1,
        developers: int = 60,
        days: int = 30,
        now: datetime | None = None,
        cycle_start: date | None = None,
        anomalies: bool = True,
        domain: str = "example.com",
    ) -> None:
        if not 1 <= developers <= MAX_DEVELOPERS:
            raise ConfigError(f"developers must be 1..{MAX_DEVELOPERS}, not {developers}")
        if not 1 <= days <= MAX_DAYS:
            raise ConfigError(f"days must be 1..{MAX_DAYS}, not {days}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, not {seed}")
        moment = now or datetime.now(UTC)
        if moment.tzinfo is None:
            raise ConfigError("now must be timezone-aware")
        started = time.perf_counter()
        self.seed = seed
        self.developers = developers
        self.days = days
        self.domain = domain
        self.now_ms = int(moment.timestamp() * 1000)
        self.window_start_ms = self.now_ms - days * DAY_MS
        self.first_day = day_of(self.window_start_ms)
        self.last_day = day_of(self.now_ms)
        rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not secrets
        self._anchor = self._cycle_anchor(rng, cycle_start)
        self.members: list[Member] = []
        self.groups: list[BillingGroup] = []
        self._profiles: list[_Profile] = []
        self._make_members(rng)
        self._plans: dict[tuple[int, int], DayPlan] = {}
        self._stats: dict[tuple[int, int], DayStats] = {}
        self._day_events = dict.fromkeys(range(self.first_day, self.last_day + 1), 0)
        self._late: dict[tuple[int, int], list[EventRow]] = {}
        self._cache: OrderedDict[int, list[EventRow]] = OrderedDict()
        self._cached_events = 0
        self._pools: list[list[list[_Shape]]] = [[] for _ in _CONTEXT_TIERS]
        self._pool_bits = 10 if developers <= 200 else 11  # shapes per pool: 1024 or 2048
        self.anomalies: list[Anomaly] = []
        cast = self._cast_anomalies(rng) if anomalies else None
        self._by_email = {m.email.lower(): m for m in self.members}
        self._by_id = {m.id: m for m in self.members}
        self._draw_everything(cast)
        if cast is not None:
            self.anomalies = self._describe_anomalies(cast)
        self.generation_seconds = time.perf_counter() - started

    # ---- the team ---------------------------------------------------------------------------

    @property
    def cycle_start_ms(self) -> int:
        """Start of the current billing cycle (epoch ms)."""
        return self.cycle_of(self.last_day)[0] * DAY_MS

    def cycle_of(self, day: int) -> tuple[int, int]:
        """(first day, first day of the next cycle) of the billing cycle containing `day`."""
        when = day_date(day)
        start = when.replace(day=self._anchor)
        if when.day < self._anchor:
            start = _add_months(start, -1)
        return day_number(start), day_number(_add_months(start, 1))

    def member_by_email(self, email: str) -> Member | None:
        """The member with this e-mail address, compared case-insensitively."""
        return self._by_email.get(email.strip().lower())

    def member_by_id(self, member_id: int) -> Member | None:
        """The member with this numeric id."""
        return self._by_id.get(member_id)

    def day_stats(self, member: int, day: int) -> DayStats | None:
        """What happened on one (member, day), or None for an idle day."""
        return self._stats.get((member, day))

    def _cycle_anchor(self, rng: random.Random, cycle_start: date | None) -> int:
        if cycle_start is not None:
            if cycle_start.day > 28:
                raise ConfigError("cycle_start must fall on day 1..28 of its month")
            return cycle_start.day
        # A cycle that began 10-20 days ago: far enough for plans to run out and medians to form.
        for back in range(10 + rng.randrange(11), 40):
            anchor = day_date(self.last_day - back).day
            if anchor <= 28:
                return anchor
        return 1  # unreachable: some day in any 30-day stretch is the 1st..28th

    def _make_members(self, rng: random.Random) -> None:
        total_share = sum(share for _, share in _GROUPS)
        created = self.window_start_ms - 120 * DAY_MS
        for index, (name, _) in enumerate(_GROUPS):
            digest = hashlib.blake2b(f"{self.seed}:group:{index}".encode(), digest_size=6)
            self.groups.append(BillingGroup(index, f"group_{digest.hexdigest()}", name, created))
        # About 10% of the team is unassigned; the rest fill groups by the peer's proportions.
        slots: list[int | None] = []
        for index, (_, share) in enumerate(_GROUPS):
            slots += [index] * max(1, round(self.developers * 0.9 * share / total_share))
        rng.shuffle(slots)
        used: set[str] = set()
        ids = sorted(rng.sample(range(1_000_000, 9_999_999), self.developers))
        for index in range(self.developers):
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            local = f"{first}.{last}".lower()
            suffix = 2
            while local in used:
                local, suffix = f"{first}.{last}{suffix}".lower(), suffix + 1
            used.add(local)
            # One in ten addresses comes back capitalised, as people typed them.
            shown = local.title() if rng.random() < 0.1 else local
            digest = hashlib.blake2b(f"{self.seed}:user:{ids[index]}".encode(), digest_size=12)
            premium = rng.random() < 0.15
            self.members.append(
                Member(
                    index=index,
                    id=ids[index],
                    user_id=f"user_{digest.hexdigest()}",
                    name=f"{first} {last}",
                    email=f"{shown}@{self.domain}",
                    role="owner" if index == 0 else "member",
                    joined_ms=self.window_start_ms - (30 + rng.randrange(400)) * DAY_MS,
                    group=slots[index] if index < len(slots) else None,
                    included_micros=_PREMIUM_INCLUDED if premium else _STANDARD_INCLUDED,
                    hard_limit_override_dollars=rng.choice((0, 0, 0, 0, 0, 0, 0, 0, 100, 500)),
                    monthly_limit_dollars=rng.choice((None, None, None, 100, 200, 500)),
                    client_version=rng.choice(_CLIENT_VERSIONS),
                )
            )
            self._profiles.append(self._draw_profile(rng))

    @staticmethod
    def _draw_profile(rng: random.Random, favourite: int | None = None) -> _Profile:
        weights = [w * math.exp(rng.gauss(0, 0.7)) for w in BASE_WEIGHTS]
        pick = favourite if favourite is not None else rng.randrange(len(weights) - 1)
        weights[pick] *= 3
        europe = rng.random() < 0.6
        return _Profile(
            per_weekday=min(120.0, max(3.0, rng.lognormvariate(math.log(20), 0.6))),
            p_weekday=rng.uniform(0.75, 0.98),
            p_weekend=rng.uniform(0.02, 0.25),
            weekend_factor=rng.uniform(0.15, 0.4),
            model_thresholds=_thresholds(weights),
            start_ms=int((rng.uniform(6.5, 8.5) if europe else rng.uniform(12.5, 14)) * HOUR_MS),
            span_ms=int(rng.uniform(8, 9.5) * HOUR_MS),
            context_tier=rng.choices(range(len(_CONTEXT_TIERS)), (3, 5, 3, 1))[0],
            headless_below=int(rng.uniform(0, 0.06) * 65_536),
        )

    # ---- anomalies --------------------------------------------------------------------------

    def _cast_anomalies(self, rng: random.Random) -> dict[str, int] | None:
        """Pick who misbehaves and when; None when the team or the window is too small."""
        if self.developers < MIN_ANOMALY_DEVELOPERS or self.days < MIN_ANOMALY_DAYS:
            return None
        candidates = rng.sample(range(1, self.developers), 5)
        cast = dict(
            zip(("spike", "switch", "runaway", "outlier", "leaver"), candidates, strict=True)
        )
        spike_day = self.last_day - 3
        while (spike_day + 3) % 7 >= 5:  # a weekday, so the spike stands out from a working day
            spike_day -= 1
        cast["spike_day"] = spike_day
        cast["runaway_day"] = self.last_day - 2
        cast["switch_day"] = self.last_day - 1
        profiles = self._profiles
        # The spiker works steadily enough that a 7.5x day clears a $50 daily floor.
        spiker = profiles[cast["spike"]] = self._draw_profile(rng, favourite=OPUS_HIGH)
        spiker.per_weekday, spiker.p_weekday, spiker.context_tier = 60, 0.97, 2
        profiles[cast["switch"]].per_weekday = max(25, profiles[cast["switch"]].per_weekday)
        outlier = self._draw_profile(rng, favourite=OPUS_MAX)
        weights = [0.0] * len(MODELS)
        weights[OPUS_MAX], weights[OPUS_HIGH_THINKING], weights[SONNET] = 60, 30, 10
        outlier.model_thresholds = _thresholds(weights)
        outlier.p_weekday, outlier.p_weekend, outlier.weekend_factor = 0.99, 0.6, 0.5
        outlier.context_tier = len(_CONTEXT_TIERS) - 1  # per_weekday: see _size_outlier
        profiles[cast["outlier"]] = outlier
        switch, runaway = cast["switch"], cast["runaway"]
        for day in (cast["switch_day"], self.last_day):
            self._plans[switch, day] = DayPlan(
                force_model=OPUS_MAX_THINKING_FAST, force_active=True
            )
        start = cast["runaway_day"] * DAY_MS + HOUR_MS
        self._plans[runaway, cast["runaway_day"]] = DayPlan(runaway=(start, start + 4 * HOUR_MS))
        if self.developers >= 20:  # someone left just before the current cycle
            leaver_day = self.cycle_of(self.last_day)[0] - 2
            if leaver_day > self.first_day + 2:
                leaver = cast["leaver"]
                self.members[leaver] = replace(self.members[leaver], removed_day=leaver_day)
        return cast

    def _describe_anomalies(self, cast: dict[str, int]) -> list[Anomaly]:
        members = self.members
        spike, spike_day = cast["spike"], cast["spike_day"]
        before = [self._charged(spike, d) for d in range(spike_day - 7, spike_day)]
        active = [c for c in before if c > 0]
        day_cost = self._charged(spike, spike_day)
        switch, switch_day = cast["switch"], cast["switch_day"]
        runaway_day = cast["runaway_day"]
        runaway = self._plans[cast["runaway"], runaway_day].runaway
        assert runaway is not None
        loop = [r for r in self._user_rows(cast["runaway"], runaway_day) if r.flags & HEADLESS]
        loop_in_window = [r for r in loop if runaway[0] <= r.ts < runaway[1]]
        outlier = cast["outlier"]
        spends = {s.member.index: s.overall_micros for s in self.cycle_spend(self.last_day)}
        median = statistics.median(Decimal(v) for v in spends.values() if v > 0)
        cycle_first = self.cycle_of(self.last_day)[0]
        switch_days = (switch_day, self.last_day)
        history = [self._cost_per_request(switch, d) for d in range(switch_day - 7, switch_day)]
        history_cpr = [c for c in history if c is not None]
        switch_cpr = self._cost_per_request(switch, switch_day) or Decimal(0)
        return [
            Anomaly(
                kind="spend_spike",
                user_email=members[spike].email.lower(),
                window_start_ms=spike_day * DAY_MS,
                window_end_ms=(spike_day + 1) * DAY_MS - 1,
                expected_detector="spend_spike",
                also_fires=("zscore",),
                model=MODELS[self._top_model(spike, spike_day)].name,
                details={
                    "day": day_date(spike_day).isoformat(),
                    "day_cost_micros": round_micros(day_cost),
                    "baseline_avg_micros_active_days": round_micros(
                        Decimal(sum(active)) / max(1, len(active))
                    ),
                    "baseline_avg_micros_7_days": round_micros(Decimal(sum(before)) / 7),
                },
            ),
            Anomaly(
                kind="model_switch",
                user_email=members[switch].email.lower(),
                window_start_ms=switch_day * DAY_MS,
                window_end_ms=self.now_ms,
                expected_detector="expensive_model",
                also_fires=("cost_per_request", "spend_spike", "zscore"),
                model=MODELS[OPUS_MAX_THINKING_FAST].name,
                details={
                    "days": ",".join(day_date(d).isoformat() for d in switch_days),
                    "cost_per_request_micros": round_micros(switch_cpr),
                    "history_cost_per_request_micros": round_micros(
                        sum(history_cpr, Decimal(0)) / max(1, len(history_cpr))
                    ),
                },
            ),
            Anomaly(
                kind="runaway_agent",
                user_email=members[cast["runaway"]].email.lower(),
                window_start_ms=runaway[0],
                window_end_ms=max((r.ts for r in loop_in_window), default=runaway[1]),
                expected_detector="runaway",
                also_fires=("spend_spike", "zscore"),
                model=MODELS[SONNET].name,
                details={
                    "headless_events": len(loop_in_window),
                    "loop_cost_micros": round_micros(sum((r.charged for r in loop_in_window), 0)),
                    "interval_seconds": "3-8",
                },
            ),
            Anomaly(
                kind="cycle_outlier",
                user_email=members[outlier].email.lower(),
                window_start_ms=cycle_first * DAY_MS,
                window_end_ms=self.now_ms,
                expected_detector="cycle_outlier",
                also_fires=("zscore",),
                model=MODELS[OPUS_MAX].name,
                details={
                    "cycle_spend_micros": round_micros(spends[outlier]),
                    "team_median_micros": round_micros(median),
                },
            ),
        ]

    def _top_model(self, member: int, day: int) -> int:
        stats = self._stats.get((member, day))
        return stats.top_model if stats and stats.top_model is not None else OPUS_HIGH

    def _charged(self, member: int, day: int) -> Money:
        stats = self._stats.get((member, day))
        return stats.charged if stats else 0

    def _cost_per_request(self, member: int, day: int) -> Decimal | None:
        stats = self._stats.get((member, day))
        if not stats or not stats.events:
            return None
        return Decimal(stats.charged) / stats.events

    # ---- drawing events ---------------------------------------------------------------------

    def _draw_everything(self, cast: dict[str, int] | None) -> None:
        """Draw every (member, day) once, in day order per member, keeping only statistics.

        The cycle outlier goes last, sized against everyone else's cycle spend.
        """
        cycle_starts = {d: self.cycle_of(d)[0] for d in range(self.first_day, self.last_day + 1)}
        spike = (cast["spike"], cast["spike_day"]) if cast else None
        outlier = cast["outlier"] if cast else None
        stats_of, day_events = self._stats, self._day_events
        order = [m for m in range(self.developers) if m != outlier]
        for member in [*order, outlier] if outlier is not None else order:
            if member == outlier:
                self._size_outlier(member)
            cum, cycle = 0, -1
            for day in range(self.first_day, self.last_day + 1):
                if cycle_starts[day] != cycle:
                    cum, cycle = 0, cycle_starts[day]
                if (member, day) == spike:
                    self._plans[member, day] = self._spike_plan(member, day)
                _, stats, cum_end = self._draw_day(member, day, cum, keep_rows=False)
                if stats.events:
                    stats_of[member, day] = stats
                    day_events[day] += stats.events
                cum = cum_end

    def _size_outlier(self, member: int) -> None:
        """Give the outlier the volume for a cycle spend of ~15x the others' median."""
        profile = self._profiles[member]
        spends = [int(s.overall_micros) for s in self.cycle_spend(self.last_day)]
        # The median the detector will see, with the outlier itself on top.
        median = statistics.median([v for v in spends if v > 0] + [1 << 62])
        pools = self._pools[profile.context_tier] or self._fill_pools(profile.context_tier)
        shares = [b - a for a, b in pairwise([0, *profile.model_thresholds])]
        per_request = sum(
            share / (1 << 24) * statistics.fmean(shape[2] for shape in pools[model])
            for model, share in enumerate(shares)
            if share
        )
        first = max(self.cycle_of(self.last_day)[0], self.first_day)
        working = sum(
            profile.p_weekend * profile.weekend_factor if (d + 3) % 7 >= 5 else profile.p_weekday
            for d in range(first, self.last_day + 1)
        )
        profile.per_weekday = min(600.0, max(40.0, 15 * median / (per_request * working)))

    def _spike_plan(self, member: int, day: int) -> DayPlan:
        before = [self._charged(member, d) for d in range(day - 7, day)]
        active = [int(c) for c in before if c > 0]
        baseline = sum(active) // max(1, len(active))
        return DayPlan(
            min_charged_micros=max(baseline * 15 // 2, 55_000_000), volume=6.0, force_active=True
        )

    def _draw_day(
        self, member: int, day: int, cum_start: int, *, keep_rows: bool = True
    ) -> tuple[list[EventRow], DayStats, int]:
        """The member's events on `day` inside the window (ascending time), their statistics
        and the plan balance at the end of the day (`keep_rows=False` skips building rows).

        Pure in (seed, member, day, cum_start, plan): drawing a day again gives the same events.
        This is the start-up hot loop (millions of events for big teams), hence one flat loop.
        """
        stats = DayStats(cum_start=cum_start)
        removed = self.members[member].removed_day
        if removed is not None and day >= removed:
            return [], stats, cum_start
        profile = self._profiles[member]
        plan = self._plans.get((member, day)) or _NO_PLAN
        rng = random.Random((self.seed << 42) | (member << 21) | day)  # noqa: S311
        bits = rng.getrandbits
        weekend = (day + 3) % 7 >= 5
        if plan.force_active:
            count = round(profile.per_weekday * plan.volume)
        elif bits(16) < (profile.p_weekend if weekend else profile.p_weekday) * 65_536:
            volume = profile.per_weekday * (profile.weekend_factor if weekend else 1.0)
            count = max(1, round(volume * math.exp(rng.gauss(0, 0.25))))
        elif plan.runaway is None:
            return [], stats, cum_start
        else:
            count = 0  # nobody at the keyboard, but the agent runs on
        start, span = day * DAY_MS + profile.start_ms, profile.span_ms
        stamps = sorted([start + (bits(32) * span >> 32) for _ in range(count)])
        loop: set[int] = set()
        if plan.runaway is not None:  # an agent left running: a request every 3-8 s
            ts, end = plan.runaway
            while ts < end:
                loop.add(ts)
                ts += 3000 + bits(12) * 5000 // 4096
            stamps = sorted(stamps + list(loop))
        forced, minimum = plan.force_model, plan.min_charged_micros
        thresholds, headless_below = profile.model_thresholds, profile.headless_below
        pools = self._pools[profile.context_tier] or self._fill_pools(profile.context_tier)
        shift = 64 - self._pool_bits
        allowance = self.members[member].included_micros
        low, high = self.window_start_ms, self.now_ms
        rows: list[EventRow] = []
        models = [0] * len(MODELS)
        cum, prev = cum_start, -1
        events = charged_sum = usage_charged = included = usage_based = headless = output = 0
        for stamp in stamps:  # a spike day appends to `stamps` while it runs
            a = bits(64)  # bits 0-23 pick the model, 24-39 headless, the top bits the shape
            if loop and stamp in loop:
                model, flags = SONNET, HEADLESS
            else:
                model = forced if forced is not None else bisect_right(thresholds, a & 0xFFFFFF)
                flags = HEADLESS if (a >> 24) & 0xFFFF < headless_below else 0
            ts = prev = stamp if stamp > prev else prev + 1  # (member, timestamp) is unique
            kind, shape_flags, charged, output_tokens, tail = pools[model][a >> shift]
            if kind < 0:
                kind = INCLUDED if cum < allowance else USAGE_BASED
                cum += charged
            if minimum and cum - cum_start < minimum and ts >= stamps[-1]:
                stamps.append(ts + 20_000 + bits(16) * 40_000 // 65_536)  # into the evening
            if low <= ts <= high:
                events += 1
                charged_sum += charged
                if kind == USAGE_BASED:
                    usage_based += 1
                    usage_charged += charged
                elif kind == INCLUDED:
                    included += 1
                headless += flags
                output += output_tokens
                models[model] += 1
                if keep_rows:
                    rows.append(EventRow(ts, member, model, kind, flags | shape_flags, *tail))
        if events:
            stats.generated = stats.events = events
            stats.charged, stats.usage_charged = charged_sum, usage_charged
            stats.included, stats.usage_based = included, usage_based
            stats.errored = events - included - usage_based
            stats.headless, stats.output_tokens = headless // HEADLESS, output
            stats.top_model = models.index(max(models))
        return rows, stats, cum

    def _fill_pools(self, tier: int) -> list[list[_Shape]]:
        """Price a pool of requests per model at one context tier (once, from the seed alone).

        Drawing events then only picks priced shapes from a pool: pricing every request afresh
        made start-up several times slower for big teams.
        """
        pools = self._pools[tier] = [self._fill_pool(tier, model) for model in range(len(MODELS))]
        return pools

    def _fill_pool(self, tier: int, model: int) -> list[_Shape]:
        rng = random.Random(f"{self.seed}:pool:{tier}:{model}")  # noqa: S311
        rand = rng.random
        in_rate, write_rate, read_rate, out_rate, out_factor, has_fee = _RATES[model]
        context = _CONTEXT_TIERS[tier]
        pool: list[_Shape] = []
        for _ in range(1 << self._pool_bits):
            r = rand()
            if r < 0.025:  # failed request: tokens read, nothing charged
                failed: _Tail = (500 + int(rand() * 5000), 0, 0, 0, 0, None, 0, 0, 0)
                pool.append((ERRORED if r < 0.02 else ABORTED, TOKEN_BASED, 0, 0, failed))
                continue
            if r < 0.055:  # request-priced call: no tokenUsage, charged per request
                tenths = _REQUEST_TENTHS[int(rand() * len(_REQUEST_TENTHS))]
                charged = tenths * _MICROS_PER_REQUEST_TENTH
                pool.append((-1, 0, charged, 0, (0, 0, 0, 0, 0, None, 0, charged, tenths)))
                continue
            u = rand()
            inp = 800 + int(u * u * 40_000)
            u = rand()
            out = (150 + int(u * u * 9_000)) * out_factor
            cw = int(rand() * inp * 0.4)
            cr = int(rand() * 2 * context)
            centi = inp * in_rate + cw * write_rate + cr * read_rate + out * out_rate
            shape = rand()
            flags = TOKEN_BASED
            fee: int | None = None
            discount = 0
            if shape < 0.05:  # the older docs' shape: model cost only, no fee field
                flags |= OLD_SHAPE
                charged = total = (centi + 50) // 100
            else:
                fee = (inp + out + cw + cr + 2) // 4 if has_fee else None  # $0.25 per M tokens
                if shape < 0.15:  # a negotiated discount on the model cost, never the fee
                    discount = 10 if shape < 0.10 else 20
                    total = (centi + 500) // 1000 * 10
                else:
                    total = (centi + 50) // 100
                charged = total * (100 - discount) // 100 + (fee or 0)
            tenths = max(1, (total + 2000) // 4000)  # request units: $0.04 each
            tail = (inp, out, cw, cr, total, fee, discount, charged, tenths)
            pool.append((-1, flags, charged, out, tail))
        return pool

    def _user_rows(self, member: int, day: int) -> list[EventRow]:
        """The member's events on `day` (generated and late), newest first."""
        stats = self._stats.get((member, day))
        if stats is None:
            return []
        rows = self._draw_day(member, day, stats.cum_start)[0] if stats.generated else []
        rows += self._late.get((member, day), [])
        rows.sort(key=lambda r: -r.ts)
        return rows

    def _rows(self, day: int, member: int | None) -> list[EventRow]:
        """The day's events of one member, or of everyone, newest first."""
        return self._team_rows(day) if member is None else self._user_rows(member, day)

    def _team_rows(self, day: int) -> list[EventRow]:
        """Everyone's events on `day`, newest first, then by member (cached)."""
        rows = self._cache.get(day)
        if rows is not None:
            self._cache.move_to_end(day)
            return rows
        rows = []
        for member in range(self.developers):
            stats = self._stats.get((member, day))
            if stats is not None:
                if stats.generated:
                    rows += self._draw_day(member, day, stats.cum_start)[0]
                rows += self._late.get((member, day), [])
        rows.sort(key=lambda r: (-r.ts, r.member))
        self._cache[day] = rows
        self._cached_events += len(rows)
        while self._cached_events > self._CACHE_BUDGET and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_events -= len(dropped)
        return rows

    # ---- queries ----------------------------------------------------------------------------

    def _segments(
        self, start_ms: int, end_ms: int, member: int | None
    ) -> Iterator[tuple[int, int, int, list[EventRow] | None]]:
        """(day, count, offset, rows or None) per day with events in range, newest day first.

        `rows` is None for days wholly inside the range, whose counts come from the statistics;
        boundary days are drawn so the range can be cut inside them.
        """
        low = max(start_ms, self.window_start_ms)
        high = min(end_ms, self.now_ms)
        if low > high:
            return
        for day in range(day_of(high), day_of(low) - 1, -1):
            whole = low <= day * DAY_MS and (day + 1) * DAY_MS - 1 <= high
            if whole:
                if member is None:
                    count = self._day_events[day]
                else:
                    stats = self._stats.get((member, day))
                    count = stats.events if stats else 0
                if count:
                    yield day, count, 0, None
                continue
            rows = self._rows(day, member)
            first = bisect_left(rows, -high, key=lambda r: -r.ts)
            last = bisect_right(rows, -low, key=lambda r: -r.ts)
            if last > first:
                yield day, last - first, first, rows

    def count_events(self, start_ms: int, end_ms: int, member: int | None = None) -> int:
        """How many events fall in [start_ms, end_ms] (inclusive), for one member or all."""
        return sum(count for _, count, _, _ in self._segments(start_ms, end_ms, member))

    def events_page(
        self, start_ms: int, end_ms: int, *, member: int | None, offset: int, limit: int
    ) -> tuple[int, list[EventRow]]:
        """(total in range, the events at [offset, offset + limit)), newest first.

        Order: timestamp descending, then member id ascending; (member, timestamp) is unique,
        so pages are stable while nothing is added.
        """
        total, page = 0, list[EventRow]()
        for day, count, first, drawn in self._segments(start_ms, end_ms, member):
            lo, hi = max(offset - total, 0), min(offset + limit - total, count)
            if lo < hi:
                rows = drawn if drawn is not None else self._rows(day, member)
                page += rows[first + lo : first + hi]
            total += count
        return total, page

    def iter_events(
        self, start_ms: int, end_ms: int, member: int | None = None
    ) -> Iterator[EventRow]:
        """Every event in [start_ms, end_ms], newest first (drawn day by day)."""
        for day, count, first, drawn in self._segments(start_ms, end_ms, member):
            rows = drawn if drawn is not None else self._rows(day, member)
            yield from rows[first : first + count]

    def truth(
        self, start_ms: int | None = None, end_ms: int | None = None, member: int | None = None
    ) -> Truth:
        """Events and exact cost per (member, UTC day) in [start_ms, end_ms] (see COST_RULE)."""
        low = self.window_start_ms if start_ms is None else start_ms
        high = self.now_ms if end_ms is None else end_ms
        per: dict[tuple[int, int], list[Money]] = {}  # (day, member) -> [events, cost]
        total_cost: Money = 0
        for day, count, first, drawn in self._segments(low, high, member):
            if drawn is None:  # a whole day: its statistics are the truth
                members = range(self.developers) if member is None else (member,)
                for m in members:
                    stats = self._stats.get((m, day))
                    if stats is not None and stats.events:
                        per[day, m] = [stats.events, stats.charged]
                        total_cost += stats.charged
                continue
            for row in drawn[first : first + count]:
                cell = per.setdefault((day, row.member), [0, 0])
                cell[0] += 1
                cell[1] += row.charged
                total_cost += row.charged
        user_days = [
            UserDayTruth(
                user_email=self.members[m].email.lower(),
                day=day_date(day),
                events=int(cell[0]),
                cost_micros=round_micros(cell[1]),
            )
            for (day, m), cell in sorted(per.items())
        ]
        return Truth(
            start_ms=low,
            end_ms=high,
            total_events=sum(u.events for u in user_days),
            total_cost_micros=round_micros(total_cost),
            user_days=user_days,
        )

    def cycle_spend(self, day: int) -> list[MemberSpend]:
        """Every member's spend in the billing cycle containing `day`, up to now."""
        first, after = self.cycle_of(day)
        days = range(max(first, self.first_day), min(after, self.last_day + 1))
        result = []
        for member in self.members:
            overall: Money = 0
            usage: Money = 0
            usage_events = 0
            for d in days:
                stats = self._stats.get((member.index, d))
                if stats is not None:
                    overall += stats.charged
                    usage += stats.usage_charged
                    usage_events += stats.usage_based
            result.append(MemberSpend(member, overall, usage, usage_events))
        return result

    def days_in(self, start_ms: int, end_ms: int) -> range:
        """The simulated UTC days that overlap [start_ms, end_ms]."""
        return range(max(day_of(start_ms), self.first_day), min(day_of(end_ms), self.last_day) + 1)

    # ---- late events ------------------------------------------------------------------------

    def add_late_event(
        self,
        *,
        timestamp_ms: int,
        email: str,
        model: str,
        charged_cents: Decimal | None,
        total_cents: Decimal | None = None,
        fee_cents: Decimal | None = None,
        kind: str = "Usage-based",
        headless: bool = False,
    ) -> EventRow:
        """Insert an event now that belongs in the past (a provider's late arrival).

        Without `charged_cents` the event is served in the older shape (no chargedCents). The
        cache, counts, spend and truth all include it from now on.
        """
        member = self.member_by_email(email)
        if member is None:
            raise InvalidSimRequestError(f"{email!r} is not in the team")
        if not self.window_start_ms <= timestamp_ms <= self.now_ms:
            raise InvalidSimRequestError(
                f"timestamp must lie in the simulated window "
                f"[{self.window_start_ms}, {self.now_ms}]"
            )
        if kind not in KIND_NAMES:
            raise InvalidSimRequestError(f"kind must be one of {', '.join(KIND_NAMES)}")
        if charged_cents is None and total_cents is None:
            raise InvalidSimRequestError("give charged_cents or total_cents")
        for value in (charged_cents, total_cents, fee_cents):
            _check_cents(value)
        day = day_of(timestamp_ms)
        if any(r.ts == timestamp_ms for r in self._user_rows(member.index, day)):
            raise DuplicateEventError(f"{member.email} already has an event at {timestamp_ms}")
        cost = cost_micros_from_cents(charged_cents, total_cents, fee_cents)
        if total_cents is None:  # the model cost is what the fee leaves of the charge
            total_cents = max(Decimal(0), (charged_cents or Decimal(0)) - (fee_cents or 0))
        total = _micros(total_cents)
        flags = TOKEN_BASED | (HEADLESS if headless else 0)
        if charged_cents is None:
            flags |= OLD_SHAPE
        if model not in MODEL_INDEX:
            raise InvalidSimRequestError(f"model must be one of {', '.join(MODEL_INDEX)}")
        row = EventRow(
            ts=timestamp_ms,
            member=member.index,
            model=MODEL_INDEX[model],
            kind=KIND_NAMES.index(kind),
            flags=flags,
            input_tokens=0,
            output_tokens=0,
            cache_write_tokens=0,
            cache_read_tokens=0,
            total=total,
            fee=None if fee_cents is None else _micros(fee_cents),
            discount=0,
            charged=_exact(cost),
            request_tenths=0,
        )
        self._late.setdefault((member.index, day), []).append(row)
        stats = self._stats.get((member.index, day))
        if stats is None:
            stats = self._stats[member.index, day] = DayStats(cum_start=0)
        stats.add(row)
        self._day_events[day] += 1
        if day in self._cache:
            self._cached_events -= len(self._cache.pop(day))
        return row


def _thresholds(weights: list[float]) -> list[int]:
    """Cumulative weights scaled so a uniform 24-bit draw picks by bisect_right."""
    cumulative = list(accumulate(weights))
    return [round(c / cumulative[-1] * (1 << 24)) for c in cumulative]


def _check_cents(value: Decimal | None) -> None:
    if value is None:
        return
    if not value.is_finite() or value < 0:
        raise InvalidSimRequestError("cents must be finite and not negative")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise InvalidSimRequestError("cents may have at most 6 decimals")
    if value >= 10**8:  # with 6 decimals, 14 digits: a JSON float still shows it exactly
        raise InvalidSimRequestError("cents must be below 10^8")


def _micros(cents: Decimal | None) -> Money:
    return _exact((cents or Decimal(0)) * MICROS_PER_CENT)


def _exact(value: Decimal) -> Money:
    """An int when the value is whole (the common case), else the exact Decimal."""
    return int(value) if value == value.to_integral_value() else value
