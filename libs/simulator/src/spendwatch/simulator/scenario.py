"""A labelled scenario for the detection-quality benchmark: usage events plus the answer key.

`build_scenario(seed=7, developers=200, days=90)` returns a `Scenario`: a team, its usage events
over `days` days before `end` (UTC), the billing cycles, the thresholds to run the detectors
with, and every injected incident with its exact onset and end. Everything follows from the
arguments; nothing reads the clock. Money is integer micro-dollars (1 USD = 1,000,000), priced
per token with `spendwatch.simulator.models`; each request's cost is the model cost (rounded to
a micro-dollar) plus the Cursor Token Fee of $0.25 per million tokens where it applies.

Normal behaviour (personas)
---------------------------
Every developer has a UTC offset (60 % Europe: +0/+1/+2, 40 % US: -5/-6/-8), working hours in
local time, a weekday rhythm (Fridays lighter), day-to-day lognormal noise (sigma 0.22, plus an
occasional busy day; never above 2.5x their own normal), a personal model mix (mostly sonnet,
opus, composer and gpt; `claude-4.6-opus-max-thinking-fast` never appears in normal traffic), a
context size, a small share of headless (background agent) requests and a plan with an included
amount per billing cycle ($150, or $400 for a quarter of the seats); once a cycle's included
amount is used up, the rest of the cycle is `usage_based`.

- `regular`: about 44 requests per working day (18-75), roughly $15-20 a day; half of them
  never work weekends, the rest now and then for a short session.
- `heavy`: 80-105 requests a day with big contexts and more opus, steadily 3-5x the team median
  every working day from the first day.
- `light`: 5-14 requests on about half the working days.
- `new_hire`: joins during the scenario and ramps from 25 % to full volume over two weeks.
- `vacationer`: a regular with one or two vacations of 1-3 weeks (nothing at all), then back to
  normal.
- `weekend_worker`: works most weekends at nearly weekday volume.
- `night_owl`: works 14:00-02:00 local time.
- `leaver`: leaves the team during the scenario (no events after `left_at`).

While the team-budget incident runs (one billing cycle, from its fourth day), every non-heavy
developer's normal days are busier by the same factor (+15-60 %, usually about +40 %): the team
runs hot. Heavy users are already at their ceiling and stay as they are. In a small team the
cycle hogs go into that cycle too (each of them moves a small team's cycle spend a lot).

Incidents (label onset = first event of the abnormal behaviour; cap and budget kinds: the first
moment the documented condition holds; end = last abnormal event, or the cycle's end for caps)
---------------------------------------------------------------------------------------------
None starts in the first 21 days; each kind happens max(4, developers // 40) times (team_budget
once: it is a cycle-long team event), on different people, spread over the rest of the
scenario; a person never has two incidents within two days of each other.

- `spend_spike`: one working day at 6-12x the person's normal spend, at least $60.
- `runaway_agent`: a headless loop, one request every 3-8 s on a cheap model for 2-5 h, mostly
  in the evening or at night.
- `short_burst`: 15-30 minutes of very expensive opus-max calls, at least $25, inside an
  otherwise normal working day.
- `model_switch`: 1-3 working days on `claude-4.6-opus-max-thinking-fast` at the normal request
  count.
- `context_bloat`: 1-2 working days with the usual models and request count but 6-10x the tokens
  per request (about 5x the cost per request), at least $25 a day.
- `cycle_hog`: from early in a billing cycle, daily usage grows ~55-80 % per working day (faster
  if the cycle is short) until the person's cycle spend passes 12x the team median, and stops
  a working day or more later (once their cycle spend is past the user cycle cap or sure to
  stay under it).
- `weekend_burst`: someone who never works weekends spends at least $60 on a Saturday or Sunday.
- `gradual_creep`: daily spend grows ~28-38 % per working day for 6-7 days to 5x normal and stays
  there for 4-7 working days.
- `dormant_return`: on the first night back from a vacation of at least two weeks, at least $150
  is spent between 23:00 and 05:30 local time (a leaked key).
- `request_flood`: more requests in one UTC day than the requests cap, all tiny and cheap.
- `token_flood`: more tokens in one UTC day than the tokens cap (huge cache reads).
- `user_cycle_cap`: a person's cycle spend crosses the user cycle cap (a top spender works
  ~1.3-3x their normal from the cycle's start); onset = the crossing event, end = the cycle's
  end. Their busier days before the onset are not labelled.
- `team_budget`: the team's cycle spend crosses the team budget (subject "team").

Caps come from the data (with the hot cycle at its highest possible boost): user cycle cap =
1.15x the highest normal cycle spend; requests and tokens caps = 1.5x the most requests and
tokens anyone made in a UTC day, counting the days of the user-cycle-cap people as normal (a
lot of legitimate work must not cross a daily cap before their onset); the team budget keeps
every other cycle at or below 85 % of it and is crossed late in the hot cycle. The builder
checks every guarantee (each cap crossing lies inside an incident of that subject or within 24
hours after its end, since an incident's requests count for the rest of that UTC day; every
incident meets its documented condition; unique per-user timestamps) and raises
`ScenarioError` if one fails.
"""

from __future__ import annotations

import math
import random
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate, pairwise
from typing import Final, NamedTuple

from spendwatch.common.errors import ConfigError
from spendwatch.simulator.errors import ScenarioError
from spendwatch.simulator.models import MODEL_INDEX, MODELS, cost_centimicros

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
MINUTE_MS: Final = 60_000
USD: Final = 1_000_000  # micro-dollars
WARMUP_DAYS: Final = 21
DEFAULT_END: Final = datetime(2026, 6, 1, tzinfo=UTC)
TEAM: Final = "team"

INCLUDED: Final = "included"
USAGE_BASED: Final = "usage_based"

PERSONAS: Final = (
    "regular",
    "heavy",
    "light",
    "new_hire",
    "vacationer",
    "weekend_worker",
    "night_owl",
    "leaver",
)
INCIDENT_KINDS: Final[dict[str, tuple[str, ...]]] = {
    "spend_spike": ("spend_spike",),
    "runaway_agent": ("runaway",),
    "short_burst": ("runaway",),
    "model_switch": ("expensive_model", "cost_per_request"),
    "context_bloat": ("cost_per_request",),
    "cycle_hog": ("cycle_outlier",),
    "weekend_burst": ("seasonal", "spend_spike"),
    "gradual_creep": ("seasonal",),
    "dormant_return": ("seasonal", "spend_spike"),
    "request_flood": ("requests_cap",),
    "token_flood": ("tokens_cap",),
    "user_cycle_cap": ("user_cycle_cap",),
    "team_budget": ("team_budget",),
}
"""Every incident kind and the detectors that should catch it."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_AUTO, _COMPOSER, _HAIKU, _GPT = (
    MODEL_INDEX[name] for name in ("auto", "composer-1.5", "claude-4.5-haiku", "gpt-5.2")
)
_OPUS, _OPUS_THINKING, _OPUS_MAX, _FAST = (
    MODEL_INDEX[name]
    for name in (
        "claude-4.6-opus-high",
        "claude-4.6-opus-high-thinking",
        "claude-4.6-opus-max",
        "claude-4.6-opus-max-thinking-fast",
    )
)
# How often a developer picks each model (the order of MODELS); never the ~10x model.
_BASE_WEIGHTS: Final = (4.0, 14.0, 3.0, 12.0, 28.0, 8.0, 18.0, 8.0, 1.0, 0.0)
_WEEKDAY_FACTOR: Final = (0.95, 1.05, 1.05, 1.0, 0.85, 1.0, 1.0)  # Monday first
_POOL_BITS: Final = 12
_UTC_OFFSETS: Final = ((0, 0.15), (1, 0.30), (2, 0.15), (-5, 0.20), (-6, 0.08), (-8, 0.12))
_STANDARD_INCLUDED: Final = 150 * USD
_PREMIUM_INCLUDED: Final = 400 * USD
_BOOST_MIN: Final = 1.15
_BOOST_MAX: Final = 1.6
_TEAM_SHARE: Final = 0.85  # every other cycle stays at or below this share of the budget
_HOG_RATIO: Final = 12
_FIRST_NAMES: Final = (
    "Ada", "Ben", "Cleo", "Dario", "Edith", "Femi", "Greta", "Hugo", "Isla", "Jamal", "Kira",
    "Liam", "Maya", "Nils", "Omar", "Paula", "Quinn", "Rosa", "Sven", "Tala", "Umar", "Vivian",
    "Wanda", "Xiu", "Yosef", "Zelda", "Arjun", "Bruna", "Cyril", "Dalia", "Emil", "Farah",
    "Gideon", "Hilde", "Ilan", "Joana", "Kofi", "Lucia", "Marek", "Nadia", "Otto", "Pilar",
    "Ravi", "Selma", "Tomas", "Ursula", "Vikram", "Willa", "Yuki", "Zoran",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Abbott", "Bauer", "Castro", "Dubois", "Eriksen", "Fischer", "Gomez", "Hansen", "Ito",
    "Jensen", "Kowalski", "Larsen", "Meyer", "Novak", "Okafor", "Petrov", "Quispe", "Rossi",
    "Schmidt", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zimmer", "Almeida",
    "Brandt", "Costa", "Dimitrov", "Engel", "Ferreira", "Gruber", "Horvat", "Iqbal", "Jovanovic",
    "Keller", "Lindqvist", "Moreau", "Nakamura", "Olsen", "Popescu", "Richter", "Santos",
    "Takahashi", "Vogel", "Wagner", "Young", "Zhang", "Kim",
)  # fmt: skip


class ScenarioEvent(NamedTuple):
    """One usage event (one request) of the scenario."""

    occurred_at: datetime  # aware UTC, millisecond precision
    user_email: str  # lower-case
    model: str  # a MODELS name
    kind: str  # "included" | "usage_based"
    cost_micros: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    request_units: Decimal
    is_headless: bool
    max_mode: bool
    event_id: str  # unique and stable


@dataclass(frozen=True)
class Developer:
    """A team member of the scenario."""

    email: str
    name: str
    joined_at: datetime
    left_at: datetime | None
    included_micros: int  # the plan's included amount per billing cycle
    persona: str
    utc_offset_hours: int = 0  # where they work: local time = UTC + this


@dataclass(frozen=True)
class LabelledIncident:
    """An injected incident: who, when exactly, and which detectors should catch it."""

    incident_id: str
    kind: str
    subject: str  # a user e-mail, or "team"
    onset: datetime
    end: datetime
    expected_detectors: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Scenario:
    """A labelled scenario: the team, its usage events and the answer key."""

    seed: int
    start: datetime
    end: datetime
    timezone: str
    developers: list[Developer]
    cycle_starts: list[date]
    incidents: list[LabelledIncident]
    detection_settings: dict[str, dict[str, int | str]]
    events: list[ScenarioEvent]

    def developer_days(self) -> int:
        """Days each developer was on the team within [start, end), summed (rounded)."""
        total = timedelta(0)
        for dev in self.developers:
            lo = max(self.start, dev.joined_at)
            hi = min(self.end, dev.left_at or self.end)
            if hi > lo:
                total += hi - lo
        return round(total / timedelta(days=1))

    def cycle_of(self, moment: datetime) -> tuple[date, date]:
        """(first day, first day of the next cycle) of the billing cycle containing `moment`."""
        when = moment.astimezone(UTC).date()
        index = bisect_right(self.cycle_starts, when) - 1
        if index < 0:
            raise ValueError(f"{moment} lies before the first billing cycle")
        first = self.cycle_starts[index]
        after = (
            self.cycle_starts[index + 1]
            if index + 1 < len(self.cycle_starts)
            else _add_months(first, 1)
        )
        return first, after


def build_scenario(
    *, seed: int = 7, developers: int = 200, days: int = 90, end: datetime | None = None
) -> Scenario:
    """Build the labelled scenario for (seed, developers, days, end); raises ScenarioError if a
    guarantee fails (a bug, not bad luck: the result is deterministic)."""
    if not 30 <= developers <= 2000:
        raise ConfigError(f"developers must be 30..2000, not {developers}")
    if not 40 <= days <= 180:
        raise ConfigError(f"days must be 40..180, not {days}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, not {seed}")
    moment = DEFAULT_END if end is None else end
    if moment.tzinfo is None:
        raise ConfigError("end must be timezone-aware")
    return _Builder(seed, developers, days, moment.astimezone(UTC)).build()


# ---- internals ----------------------------------------------------------------------------

_Raw = tuple[int, int, int, int, int, int, int, int, bool, int]
"""(ms, model, input, output, cache read, cache write, cost micros, request tenths, headless,
incident tag or -1)"""
_Contrib = list[tuple[int, int, int, int]]
"""(UTC day, requests, tokens, cost micros) per UTC day a local day's events fall on."""


@dataclass(slots=True)
class _Person:
    index: int
    email: str
    name: str
    persona: str
    offset_hours: int
    joined_day: int
    left_day: int | None
    included_micros: int
    rpd: float  # requests on a full working day
    ctx: float  # context size factor
    p_weekday: float
    p_weekend: float
    weekend_factor: float
    start_min: float  # local minute the working day starts
    span_min: float
    model_cum: list[float]
    headless_p: float
    vacations: list[tuple[int, int]] = field(default_factory=list)  # inclusive local days

    @property
    def offset_ms(self) -> int:
        return self.offset_hours * HOUR_MS

    def present(self, day: int) -> bool:
        if day < self.joined_day or (self.left_day is not None and day >= self.left_day):
            return False
        return not any(lo <= day <= hi for lo, hi in self.vacations)


@dataclass(frozen=True, slots=True)
class _Override:
    """How an incident changes one (person, local day)."""

    tag: int
    force_active: bool = True
    noisy: bool = False  # keep the normal day-to-day noise
    volume: float = 1.0  # x the person's normal request count
    k_in: float = 1.0  # x input and cache-write tokens
    k_cr: float = 1.0  # x cache-read tokens
    k_out: float = 1.0
    model: int | None = None
    min_spend: int = 0  # before the team boost
    max_spend: int = 0
    boostable: bool = True


@dataclass(frozen=True, slots=True)
class _Block:
    """Extra requests an incident adds (a loop, a burst, a flood) at absolute UTC times."""

    tag: int
    day: int  # the local day it belongs to
    start_ms: int
    end_ms: int
    gap_lo_ms: int
    gap_hi_ms: int
    models: tuple[int, ...]
    k_in: float
    k_cr: float
    k_out: float
    headless: bool
    min_spend: int = 0
    hard_end_ms: int = 0
    count: int = 0  # > 0: exactly this many, evenly spread over [start, end)
    cr_fixed: int = 0


@dataclass(slots=True)
class _Plan:
    """An incident being built: the reserved days and what the label needs."""

    kind: str
    dev: int  # -1: the team
    tag: int
    first_day: int
    last_day: int
    facts: dict[str, float | int | str] = field(default_factory=dict)
    cycle: int = -1


@dataclass(slots=True)
class _TagStats:
    first_ms: int = 1 << 62
    last_ms: int = 0
    requests: int = 0
    spend: int = 0
    tokens: int = 0
    day_spend: dict[int, int] = field(default_factory=dict)  # per local day


def _add_months(value: date, months: int) -> date:
    month0 = value.month - 1 + months
    return value.replace(year=value.year + month0 // 12, month=month0 % 12 + 1)


def _day_number(value: date) -> int:
    return (value - date(1970, 1, 1)).days


def _day_date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day)


def _usd(micros: float) -> str:
    return f"${micros / USD:,.2f}"


def _ceil_to(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _spiral(limit: int) -> Iterator[int]:
    yield 0
    for step in range(1, limit + 1):
        yield step
        yield -step


class _Builder:
    """Builds one scenario.

    Order: people and cycles; the hot cycle; dormant returns (they shape vacations); pass one
    draws everyone's normal days (statistics only); the user cycle cap; the incidents (each
    placement checked against the user cycle cap; the daily caps once the user-cycle-cap
    incidents are in); the cycle hogs' growth, against the median all that produces; the team
    budget and boost; the final pass draws the events; labels and checks.
    Every (person, local day) draws from its own random stream, so a day drawn twice with the
    same plan is the same day.
    """

    def __init__(self, seed: int, developers: int, days: int, end: datetime) -> None:
        self.seed = seed
        self.n_devs = developers
        self.days = days
        self.end = end
        self.start = end - timedelta(days=days)
        self.end_ms = round((end - _EPOCH) / timedelta(milliseconds=1))
        self.start_ms = self.end_ms - days * DAY_MS
        self.start_day = self.start_ms // DAY_MS
        self.last_day = (self.end_ms - 1) // DAY_MS
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
        self.per_kind = max(4, developers // 40)
        self.people: list[_Person] = []
        self.pools = [self._pool(m) for m in range(len(MODELS))]
        self.overrides: dict[tuple[int, int], _Override] = {}
        self.blocks: dict[int, list[_Block]] = {}
        self.plans: list[_Plan] = []
        self.busy: dict[int, list[tuple[int, int]]] = {}
        self.kind_devs: dict[str, set[int]] = {}
        self.boost = 1.0
        # pass-1 statistics: per (person, local day)
        self.p1: dict[tuple[int, int], _Contrib] = {}
        self.p1_spend: dict[tuple[int, int], int] = {}
        self.p1_count: dict[tuple[int, int], int] = {}
        self.ov_cache: dict[tuple[int, int], tuple[_Override, _Contrib]] = {}
        self.block_cache: dict[tuple[int, int], _Contrib] = {}

    # ---- the whole build ---------------------------------------------------------------------

    def build(self) -> Scenario:
        self._cycles()
        self._make_people()
        self._choose_hot_cycle()
        self._place_dormant_returns()
        self._pass_one()
        self._user_cap()
        self._place_incidents()
        self._size_cycle_hogs()
        self._size_team_budget()
        events, stats = self._materialise()
        incidents = self._label_and_verify(events, stats)
        settings: dict[str, dict[str, int | str]] = {
            "static_caps": {
                "user_daily_requests": self.requests_cap,
                "user_daily_tokens": self.tokens_cap,
                "user_cycle_spend_usd": str(self.user_cap // USD),
                "team_cycle_budget_usd": str(self.budget // USD),
            }
        }
        return Scenario(
            seed=self.seed,
            start=self.start,
            end=self.end,
            timezone="UTC",
            developers=[self._developer(p) for p in self.people],
            cycle_starts=[_day_date(d) for d in self.cycle_days],
            incidents=incidents,
            detection_settings=settings,
            events=events,
        )

    # ---- team, cycles -----------------------------------------------------------------------

    def _cycles(self) -> None:
        anchor = self.rng.randint(1, 28)
        first = _day_date(self.start_day)
        cycle = first.replace(day=anchor)
        if first.day < anchor:
            cycle = _add_months(cycle, -1)
        starts = []
        while _day_number(cycle) <= self.last_day:
            starts.append(_day_number(cycle))
            cycle = _add_months(cycle, 1)
        self.cycle_days = starts
        self.cycle_ends = [*starts[1:], _day_number(cycle)]  # exclusive

    def _cycle_index(self, day: int) -> int:
        return bisect_right(self.cycle_days, day) - 1

    def _make_people(self) -> None:
        rng, n = self.rng, self.n_devs
        counts = {
            "heavy": max(5, round(0.10 * n)),
            "light": max(3, round(0.15 * n)),
            "new_hire": max(2, round(0.06 * n)),
            "vacationer": max(self.per_kind + 2, round(0.15 * n)),
            "weekend_worker": max(2, round(0.05 * n)),
            "night_owl": max(2, round(0.05 * n)),
            "leaver": max(2, round(0.04 * n)),
        }
        personas = [p for p, c in counts.items() for _ in range(c)]
        if len(personas) > n - 10:
            raise ConfigError(f"{n} developers are too few for the personas")
        personas += ["regular"] * (n - len(personas))
        rng.shuffle(personas)
        names = [(f, la) for f in _FIRST_NAMES for la in _LAST_NAMES]
        rng.shuffle(names)
        offsets, weights = zip(*_UTC_OFFSETS, strict=True)
        for index, persona in enumerate(personas):
            first, last = names[index % len(names)]
            suffix = "" if index < len(names) else str(index // len(names) + 1)
            self.people.append(
                self._person(
                    rng,
                    index,
                    persona,
                    f"{first}.{last}{suffix}".lower() + "@example.com",
                    f"{first} {last}",
                    rng.choices(offsets, weights)[0],
                )
            )

    def _person(
        self, rng: random.Random, index: int, persona: str, email: str, name: str, offset: int
    ) -> _Person:
        days = self.days
        rpd = min(75.0, max(18.0, rng.lognormvariate(math.log(44), 0.3)))
        ctx = min(1.6, max(0.65, rng.lognormvariate(0.0, 0.2)))
        p_weekday = rng.uniform(0.88, 0.97)
        p_weekend = 0.0 if rng.random() < 0.5 else rng.uniform(0.04, 0.12)
        weekend_factor = rng.uniform(0.2, 0.4)
        start_min = rng.uniform(8 * 60, 10 * 60)
        span_min = rng.uniform(8 * 60, 9.5 * 60)
        weights = [w * math.exp(rng.gauss(0, 0.5)) for w in _BASE_WEIGHTS]
        weights[rng.choice((1, 3, 4, 4, 6))] *= 3  # a favourite
        joined = self.start_day - rng.randint(30, 700)
        left = None
        if persona == "heavy":
            rpd, ctx = rng.uniform(80, 105), rng.uniform(1.45, 1.7)
            p_weekday, p_weekend = rng.uniform(0.93, 0.99), rng.uniform(0.05, 0.2)
            weekend_factor = rng.uniform(0.3, 0.5)
            weights[_OPUS] *= 2
            weights[_OPUS_THINKING] *= 2
        elif persona == "light":
            rpd, ctx = rng.uniform(5, 14), rng.uniform(0.6, 0.9)
            p_weekday = rng.uniform(0.45, 0.75)
        elif persona == "weekend_worker":
            p_weekend, weekend_factor = rng.uniform(0.6, 0.85), rng.uniform(0.6, 1.0)
        elif persona == "night_owl":
            start_min, span_min = rng.uniform(14 * 60, 16 * 60), rng.uniform(10 * 60, 11 * 60)
            p_weekend = rng.uniform(0.1, 0.3)
        elif persona == "new_hire":
            joined = self.start_day + rng.randint(10, days - 25)
        elif persona == "leaver":
            left = self.start_day + rng.randint(30, days - 5)
        person = _Person(
            index=index,
            email=email,
            name=name,
            persona=persona,
            offset_hours=offset,
            joined_day=joined,
            left_day=left,
            included_micros=_PREMIUM_INCLUDED if rng.random() < 0.25 else _STANDARD_INCLUDED,
            rpd=rpd,
            ctx=ctx,
            p_weekday=p_weekday,
            p_weekend=p_weekend,
            weekend_factor=weekend_factor,
            start_min=start_min,
            span_min=span_min,
            model_cum=list(accumulate(w / sum(weights) for w in weights)),
            headless_p=rng.uniform(0.0, 0.05),
        )
        if persona == "vacationer":
            for _ in range(rng.choice((1, 1, 2))):
                length = rng.randint(7, 21)
                lo = self.start_day + rng.randint(0, days - length)
                if not any(a - 10 <= lo + length and lo <= b + 10 for a, b in person.vacations):
                    person.vacations.append((lo, lo + length - 1))
        return person

    def _developer(self, p: _Person) -> Developer:
        return Developer(
            email=p.email,
            name=p.name,
            joined_at=_EPOCH + timedelta(days=p.joined_day),
            left_at=None if p.left_day is None else _EPOCH + timedelta(days=p.left_day),
            included_micros=p.included_micros,
            persona=p.persona,
            utc_offset_hours=p.offset_hours,
        )

    def _choose_hot_cycle(self) -> None:
        """The cycle in which the whole team runs hot (the team-budget incident)."""
        candidates = []
        hog_cycles = self._hog_cycles()
        for index, (first, after) in enumerate(zip(self.cycle_days, self.cycle_ends, strict=True)):
            lo, hi = max(first, self.start_day), min(after, self.last_day + 1)
            if hi - lo >= 12 and hi - self.start_day >= WARMUP_DAYS + 5:
                candidates.append((index in hog_cycles, hi - lo >= 28, index))
        if not candidates:
            raise ConfigError("no billing cycle is long enough for the team-budget incident")
        # Preferably one a cycle hog can use too: in a small team the hogs must go there.
        best = max(c[:2] for c in candidates)
        self.hot = self.rng.choice([c for c in candidates if c[:2] == best])[2]
        first = max(self.cycle_days[self.hot], self.start_day)
        self.boost_first = first + 3
        self.boost_end = self.cycle_ends[self.hot]  # exclusive
        tag = self._new_plan("team_budget", -1, first, self.boost_end - 1).tag
        self.team_tag = tag

    def _boostable(self, p: _Person, day: int) -> bool:
        return p.persona != "heavy" and self.boost_first <= day < self.boost_end

    # ---- generation -------------------------------------------------------------------------

    def _pool(self, model: int) -> list[tuple[int, int, int, int]]:
        """Token shapes at context factor 1 (input, cache write, cache read, output)."""
        rng = random.Random(self.seed * 1000 + model)  # noqa: S311
        thinking = 2 if MODELS[model].thinking else 1
        pool = []
        for _ in range(1 << _POOL_BITS):
            inp = 2000 + int(min(rng.lognormvariate(math.log(24_000), 0.8), 240_000))
            cw = int(inp * rng.uniform(0.1, 0.5))
            cr = int(min(rng.lognormvariate(math.log(200_000), 0.9), 1_500_000))
            out = int(min(rng.lognormvariate(math.log(2_200), 0.7), 30_000)) * thinking
            pool.append((inp, cw, cr, out))
        return pool

    def _request(
        self,
        rng: random.Random,
        ms: int,
        model: int,
        k_in: float,
        k_cr: float,
        k_out: float,
        headless: bool,
        tag: int,
        cr_fixed: int = 0,
    ) -> _Raw:
        s_in, s_cw, s_cr, s_out = self.pools[model][rng.getrandbits(_POOL_BITS)]
        inp, cw, out = int(s_in * k_in), int(s_cw * k_in), max(1, int(s_out * k_out))
        cr = cr_fixed or int(s_cr * k_cr)
        spec = MODELS[model]
        centi = cost_centimicros(
            spec, input_tokens=inp, output_tokens=out, cache_write=cw, cache_read=cr
        )
        model_micros = (centi + 50) // 100
        fee = (inp + out + cw + cr + 2) // 4 if spec.token_fee else 0
        tenths = max(1, (model_micros + 2000) // 4000)  # one request unit = $0.04
        return (ms, model, inp, out, cr, cw, model_micros + fee, tenths, headless, tag)

    def _day(self, p: _Person, day: int, boost: float, ov: _Override | None) -> list[_Raw]:
        """A person's requests on one local day (ascending); pure in (seed, person, day, plan)."""
        rng = random.Random((self.seed << 40) | (p.index << 20) | (day & 0xFFFFF))  # noqa: S311
        rand = rng.random
        u_active, noise = rand(), math.exp(rng.gauss(0.0, 0.22))
        busy, busy_f, jitter = rand(), 1.5 + 0.7 * rand(), rng.gauss(0.0, 20.0)
        if not p.present(day):
            return []
        weekday = (day + 3) % 7
        weekend = weekday >= 5
        if (ov is None or not ov.force_active) and u_active >= (
            p.p_weekend if weekend else p.p_weekday
        ):
            return []
        ramp = 1.0
        if p.persona == "new_hire":
            ramp = min(1.0, 0.25 + 0.75 * (day - p.joined_day) / 14)
        base = p.rpd * ramp * (p.weekend_factor if weekend else _WEEKDAY_FACTOR[weekday])
        factor = 1.0
        if ov is None or ov.noisy:
            factor = min(2.5, noise * (busy_f if busy < 0.04 else 1.0))
        boost = boost if ov is None or ov.boostable else 1.0
        volume = ov.volume if ov else 1.0
        count = max(1, round(base * factor * volume * boost))
        if weekend and p.persona != "night_owl":
            start_min, span_min = 600 + 150 * rand(), 180 + 180 * rand()
        else:
            start_min, span_min = p.start_min + jitter, p.span_min
        t0 = day * DAY_MS + int(start_min * MINUTE_MS) - p.offset_ms
        span = int(span_min * MINUTE_MS)
        stamps = sorted(t0 + int(rand() * span) for _ in range(count))
        k_in = p.ctx * (ov.k_in if ov else 1.0)
        k_cr = p.ctx * (ov.k_cr if ov else 1.0)
        k_out = ov.k_out if ov else 1.0
        forced = ov.model if ov else None
        tag = ov.tag if ov else -1
        min_spend = int(ov.min_spend * boost) if ov else 0
        max_spend = int(ov.max_spend * boost) if ov else 0
        cum, hp = p.model_cum, p.headless_p
        rows: list[_Raw] = []
        total = 0
        for ms in stamps:
            model = forced if forced is not None else bisect_right(cum, rand())
            row = self._request(rng, ms, model, k_in, k_cr, k_out, rand() < hp, tag)
            if max_spend and total + row[6] > max_spend:
                break
            total += row[6]
            rows.append(row)
        ms = stamps[-1]
        while min_spend and total < min_spend:  # into the evening until the day is big enough
            ms += 60_000 + int(rand() * 240_000)
            model = forced if forced is not None else bisect_right(cum, rand())
            row = self._request(rng, ms, model, k_in, k_cr, k_out, rand() < hp, tag)
            total += row[6]
            rows.append(row)
        return rows

    def _block(self, b: _Block) -> list[_Raw]:
        rng = random.Random(f"{self.seed}:block:{b.tag}:{b.start_ms}")  # noqa: S311
        rand = rng.random
        stamps: list[int] = []
        if b.count:
            step = (b.end_ms - b.start_ms) / b.count
            stamps = [b.start_ms + int((i + 0.8 * rand()) * step) for i in range(b.count)]
        else:
            ms = b.start_ms
            while ms < b.end_ms:
                stamps.append(ms)
                ms += b.gap_lo_ms + int(rand() * (b.gap_hi_ms - b.gap_lo_ms))
        rows = []
        total = 0
        for ms in stamps:
            model = b.models[int(rand() * len(b.models))]
            row = self._request(
                rng, ms, model, b.k_in, b.k_cr, b.k_out, b.headless, b.tag, b.cr_fixed
            )
            total += row[6]
            rows.append(row)
        ms = stamps[-1]
        while total < b.min_spend and (not b.hard_end_ms or ms < b.hard_end_ms):
            ms += b.gap_lo_ms + int(rand() * (b.gap_hi_ms - b.gap_lo_ms))
            model = b.models[int(rand() * len(b.models))]
            row = self._request(
                rng, ms, model, b.k_in, b.k_cr, b.k_out, b.headless, b.tag, b.cr_fixed
            )
            total += row[6]
            rows.append(row)
        return rows

    def _keep(self, p: _Person, rows: list[_Raw]) -> list[_Raw]:
        lo = max(self.start_ms, p.joined_day * DAY_MS)
        hi = self.end_ms if p.left_day is None else min(self.end_ms, p.left_day * DAY_MS)
        return [r for r in rows if lo <= r[0] < hi]

    @staticmethod
    def _contrib(rows: list[_Raw]) -> _Contrib:
        per: dict[int, list[int]] = {}
        for r in rows:
            cell = per.setdefault(r[0] // DAY_MS, [0, 0, 0])
            cell[0] += 1
            cell[1] += r[2] + r[3] + r[4] + r[5]
            cell[2] += r[6]
        return [(d, c[0], c[1], c[2]) for d, c in sorted(per.items())]

    def _local_days(self) -> range:
        return range(self.start_day - 1, self.last_day + 2)

    def _pass_one(self) -> None:
        """Everyone's normal days (no incidents, no boost): statistics only."""
        for p in self.people:
            for day in self._local_days():
                rows = self._keep(p, self._day(p, day, 1.0, None))
                if rows:
                    self.p1[p.index, day] = self._contrib(rows)
                    self.p1_spend[p.index, day] = sum(r[6] for r in rows)
                    self.p1_count[p.index, day] = len(rows)

    def _user_cap(self) -> None:
        """The user cycle cap: above every normal cycle, the hot one at its highest boost."""
        cycles: dict[tuple[int, int], float] = {}
        for (dev, day), contrib in self.p1.items():
            factor = _BOOST_MAX if self._boostable(self.people[dev], day) else 1.0
            for uday, _, _, spend in contrib:
                key = (dev, self._cycle_index(uday))
                cycles[key] = cycles.get(key, 0) + spend * factor
        self.user_cap = _ceil_to(1.15 * max(cycles.values()), 100 * USD)

    def _daily_caps(self) -> None:
        """Requests and tokens caps 1.5x above any normal UTC day (the hot cycle at its highest
        boost), counting the days of people on their way to the user cycle cap as normal: a
        lot of legitimate work, which must not cross a daily cap before their own onset."""
        requests: dict[tuple[int, int], float] = {}
        tokens: dict[tuple[int, int], float] = {}
        for p in self.people:
            for day in self._local_days():
                contrib, boosted = self._contributions(p, day)
                factor = _BOOST_MAX if boosted else 1.0
                for uday, count, toks, _ in contrib:
                    requests[p.index, uday] = requests.get((p.index, uday), 0) + count * factor
                    tokens[p.index, uday] = tokens.get((p.index, uday), 0) + toks * factor
        self.requests_cap = _ceil_to(1.5 * max(requests.values()), 10)
        self.tokens_cap = _ceil_to(1.5 * max(tokens.values()), 1_000_000)

    # ---- incidents --------------------------------------------------------------------------

    def _new_plan(self, kind: str, dev: int, first: int, last: int) -> _Plan:
        plan = _Plan(kind, dev, len(self.plans), first, last)
        self.plans.append(plan)
        if dev >= 0:
            self.busy.setdefault(dev, []).append((first, last))
            self.kind_devs.setdefault(kind, set()).add(dev)
        return plan

    def _free(self, dev: int, first: int, last: int, margin: int = 2) -> bool:
        p = self.people[dev]
        if p.joined_day > first - 28 or (p.left_day is not None and p.left_day <= last + 3):
            return False
        spans = self.busy.get(dev, []) + p.vacations
        return not any(lo - margin <= last and first <= hi + margin for lo, hi in spans)

    def _level(self, dev: int, day: int) -> tuple[int, int] | None:
        """(median spend, median requests) of the person's active weekdays in the 4 weeks before."""
        spends, counts = [], []
        for d in range(day - 28, day):
            if (d + 3) % 7 < 5 and (spend := self.p1_spend.get((dev, d))):
                spends.append(spend)
                counts.append(self.p1_count[dev, d])
        if len(spends) < 8:
            return None
        return int(statistics.median(spends)), int(statistics.median(counts))

    def _candidates(self, kind: str, personas: tuple[str, ...]) -> list[int]:
        taken = self.kind_devs.get(kind, set())
        devs = [p.index for p in self.people if p.persona in personas and p.index not in taken]
        self.rng.shuffle(devs)
        devs.sort(key=lambda d: len(self.busy.get(d, [])))
        return devs

    def _place(
        self,
        kind: str,
        personas: tuple[str, ...],
        span: int,
        try_place: Callable[[int, int], bool],
        day_ok: Callable[[int], bool] = lambda _: True,
    ) -> None:
        """Place `per_kind` incidents spread over the scenario after the warm-up."""
        lo = self.start_day + WARMUP_DAYS + 1
        hi = self.last_day - 2 - span
        n = self.per_kind
        for i in range(n):
            target = lo + round((i + self.rng.uniform(0.2, 0.8)) * (hi - lo) / n)
            if not self._place_one(kind, personas, target, lo, hi, try_place, day_ok):
                raise ScenarioError(f"could not place {kind} #{i + 1} of {n}")

    def _place_one(
        self,
        kind: str,
        personas: tuple[str, ...],
        target: int,
        lo: int,
        hi: int,
        try_place: Callable[[int, int], bool],
        day_ok: Callable[[int], bool],
    ) -> bool:
        for delta in _spiral(hi - lo):
            day = target + delta
            if not lo <= day <= hi or not day_ok(day):
                continue
            for dev in self._candidates(kind, personas):
                if try_place(dev, day):
                    if self._cycles_under_cap(dev):
                        return True
                    self._undo(self.plans[-1])
        return False

    def _cycles_under_cap(self, dev: int) -> bool:
        """Whether the person's cycles stay clear of the user cycle cap with their incidents
        (the boost at its highest), except cycles where crossing it is their incident."""
        p = self.people[dev]
        totals = [0.0] * len(self.cycle_days)
        for day in self._local_days():
            contrib, boosted = self._contributions(p, day)
            for uday, _, _, spend in contrib:
                totals[self._cycle_index(uday)] += spend * (_BOOST_MAX if boosted else 1.0)
        for block in self.blocks.get(dev, []):
            for uday, _, _, spend in self._block_contrib(p, block):
                totals[self._cycle_index(uday)] += spend
        exempt = {
            plan.cycle
            for plan in self.plans
            if plan.dev == dev and plan.kind in ("user_cycle_cap", "cycle_hog")
        }
        return all(t < 0.95 * self.user_cap for c, t in enumerate(totals) if c not in exempt)

    def _undo(self, plan: _Plan) -> None:
        """Take back the last incident placed."""
        assert plan is self.plans[-1]
        self.plans.pop()
        self.busy[plan.dev].remove((plan.first_day, plan.last_day))
        self.kind_devs[plan.kind].discard(plan.dev)
        for key in [k for k, ov in self.overrides.items() if k[0] == plan.dev]:
            if (
                self.overrides[key].tag in (plan.tag, -1)
                and plan.first_day <= key[1] <= plan.last_day
            ):
                del self.overrides[key]
        blocks = self.blocks.get(plan.dev, [])
        blocks[:] = [b for b in blocks if b.tag != plan.tag]

    def _place_dormant_returns(self) -> None:
        """Vacations of >= 2 weeks for some vacationers, and a night of spend on their return."""
        vacationers = [p for p in self.people if p.persona == "vacationer"]
        self.rng.shuffle(vacationers)
        lo = self.start_day + WARMUP_DAYS + 2
        hi = self.last_day - 3
        n = self.per_kind
        for i, p in enumerate(vacationers[:n]):
            target = lo + round((i + self.rng.uniform(0.2, 0.8)) * (hi - lo) / n)
            # back on a Monday..Thursday
            back = min(
                range(target - 3, target + 4), key=lambda d: ((d + 3) % 7 >= 4, abs(d - target))
            )
            length = self.rng.randint(14, 21)
            p.vacations = [(back - length, back - 1)]
            p.joined_day = min(p.joined_day, back - length - 28)
            plan = self._new_plan("dormant_return", p.index, back, back + 1)
            start_min = 23 * 60 + self.rng.uniform(0, 90)
            start = back * DAY_MS + int(start_min * MINUTE_MS) - p.offset_ms
            self._add_block(
                p.index,
                _Block(
                    tag=plan.tag,
                    day=back,
                    start_ms=start,
                    end_ms=start + int(self.rng.uniform(2, 3.5) * HOUR_MS),
                    gap_lo_ms=60_000,
                    gap_hi_ms=150_000,
                    models=(_OPUS_THINKING, _OPUS_MAX, _OPUS),
                    k_in=4.0,
                    k_cr=4.0,
                    k_out=2.0,
                    headless=True,
                    min_spend=155 * USD,
                    hard_end_ms=back * DAY_MS + DAY_MS + int(5.5 * HOUR_MS) - p.offset_ms,
                ),
            )
            plan.facts.update(vacation_days=length, back=_day_date(back).isoformat())

    def _add_block(self, dev: int, block: _Block) -> None:
        self.blocks.setdefault(dev, []).append(block)

    def _place_incidents(self) -> None:
        regularish = ("regular", "vacationer", "weekend_worker", "night_owl")
        self._place_user_cycle_caps()
        self._daily_caps()
        self._reserve_cycle_hogs()
        self._place("gradual_creep", regularish, 16, self._try_creep, _is_weekday)
        self._place("model_switch", regularish, 3, self._try_model_switch, _is_weekday)
        self._place("context_bloat", regularish, 2, self._try_context_bloat, _is_weekday)
        self._place("spend_spike", regularish, 1, self._try_spike, _is_weekday)
        self._place(
            "weekend_burst",
            ("regular", "vacationer", "light", "new_hire"),
            1,
            self._try_weekend_burst,
            _is_weekend,
        )
        self._place("short_burst", (*regularish, "heavy"), 1, self._try_short_burst, _is_weekday)
        self._place("runaway_agent", (*regularish, "heavy", "light"), 1, self._try_runaway)
        self._place(
            "request_flood", (*regularish, "light"), 1, self._try_request_flood, _is_weekday
        )
        self._place("token_flood", (*regularish, "light"), 1, self._try_token_flood, _is_weekday)

    def _working_days(self, dev: int, first: int, count: int) -> list[int]:
        days: list[int] = []
        day = first
        while len(days) < count:
            if _is_weekday(day):
                days.append(day)
            day += 1
        return days

    def _try_spike(self, dev: int, day: int) -> bool:
        level = self._level(dev, day)
        if level is None or not 10 * USD <= level[0] <= 40 * USD or not self._free(dev, day, day):
            return False
        rng = self.rng
        ratio, volume = rng.uniform(7, 10), rng.uniform(2.0, 2.8)
        k = ratio / volume
        plan = self._new_plan("spend_spike", dev, day, day)
        self.overrides[dev, day] = _Override(
            plan.tag,
            volume=volume,
            k_in=k,
            k_cr=k,
            k_out=k,
            min_spend=int(max(6.05 * level[0], 60.5 * USD)),
            max_spend=int(11.9 * level[0]),
        )
        plan.facts.update(level=level[0])
        return True

    def _try_model_switch(self, dev: int, day: int) -> bool:
        n_days = self.rng.choice((1, 2, 3))
        if (day + 3) % 7 + n_days > 5:
            return False
        level = self._level(dev, day)
        if level is None or level[1] < 15 or not self._free(dev, day, day + n_days - 1):
            return False
        plan = self._new_plan("model_switch", dev, day, day + n_days - 1)
        for d in range(day, day + n_days):
            self.overrides[dev, d] = _Override(plan.tag, model=_FAST)
        plan.facts.update(level=level[0], days=n_days)
        return True

    def _try_context_bloat(self, dev: int, day: int) -> bool:
        n_days = self.rng.choice((1, 2))
        if (day + 3) % 7 + n_days > 5:
            return False
        level = self._level(dev, day)
        if level is None or level[0] < 6 * USD or level[1] < 15:
            return False
        if not self._free(dev, day, day + n_days - 1):
            return False
        m = self.rng.uniform(7, 11)
        plan = self._new_plan("context_bloat", dev, day, day + n_days - 1)
        for d in range(day, day + n_days):
            self.overrides[dev, d] = _Override(
                plan.tag, k_in=m / 2, k_cr=m, min_spend=int(25.5 * USD)
            )
        plan.facts.update(level=level[0], days=n_days, token_factor=round(m, 1))
        return True

    def _try_creep(self, dev: int, day: int) -> bool:
        level = self._level(dev, day)
        if level is None or not 8 * USD <= level[0] <= 30 * USD:
            return False
        rng = self.rng
        rate, plateau = rng.uniform(1.28, 1.38), rng.randint(4, 7)
        factors: list[float] = []
        while not factors or factors[-1] < 5:
            factors.append(min(5.0, rate ** (len(factors) + 1)))
        factors += [5.0] * plateau
        work = self._working_days(dev, day, len(factors))
        if work[-1] > self.last_day - 2 or not self._free(dev, day - 1, work[-1] + 2):
            return False
        plan = self._new_plan("gradual_creep", dev, day - 1, work[-1] + 2)
        for d, f in zip(work, factors, strict=True):
            self.overrides[dev, d] = _Override(
                plan.tag, noisy=True, volume=f**0.5, k_in=f**0.5, k_cr=f**0.5, k_out=f**0.5
            )
        plan.facts.update(
            level=level[0], rate=round(rate - 1, 2), growth_days=len(factors) - plateau
        )
        return True

    def _try_weekend_burst(self, dev: int, day: int) -> bool:
        p = self.people[dev]
        if p.p_weekend > 0 or not self._free(dev, day, day):
            return False
        rng = self.rng
        start = day * DAY_MS + int(rng.uniform(9.5, 11) * HOUR_MS) - p.offset_ms
        plan = self._new_plan("weekend_burst", dev, day, day)
        self._add_block(
            dev,
            _Block(
                tag=plan.tag,
                day=day,
                start_ms=start,
                end_ms=start + int(rng.uniform(3, 4) * HOUR_MS),
                gap_lo_ms=90_000,
                gap_hi_ms=4 * MINUTE_MS,
                models=(_OPUS, _OPUS_THINKING, 4, 4, _COMPOSER),
                k_in=3.0,
                k_cr=3.0,
                k_out=1.5,
                headless=False,
                min_spend=62 * USD,
                hard_end_ms=day * DAY_MS + 15 * HOUR_MS + 30 * MINUTE_MS - p.offset_ms,
            ),
        )
        return True

    def _try_short_burst(self, dev: int, day: int) -> bool:
        level = self._level(dev, day)
        if level is None or level[1] < 15 or not self._free(dev, day, day):
            return False
        p, rng = self.people[dev], self.rng
        local = p.start_min + rng.uniform(60, p.span_min - 90)
        start = day * DAY_MS + int(local * MINUTE_MS) - p.offset_ms
        plan = self._new_plan("short_burst", dev, day, day)
        self.overrides[dev, day] = _Override(-1, noisy=True)  # an otherwise normal day
        self._add_block(
            dev,
            _Block(
                tag=plan.tag,
                day=day,
                start_ms=start,
                end_ms=start + int(rng.uniform(15, 24) * MINUTE_MS),
                gap_lo_ms=25_000,
                gap_hi_ms=55_000,
                models=(_OPUS_MAX, _OPUS_MAX, _OPUS_THINKING),
                k_in=3.5,
                k_cr=3.0,
                k_out=2.5,
                headless=False,
                min_spend=int(25.5 * USD),
                hard_end_ms=start + 30 * MINUTE_MS - 1,
            ),
        )
        plan.facts.update(level=level[0])
        return True

    def _try_runaway(self, dev: int, day: int) -> bool:
        if not self._free(dev, day, day + 1) or self._level(dev, day) is None:
            return False
        p, rng = self.people[dev], self.rng
        if rng.random() < 0.65:  # left running in the evening or overnight
            local = rng.uniform(19 * 60, 27 * 60)
        else:
            local = p.start_min + rng.uniform(30, p.span_min - 60)
        start = day * DAY_MS + int(local * MINUTE_MS) - p.offset_ms
        hours = rng.uniform(2, 5)
        plan = self._new_plan("runaway_agent", dev, day, day + 1)
        model = rng.choice((_COMPOSER, _HAIKU, _GPT, _AUTO))
        self._add_block(
            dev,
            _Block(
                tag=plan.tag,
                day=day,
                start_ms=start,
                end_ms=start + int(hours * HOUR_MS),
                gap_lo_ms=3000,
                gap_hi_ms=8000,
                models=(model,),
                k_in=0.12,
                k_cr=0.1,
                k_out=0.25,
                headless=True,
            ),
        )
        plan.facts.update(hours=round(hours, 1), model=MODELS[model].name)
        return True

    def _utc_window(self, dev: int, day: int, hours: float) -> tuple[int, int] | None:
        """A `hours` window inside the person's working hours and inside one UTC day."""
        p, rng = self.people[dev], self.rng
        local = p.start_min + rng.uniform(0, max(0.0, p.span_min - hours * 60))
        start = day * DAY_MS + int(local * MINUTE_MS) - p.offset_ms
        end = start + int(hours * HOUR_MS)
        if start // DAY_MS != (end - 1) // DAY_MS:  # keep it inside one UTC day
            end = (start // DAY_MS + 1) * DAY_MS - 1
            start = end - int(hours * HOUR_MS)
        if start // DAY_MS != (end - 1) // DAY_MS or not self.start_ms <= start < self.end_ms:
            return None
        return start, end

    def _try_request_flood(self, dev: int, day: int) -> bool:
        if not self._free(dev, day, day) or self._level(dev, day) is None:
            return False
        window = self._utc_window(dev, day, self.rng.uniform(3, 6))
        if window is None:
            return False
        count = math.ceil(self.requests_cap * self.rng.uniform(1.2, 1.6))
        plan = self._new_plan("request_flood", dev, day, day)
        self._add_block(
            dev,
            _Block(
                tag=plan.tag,
                day=day,
                start_ms=window[0],
                end_ms=window[1],
                gap_lo_ms=0,
                gap_hi_ms=0,
                models=(_AUTO, _AUTO, _HAIKU),
                k_in=0.05,
                k_cr=0.02,
                k_out=0.1,
                headless=True,
                count=count,
            ),
        )
        return True

    def _try_token_flood(self, dev: int, day: int) -> bool:
        if not self._free(dev, day, day) or self._level(dev, day) is None:
            return False
        window = self._utc_window(dev, day, self.rng.uniform(3, 6))
        if window is None:
            return False
        count = self.rng.randint(40, 80)
        per_request = math.ceil(self.tokens_cap * self.rng.uniform(1.2, 1.45) / count)
        plan = self._new_plan("token_flood", dev, day, day)
        self._add_block(
            dev,
            _Block(
                tag=plan.tag,
                day=day,
                start_ms=window[0],
                end_ms=window[1],
                gap_lo_ms=0,
                gap_hi_ms=0,
                models=(_AUTO, _AUTO, _GPT),
                k_in=1.0,
                k_cr=1.0,
                k_out=1.0,
                headless=False,
                count=count,
                cr_fixed=per_request,
            ),
        )
        plan.facts.update(per_request_cache_read=per_request)
        return True

    # ---- cycle-level incidents ----------------------------------------------------------------

    def _cycle_span(self, cycle: int) -> tuple[int, int]:
        """The observed local days [first, last] of a cycle."""
        first = max(self.cycle_days[cycle], self.start_day)
        return first, min(self.cycle_ends[cycle], self.last_day + 1) - 1

    def _normal_by_day(self, dev: int, first: int, last: int) -> list[int]:
        return [self.p1_spend.get((dev, d), 0) for d in range(first, last + 1)]

    def _place_user_cycle_caps(self) -> None:
        """Top spenders who work ~1.3-2.6x their normal in one cycle and cross the cap."""
        rng, cap = self.rng, self.user_cap
        lo = self.start_day + WARMUP_DAYS + 2
        cycles = [c for c in range(len(self.cycle_days)) if self._cycle_span(c)[1] >= lo + 3]
        if not cycles:
            raise ScenarioError("no billing cycle for user_cycle_cap")
        people = [p.index for p in self.people if p.persona not in ("light", "new_hire")]
        for i in range(self.per_kind):
            order = self._cycle_order("user_cycle_cap", cycles, i, max(1, self.n_devs // 50))
            if not any(self._try_user_cap(c, people, lo, cap, rng) for c in order):
                raise ScenarioError(f"could not place user_cycle_cap #{i + 1}")

    def _cycle_order(self, kind: str, cycles: list[int], i: int, per_cycle: int) -> list[int]:
        """Where to try the i-th incident of a cycle-level kind: spread over the cycles, but at
        most `per_cycle` in each cycle other than the hot one (in a small team each of them
        moves the team's cycle spend a lot, and every other cycle must stay under the budget);
        the rest goes to the hot cycle."""
        used = [p.cycle for p in self.plans if p.kind == kind]
        spread = cycles[i % len(cycles) :] + cycles[: i % len(cycles)]
        allowed = [c for c in spread if c == self.hot or used.count(c) < per_cycle]
        return allowed + [c for c in spread if c not in allowed]

    def _try_user_cap(
        self, cycle: int, people: list[int], lo: int, cap: int, rng: random.Random
    ) -> bool:
        first, last = self._cycle_span(cycle)
        ranked = sorted(people, key=lambda d: -sum(self._normal_by_day(d, first, last)))
        for dev in ranked:
            if dev in self.kind_devs.get("user_cycle_cap", set()):
                continue
            if not self._free(dev, first - 1, last + 1):
                continue
            normal = self._normal_by_day(dev, first, last)
            frac = rng.uniform(0.62, 0.85)
            target = max(lo + 1 - first, int(frac * len(normal)))
            if target >= len(normal) - 2:
                continue
            base = sum(normal[: target + 1])
            factor = cap / base if base else math.inf
            if not 1.3 <= factor <= 3.0:
                continue
            plan = self._new_plan("user_cycle_cap", dev, first - 1, last + 1)
            plan.cycle = cycle
            for _ in range(4):  # the drawn days differ from the normal ones: aim again
                reached = self._scale_cycle(plan, factor, first, last)
                if reached[target] > cap * 1.03 or reached[min(target + 2, len(reached) - 1)] < cap:
                    factor *= cap * 1.01 / reached[target]
                    continue
                warm = lo - first  # days of this cycle still in the warm-up
                if (warm < 1 or reached[warm - 1] < cap * 0.97) and 1.25 <= factor <= 3.2:
                    plan.facts.update(factor=round(factor, 2))
                    return True
                break
            self._undo(plan)
        return False

    def _scale_cycle(self, plan: _Plan, factor: float, first: int, last: int) -> list[float]:
        """Scale the person's cycle by `factor`; their cycle-to-date spend at each day's end."""
        p = self.people[plan.dev]
        reached, cum = [], 0.0
        for d in range(first, last + 1):
            self.overrides[plan.dev, d] = _Override(
                plan.tag,
                force_active=False,
                noisy=True,
                volume=factor**0.5,
                k_in=factor**0.5,
                k_cr=factor**0.5,
                k_out=factor**0.5,
                boostable=False,
            )
            cum += sum(c[3] for c in self._contributions(p, d)[0])
            reached.append(cum)
        return reached

    def _contributions(self, p: _Person, day: int) -> tuple[_Contrib, bool]:
        """A local day's per-UTC-day totals at boost 1, and whether the team boost applies."""
        ov = self.overrides.get((p.index, day))
        if ov is None:
            contrib = self.p1.get((p.index, day), [])
        else:
            cached = self.ov_cache.get((p.index, day))
            if cached is None or cached[0] is not ov:
                cached = (ov, self._contrib(self._keep(p, self._day(p, day, 1.0, ov))))
                self.ov_cache[p.index, day] = cached
            contrib = cached[1]
        return contrib, self._boostable(p, day) and (ov is None or ov.boostable)

    def _block_contrib(self, p: _Person, block: _Block) -> _Contrib:
        cached = self.block_cache.get((block.tag, block.start_ms))
        if cached is None:
            cached = self._contrib(self._keep(p, self._block(block)))
            self.block_cache[block.tag, block.start_ms] = cached
        return cached

    def _grid(self, boost: float) -> dict[int, dict[int, float]]:
        """Spend per UTC day per person with every incident placed so far, the boost given."""
        grid: dict[int, dict[int, float]] = {}
        for p in self.people:
            for day in self._local_days():
                contrib, boosted = self._contributions(p, day)
                factor = boost if boosted else 1.0
                for uday, _, _, spend in contrib:
                    cell = grid.setdefault(uday, {})
                    cell[p.index] = cell.get(p.index, 0) + spend * factor
            for block in self.blocks.get(p.index, []):
                for uday, _, _, spend in self._block_contrib(p, block):
                    cell = grid.setdefault(uday, {})
                    cell[p.index] = cell.get(p.index, 0) + spend
        return grid

    def _median_series(self, cycle: int, grid: dict[int, dict[int, float]]) -> dict[int, float]:
        """Team median of cycle-to-date spend (people with spend) at the end of each UTC day."""
        first, last = self._cycle_span(cycle)
        cum: dict[int, float] = {}
        series = {}
        for day in range(first, last + 1):
            for dev, spend in grid.get(day, {}).items():
                cum[dev] = cum.get(dev, 0) + spend
            series[day] = statistics.median(cum.values()) if cum else 0.0
        return series

    def _reserve_cycle_hogs(self) -> None:
        """Pick who hogs which cycle from when; how hard is decided once everything else is
        placed (`_size_cycle_hogs`), against the team median those incidents produce."""
        lo = self.start_day + WARMUP_DAYS + 1
        regularish = ("regular", "vacationer", "weekend_worker", "night_owl")
        cycles = self._hog_cycles()
        if not cycles:
            raise ScenarioError("no billing cycle for cycle_hog")
        cycles.sort(key=lambda c: c != self.hot)  # the hot cycle first: the budget needs it
        for i in range(self.per_kind):
            order = self._cycle_order("cycle_hog", cycles, i, self.n_devs // 80)
            if not any(self._try_reserve_hog(c, lo, regularish) for c in order):
                raise ScenarioError(f"could not place cycle_hog #{i + 1}")

    def _hog_cycles(self) -> list[int]:
        """Cycles with room for a hog: it starts after the warm-up, early enough in the cycle
        that 12x the median is within reach, and has two weeks to get there."""
        lo = self.start_day + WARMUP_DAYS + 1
        for late in (12, 20):  # days into the cycle; later only when nothing else fits
            cycles = []
            for c in range(len(self.cycle_days)):
                first, last = self._cycle_span(c)
                if last - max(first, lo) >= 10 and max(first, lo) - first <= late:
                    cycles.append(c)
            if cycles:
                return cycles
        return []

    def _try_reserve_hog(self, cycle: int, lo: int, personas: tuple[str, ...]) -> bool:
        first, last = self._cycle_span(cycle)
        earliest = max(first + 1, lo)
        for start in range(earliest, min(earliest + 10, last - 7)):
            if not _is_weekday(start):
                continue
            levels = [
                (self._level(dev, start), dev) for dev in self._candidates("cycle_hog", personas)
            ]
            ranked = sorted(
                ((lv[0], dev) for lv, dev in levels if lv and 8 * USD <= lv[0] <= 60 * USD),
                reverse=True,
            )
            for level, dev in ranked:
                if self._free(dev, start - 1, last + 1):
                    plan = self._new_plan("cycle_hog", dev, start - 1, last + 1)
                    plan.cycle = cycle
                    plan.facts.update(level=level, start=start)
                    return True
        return False

    def _size_cycle_hogs(self) -> None:
        for plan in [p for p in self.plans if p.kind == "cycle_hog"]:
            grid = self._grid(_BOOST_MAX)  # the highest median the hot cycle can have
            median = self._median_series(plan.cycle, grid)
            self._size_hog(plan, median)

    def _size_hog(self, plan: _Plan, median: dict[int, float]) -> None:
        p, rng = self.people[plan.dev], self.rng
        first, last = self._cycle_span(plan.cycle)
        start = int(plan.facts["start"])
        before = 0.0
        for day in range(first, start):
            contrib, boosted = self._contributions(p, day)
            before += sum(c[3] for c in contrib) * (_BOOST_MAX if boosted else 1.0)
        rate = rng.uniform(1.55, 1.8)
        while True:  # faster growth when the cycle is too short for this rate
            factors, crossed = self._grow_hog(plan, median, before, rate, last)
            if crossed is not None:
                break
            for day, _ in factors:
                del self.overrides[plan.dev, day]
            rate += 0.15
            if rate > 2.5:
                raise ScenarioError(f"cycle_hog of {p.email} cannot reach {_HOG_RATIO}x the median")
        # At least one more working day; then more until the cycle spend is either past the
        # user cycle cap or sure to stay under it, so that no crossing comes after the hog.
        extra, day = 1, crossed + 1
        while day < last:
            if _is_weekday(day):
                factors.append((day, factors[-1][1]))
                self.overrides[plan.dev, day] = self._hog_override(plan.tag, factors[-1][1])
                extra -= 1
            if extra <= 0:
                cum, rest = self._spent(p, first, day), self._spent(p, day + 1, last)
                if cum > self.user_cap or cum + rest < 0.93 * self.user_cap:
                    break
            day += 1
        end = factors[-1][0]
        self.busy[plan.dev].remove((plan.first_day, plan.last_day))
        plan.last_day = end + 2
        self.busy[plan.dev].append((plan.first_day, plan.last_day))
        plan.facts.update(rate=round(rate - 1, 2), peak=round(factors[-1][1], 1))

    def _spent(self, p: _Person, first: int, last: int) -> float:
        """The person's spend over local days [first, last], the boost at its highest."""
        total = 0.0
        for day in range(first, last + 1):
            contrib, boosted = self._contributions(p, day)
            total += sum(c[3] for c in contrib) * (_BOOST_MAX if boosted else 1.0)
        return total

    def _grow_hog(
        self, plan: _Plan, median: dict[int, float], before: float, rate: float, last: int
    ) -> tuple[list[tuple[int, float]], int | None]:
        """Daily factors rate^k from the start until the cycle spend passes 13x the median."""
        p = self.people[plan.dev]
        cum = before
        factors: list[tuple[int, float]] = []
        for day in range(int(plan.facts["start"]), last):
            if _is_weekday(day):
                f = min(250.0, rate ** (len(factors) + 1))
                factors.append((day, f))
                self.overrides[plan.dev, day] = self._hog_override(plan.tag, f)
            contrib, boosted = self._contributions(p, day)
            cum += sum(c[3] for c in contrib) * (_BOOST_MAX if boosted else 1.0)
            if len(factors) >= 3 and cum > (_HOG_RATIO + 1) * median.get(day, 0.0):
                return factors, day
        return factors, None

    @staticmethod
    def _hog_override(tag: int, f: float) -> _Override:
        return _Override(
            tag,
            noisy=True,
            volume=f**0.45,
            k_in=f**0.55,
            k_cr=f**0.55,
            k_out=f**0.55,
            boostable=False,
        )

    # ---- the team budget ----------------------------------------------------------------------

    def _size_team_budget(self) -> None:
        """The budget: every other cycle at most 85 % of it, and the hot cycle (its boost set
        here) crossing it late in the cycle, after the warm-up."""
        n_cycles = len(self.cycle_days)
        others = [0.0] * n_cycles
        fixed: dict[int, float] = {}  # the hot cycle per UTC day: not boosted / boosted
        boosted_spend: dict[int, float] = {}
        for p in self.people:
            for day in self._local_days():
                contrib, boosted = self._contributions(p, day)
                for uday, _, _, spend in contrib:
                    cycle = self._cycle_index(uday)
                    others[cycle] += spend
                    if cycle == self.hot:
                        into = boosted_spend if boosted else fixed
                        into[uday] = into.get(uday, 0) + spend
            for block in self.blocks.get(p.index, []):
                for uday, _, _, spend in self._block_contrib(p, block):
                    others[self._cycle_index(uday)] += spend
                    if self._cycle_index(uday) == self.hot:
                        fixed[uday] = fixed.get(uday, 0) + spend
        others[self.hot] = 0

        def reached(day: int, boost: float) -> float:
            return sum(v for d, v in fixed.items() if d <= day) + boost * sum(
                v for d, v in boosted_spend.items() if d <= day
            )

        first, last = self._cycle_span(self.hot)
        earliest = self.start_day + WARMUP_DAYS + 1
        target = min(last - 2, max(earliest + 1, first + round(0.85 * (last - first))))
        floor = max(others) / _TEAM_SHARE
        step = 1000 * USD if floor > 20_000 * USD else 100 * USD
        # crossed a little before the end of `target` at a boost of +40 %, unless the other
        # cycles need a higher budget, which then takes a higher boost
        self.budget = _ceil_to(max(floor, 0.97 * reached(target, 1.4)), step)
        at_target = reached(target, 0.0), reached(target, 1.0) - reached(target, 0.0)
        boost = (self.budget / 0.97 - at_target[0]) / at_target[1]
        self.boost = min(_BOOST_MAX, max(_BOOST_MIN, boost))
        if reached(last - 1, self.boost) < 1.02 * self.budget:
            raise ScenarioError(
                f"the hot cycle cannot reach the team budget {_usd(self.budget)} "
                f"with a boost of {self.boost:.2f}"
            )
        if reached(earliest, self.boost) > 0.98 * self.budget:
            raise ScenarioError("the hot cycle would reach the team budget in the warm-up")

    # ---- events -------------------------------------------------------------------------------

    def _materialise(self) -> tuple[list[ScenarioEvent], _Final]:
        final = _Final(self)
        per_dev: list[list[ScenarioEvent]] = []
        for p in self.people:
            rows: list[_Raw] = []
            for day in self._local_days():
                boost = self.boost if self._boostable(p, day) else 1.0
                rows += self._day(p, day, boost, self.overrides.get((p.index, day)))
            for block in self.blocks.get(p.index, []):
                rows += self._block(block)
            rows.sort()
            bumped = []
            prev = -1
            for r in rows:
                if r[0] <= prev:  # (user, timestamp) stays unique
                    r = (prev + 1, *r[1:])  # noqa: PLW2901
                bumped.append(r)
                prev = r[0]
            per_dev.append(final.person(p, self._keep(p, bumped)))
        events = [e for chunk in per_dev for e in chunk]
        events.sort(key=lambda e: e.occurred_at)
        return events, final

    # ---- labels and checks --------------------------------------------------------------------

    def _label_and_verify(self, events: list[ScenarioEvent], fin: _Final) -> list[LabelledIncident]:
        team = fin.team_totals(events)
        incidents = []
        windows: dict[int, list[tuple[int, int, str]]] = {}
        for plan in self.plans:
            onset, end = self._window(plan, fin, team)
            if onset < self.start_ms + WARMUP_DAYS * DAY_MS:
                raise ScenarioError(f"{plan.kind} #{plan.tag} starts in the warm-up")
            self._check(plan, fin, team)
            subject = TEAM if plan.dev < 0 else self.people[plan.dev].email
            windows.setdefault(plan.dev, []).append((onset, end, plan.kind))
            incidents.append(
                LabelledIncident(
                    incident_id=f"s{self.seed}-{plan.tag:03d}-{plan.kind}",
                    kind=plan.kind,
                    subject=subject,
                    onset=_EPOCH + timedelta(milliseconds=onset),
                    end=_EPOCH + timedelta(milliseconds=end),
                    expected_detectors=INCIDENT_KINDS[plan.kind],
                    description=self._describe(plan, fin, team),
                )
            )
        for dev, spans in windows.items():
            spans.sort()
            for a, b in pairwise(spans):
                if b[0] <= a[1]:
                    raise ScenarioError(f"developer {dev} has overlapping incidents {a} {b}")
        for what, dev, ms in fin.crossings:
            # an incident's last requests still count for the rest of that UTC day
            if not any(lo <= ms <= hi + DAY_MS for lo, hi, _ in windows.get(dev, [])):
                who = self.people[dev].email
                when = _EPOCH + timedelta(milliseconds=ms)
                raise ScenarioError(f"{who} crosses the {what} at {when} outside any incident")
        incidents.sort(key=lambda i: (i.onset, i.subject))
        return incidents

    def _window(self, plan: _Plan, fin: _Final, team: _TeamTotals) -> tuple[int, int]:
        if plan.kind == "team_budget":
            if team.crossing is None or team.crossing[0] != self.hot:
                raise ScenarioError("the hot cycle never crosses the team budget")
            end = min(self.cycle_ends[self.hot] * DAY_MS, self.end_ms)
            return team.crossing[1], end
        if plan.kind == "user_cycle_cap":
            crossing = fin.cycle_crossing.get((plan.dev, plan.cycle))
            if crossing is None:
                raise ScenarioError(f"{self.people[plan.dev].email} never crosses the user cap")
            return crossing, min(self.cycle_ends[plan.cycle] * DAY_MS, self.end_ms)
        stats = fin.tags.get(plan.tag)
        if stats is None:
            raise ScenarioError(f"{plan.kind} #{plan.tag} produced no events")
        return stats.first_ms, stats.last_ms

    def _check(self, plan: _Plan, fin: _Final, team: _TeamTotals) -> None:
        """Raise unless the incident meets its documented condition."""
        kind, stats = plan.kind, fin.tags.get(plan.tag, _TagStats())
        p = self.people[plan.dev] if plan.dev >= 0 else None
        level = int(plan.facts.get("level", 0))
        problem = ""
        if kind == "spend_spike":
            ratio = stats.spend / level
            if stats.spend < 60 * USD or not 6 <= ratio / self._boost_at(plan) <= 12:
                problem = f"day {_usd(stats.spend)} = {ratio:.1f}x {_usd(level)}"
        elif kind == "runaway_agent":
            hours = (stats.last_ms - stats.first_ms) / HOUR_MS
            if not 1.9 <= hours <= 5.01:
                problem = f"loop of {hours:.1f} h"
        elif kind == "short_burst":
            minutes = (stats.last_ms - stats.first_ms) / MINUTE_MS
            if stats.spend < 25 * USD or minutes > 30:
                problem = f"{_usd(stats.spend)} in {minutes:.0f} min"
        elif kind in ("weekend_burst", "dormant_return"):
            floor = 60 if kind == "weekend_burst" else 150
            if stats.spend < floor * USD:
                problem = f"only {_usd(stats.spend)}"
            assert p is not None
            local = [(ms + p.offset_ms) for ms in (stats.first_ms, stats.last_ms)]
            if kind == "weekend_burst" and any(_is_weekday(ms // DAY_MS) for ms in local):
                problem = "not on a weekend"
            if kind == "dormant_return" and any(6 <= (ms % DAY_MS) / HOUR_MS < 22 for ms in local):
                problem = "not at night"
        elif kind == "context_bloat":
            if min(stats.day_spend.values()) < 25 * USD:
                problem = f"days of {[_usd(v) for v in stats.day_spend.values()]}"
        elif kind in ("request_flood", "token_flood"):
            day = stats.first_ms // DAY_MS
            assert plan.dev >= 0
            used = fin.daily[plan.dev, day]
            if kind == "request_flood" and used[0] <= self.requests_cap:
                problem = f"{used[0]} requests"
            if kind == "token_flood" and used[1] <= self.tokens_cap:
                problem = f"{used[1]} tokens"
        elif kind == "cycle_hog":
            ratio = fin.hog_ratio(plan, stats)
            plan.facts["ratio"] = round(ratio, 1)
            if ratio <= _HOG_RATIO:
                problem = f"peaks at {ratio:.1f}x the team median"
        elif kind == "team_budget":
            worst = max((t for c, t in enumerate(team.totals) if c != self.hot), default=0)
            if worst > 0.9 * self.budget:
                problem = f"another cycle reaches {worst / self.budget:.0%} of the budget"
        if problem:
            who = "team" if p is None else p.email
            raise ScenarioError(f"{kind} of {who}: {problem}")

    def _boost_at(self, plan: _Plan) -> float:
        p = self.people[plan.dev]
        return self.boost if self._boostable(p, plan.first_day) else 1.0

    def _describe(self, plan: _Plan, fin: _Final, team: _TeamTotals) -> str:
        stats = fin.tags.get(plan.tag, _TagStats())
        facts = plan.facts
        level = int(facts.get("level", 0))
        spend, requests = _usd(stats.spend), stats.requests
        match plan.kind:
            case "spend_spike":
                normal = level * self._boost_at(plan)
                ratio = stats.spend / normal
                return f"one working day of {spend} ({ratio:.1f}x the normal {_usd(normal)})"
            case "runaway_agent":
                return (
                    f"headless loop on {facts['model']} for {facts['hours']} h: "
                    f"{requests} requests, {spend}"
                )
            case "short_burst":
                minutes = (stats.last_ms - stats.first_ms) / MINUTE_MS
                return f"{requests} opus-max calls in {minutes:.0f} min: {spend}"
            case "model_switch":
                return (
                    f"{facts['days']} day(s) on claude-4.6-opus-max-thinking-fast, "
                    f"{requests} requests, {spend} (normal {_usd(level)}/day)"
                )
            case "context_bloat":
                return (
                    f"{facts['days']} day(s) with {facts['token_factor']}x cache reads: "
                    f"{requests} requests, {spend} (normal {_usd(level)}/day)"
                )
            case "cycle_hog":
                return (
                    f"usage grows {facts['rate']:.0%}/working day to {facts['peak']}x; cycle "
                    f"spend reaches {facts['ratio']}x the team median ({spend} while hogging)"
                )
            case "weekend_burst":
                return f"{requests} requests on a weekend day, {spend} (never works weekends)"
            case "gradual_creep":
                return (
                    f"spend grows {facts['rate']:.0%}/working day for {facts['growth_days']} days "
                    f"to 5x the normal {_usd(level)}/day and stays there ({spend} in all)"
                )
            case "dormant_return":
                return (
                    f"back on {facts['back']} from {facts['vacation_days']} days of vacation; "
                    f"{spend} at night ({requests} requests)"
                )
            case "request_flood":
                return f"{requests} tiny requests ({spend}); requests cap {self.requests_cap}/day"
            case "token_flood":
                return (
                    f"{requests} requests with {stats.tokens:,} tokens ({spend}); "
                    f"tokens cap {self.tokens_cap:,}/day"
                )
            case "user_cycle_cap":
                return (
                    f"works {facts['factor']}x their normal this cycle and crosses the user cycle "
                    f"cap {_usd(self.user_cap)}"
                )
            case _:
                share = team.totals[self.hot] / self.budget
                return (
                    f"the team runs {self.boost - 1:.0%} hot from "
                    f"{_day_date(self.boost_first).isoformat()}; cycle spend reaches "
                    f"{share:.0%} of the {_usd(self.budget)} budget"
                )


def _is_weekday(day: int) -> bool:
    return (day + 3) % 7 < 5


def _is_weekend(day: int) -> bool:
    return (day + 3) % 7 >= 5


@dataclass(slots=True)
class _TeamTotals:
    totals: list[int]
    crossing: tuple[int, int] | None  # (cycle, ms)


class _Final:
    """What the final pass learns while it turns rows into events: tags, crossings, days."""

    def __init__(self, builder: _Builder) -> None:
        self.b = builder
        self.tags: dict[int, _TagStats] = {}
        self.daily: dict[tuple[int, int], list[int]] = {}  # (dev, UTC day) -> [requests, tokens]
        self.spend: dict[tuple[int, int], int] = {}  # (dev, UTC day) -> micros
        self.crossings: list[tuple[str, int, int]] = []  # (what, dev, ms)
        self.cycle_crossing: dict[tuple[int, int], int] = {}
        self.units: dict[int, Decimal] = {}
        self.names = [m.name for m in MODELS]
        self.max_mode = [m.max_mode for m in MODELS]

    def person(self, p: _Person, rows: list[_Raw]) -> list[ScenarioEvent]:
        b = self.b
        out: list[ScenarioEvent] = []
        cycle, boundary, cum = -1, -1, 0
        day, day_cell = -1, [0, 0]
        for ms, model, inp, outp, cr, cw, cost, tenths, headless, tag in rows:
            if ms >= boundary:
                cycle = b._cycle_index(ms // DAY_MS)
                boundary = b.cycle_ends[cycle] * DAY_MS
                cum = 0
            kind = INCLUDED if cum < p.included_micros else USAGE_BASED
            before = cum
            cum += cost
            if before <= b.user_cap < cum:
                self.cycle_crossing[p.index, cycle] = ms
                self.crossings.append(("user cycle cap", p.index, ms))
            if ms // DAY_MS != day:
                day = ms // DAY_MS
                day_cell = self.daily.setdefault((p.index, day), [0, 0])
            tokens = inp + outp + cr + cw
            day_cell[0] += 1
            if day_cell[0] == b.requests_cap + 1:
                self.crossings.append(("requests cap", p.index, ms))
            if day_cell[1] <= b.tokens_cap < day_cell[1] + tokens:
                self.crossings.append(("tokens cap", p.index, ms))
            day_cell[1] += tokens
            self.spend[p.index, day] = self.spend.get((p.index, day), 0) + cost
            if tag >= 0:
                stats = self.tags.get(tag)
                if stats is None:
                    stats = self.tags[tag] = _TagStats()
                stats.first_ms = min(stats.first_ms, ms)
                stats.last_ms = max(stats.last_ms, ms)
                stats.requests += 1
                stats.spend += cost
                stats.tokens += tokens
                # the working day it belongs to: night owls work past midnight
                workday = (ms + p.offset_ms - 6 * HOUR_MS) // DAY_MS
                stats.day_spend[workday] = stats.day_spend.get(workday, 0) + cost
            units = self.units.get(tenths)
            if units is None:
                units = self.units[tenths] = Decimal(tenths).scaleb(-1)
            out.append(
                ScenarioEvent(
                    occurred_at=_EPOCH + timedelta(milliseconds=ms),
                    user_email=p.email,
                    model=self.names[model],
                    kind=kind,
                    cost_micros=cost,
                    input_tokens=inp,
                    output_tokens=outp,
                    cache_read_tokens=cr,
                    cache_write_tokens=cw,
                    request_units=units,
                    is_headless=headless,
                    max_mode=self.max_mode[model],
                    event_id=f"s{b.seed}-{p.index:04d}-{ms}",
                )
            )
        return out

    def team_totals(self, events: list[ScenarioEvent]) -> _TeamTotals:
        """Team spend per cycle, and the first event at which a cycle reaches the budget."""
        b = self.b
        per_day: dict[int, int] = {}
        for (_, day), spend in self.spend.items():
            per_day[day] = per_day.get(day, 0) + spend
        totals = [0] * len(b.cycle_days)
        crossing = None
        for day in sorted(per_day):
            cycle = b._cycle_index(day)
            before = totals[cycle]
            totals[cycle] += per_day[day]
            if crossing is None and before < b.budget <= totals[cycle]:
                lo = bisect_left(events, _EPOCH + timedelta(days=day), key=_occurred)
                running = before
                for e in events[lo:]:
                    running += e.cost_micros
                    if running >= b.budget:
                        ms = (e.occurred_at - _EPOCH) // timedelta(milliseconds=1)
                        crossing = (cycle, ms)
                        break
        return _TeamTotals(totals, crossing)

    def hog_ratio(self, plan: _Plan, stats: _TagStats) -> float:
        """The hog's highest cycle-to-date spend over the team median, at UTC day ends."""
        b = self.b
        first = max(b.cycle_days[plan.cycle], b.start_day)
        last = stats.last_ms // DAY_MS
        cum: dict[int, int] = {}
        best = 0.0
        for day in range(first, last + 1):
            for dev in range(len(b.people)):
                spend = self.spend.get((dev, day))
                if spend:
                    cum[dev] = cum.get(dev, 0) + spend
            median = statistics.median(v for v in cum.values() if v > 0)
            if day >= stats.first_ms // DAY_MS:
                best = max(best, cum.get(plan.dev, 0) / median)
        return best


def _occurred(event: ScenarioEvent) -> datetime:
    return event.occurred_at
