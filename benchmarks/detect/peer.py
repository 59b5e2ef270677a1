"""A faithful re-implementation of the peer's detection (cursor-usage-tracker's `runDetection`).

Written from the teardown in shared/reference/peer-cursor-usage-tracker.md (sections b and h),
including the behaviours it documents as quirks, because the benchmark compares against the
peer as it is:

- Layer 1, thresholds: cycle spend cap (`spend > limit`, critical above 2x), agent requests
  today (UTC date of `now`, active users, `> limit`, critical above 2x), plan exhausted (info,
  only with `enable_info_anomalies`, off by default), users limited, team budget (`>= budget`,
  critical from 1.1x). Caps at 0 are off.
- Layer 2, z-score: the target date is the latest date in the daily spend table (a partial
  day); the population is everyone with spend > 0 that day, at least 5 of them; the mean and
  the *population* standard deviation; only candidates with at least $50 that day; fires above
  `multiplier` (2.5), critical above 3x that.
- Layer 3, trends: the daily spike compares the target date with the average of the previous
  `lookback` calendar days that *have rows* (days without spend are not zeros), needs $50 today
  and a baseline of at least $1, fires above 5x, critical above 15x; the cycle outlier needs at
  least 5 people with cycle spend > 0 and an *upper* median (`sorted[n // 2]`) of at least $10,
  fires above 10x the median, critical above 30x.
- Orchestration: the dedup key is `email:type:metric` (so the spike and the cycle outlier share
  `trend:spend`); a detection is inserted unless an anomaly with its key is open. The set of
  open keys is read once before the loop, so two detections with one key in the same run are
  both inserted. Every open anomaly whose key this run did not produce is resolved. Value,
  severity and message are frozen at first detection: no escalation, no re-alert.

Money is in cents as the peer stores it (integer cents, rounded half-even from micro-dollars);
its arithmetic is JavaScript's, i.e. floats. `PeerDetector.run` returns the anomalies that run
inserted, which are what the peer alerts on. The peer runs from an hourly cron.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from benchmarks.detect.score import Alert
from spendwatch.simulator.scenario import Scenario, ScenarioEvent

MIN_DAILY_SPEND_CENTS = 5000  # $50: z-score candidates and spikes
MIN_CYCLE_MEDIAN_CENTS = 1000  # $10
MIN_BASELINE_CENTS = 100  # $1
MIN_USERS = 5
PEER_CRON = timedelta(hours=1)

THRESHOLD, ZSCORE, TREND = "threshold", "zscore", "trend"
INFO, WARNING, CRITICAL = "info", "warning", "critical"

# The peer's (type, metric, rule) mapped onto our detector names, for scoring.
RULE_DETECTOR = {
    "cycle_spend": "user_cycle_cap",
    "requests": "requests_cap",
    "plan_exhausted": "plan_exhaustion",
    "users_limited": "users_limited",
    "team_budget": "team_budget",
    "zscore": "zscore",
    "spike": "spend_spike",
    "cycle_outlier": "cycle_outlier",
}


@dataclass(frozen=True)
class PeerConfig:
    """The peer's detection config (`DEFAULT_CONFIG` plus the team budget metadata)."""

    max_spend_cents_per_cycle: int = 0
    max_requests_per_day: int = 0
    zscore_multiplier: float = 2.5
    spend_spike_multiplier: float = 5.0
    spend_spike_lookback_days: int = 7
    cycle_outlier_multiplier: float = 10.0
    team_budget_dollars: float = 0.0
    enable_info_anomalies: bool = False

    @classmethod
    def from_detection_settings(cls, settings: Mapping[str, Any]) -> PeerConfig:
        """The peer configured like a scenario: its caps and budget, the peer's defaults else.
        The peer has no tokens cap; its request cap counts agent requests (here: all)."""
        caps = settings.get("static_caps", {})
        return cls(
            max_spend_cents_per_cycle=int(Decimal(str(caps.get("user_cycle_spend_usd", 0))) * 100),
            max_requests_per_day=int(caps.get("user_daily_requests", 0)),
            team_budget_dollars=float(Decimal(str(caps.get("team_cycle_budget_usd", 0)))),
        )


@dataclass(frozen=True)
class DayUsage:
    """One user's UTC day as the peer's tables hold it."""

    spend_cents: int
    agent_requests: int
    most_used_model: str | None
    usage_based_requests: int = 0


@dataclass(frozen=True)
class PeerData:
    """A snapshot of what the peer's database holds at `now`."""

    now: datetime
    cycle_start: date
    daily: Mapping[date, Mapping[str, DayUsage]]  # per UTC date, per user with activity
    cycle_spend_cents: Mapping[str, int]  # the `spending` rows of the current cycle
    cycle_requests: Mapping[str, int] = field(default_factory=dict)  # "premium reqs"
    names: Mapping[str, str] = field(default_factory=dict)
    limited_users_count: int = 0

    @property
    def target_date(self) -> date | None:
        """`MAX(date)` of the daily spend table: the latest date anyone spent anything."""
        for day in sorted(self.daily, reverse=True):
            if any(u.spend_cents > 0 for u in self.daily[day].values()):
                return day
        return None

    def name(self, email: str) -> str:
        """The member's display name (the e-mail when unknown)."""
        return self.names.get(email, email)


@dataclass(frozen=True)
class PeerAnomaly:
    """One row of the peer's `anomalies` table."""

    user_email: str  # or "team"
    type: str  # threshold | zscore | trend
    severity: str  # info | warning | critical
    metric: str  # spend | requests | plan_exhausted | users_limited | team_budget
    value: float
    threshold: float
    message: str
    detected_at: datetime
    rule: str  # which of the peer's checks produced it (see RULE_DETECTOR)
    diagnosis_model: str | None = None
    diagnosis_delta: float | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None

    @property
    def key(self) -> str:
        """The peer's dedup key."""
        return f"{self.user_email}:{self.type}:{self.metric}"

    @property
    def detector(self) -> str:
        """Our name for the check that produced it."""
        return RULE_DETECTOR[self.rule]

    def to_alert(self) -> Alert:
        """The anomaly as an alert for scoring (raised at `detected_at`)."""
        return Alert(
            subject=self.user_email,
            detector=self.detector,
            severity=self.severity,
            at=self.detected_at,
            window_start=self.window_start or self.detected_at,
            window_end=self.window_end or self.detected_at,
            fingerprint=self.key,
        )


@dataclass
class _Open:
    anomaly: PeerAnomaly
    resolved_at: datetime | None = None


class PeerDetector:
    """The peer's `runDetection` with its anomalies table: call `run` once per cron tick."""

    def __init__(self, config: PeerConfig | Mapping[str, Any]) -> None:
        """`config`: the peer's, or a scenario's `detection_settings` to derive it from."""
        self.config = (
            config if isinstance(config, PeerConfig) else PeerConfig.from_detection_settings(config)
        )
        self._open: list[_Open] = []
        self.inserted: list[PeerAnomaly] = []
        self.resolved: list[tuple[PeerAnomaly, datetime]] = []

    @property
    def open_anomalies(self) -> list[PeerAnomaly]:
        """Anomalies not resolved yet."""
        return [o.anomaly for o in self._open]

    def run(self, now: datetime, data: PeerData) -> list[PeerAnomaly]:
        """One detection run at `now`: the anomalies it inserted (the ones the peer alerts)."""
        detected = detect(data, self.config, now)
        existing = {o.anomaly.key for o in self._open}  # read once, before the loop
        new = [a for a in detected if a.key not in existing]
        produced = {a.key for a in detected}
        still_open = []
        for o in self._open:
            if o.anomaly.key in produced:
                still_open.append(o)
            else:
                self.resolved.append((o.anomaly, now))
        self._open = still_open + [_Open(a) for a in new]
        self.inserted += new
        return new


def detect(data: PeerData, config: PeerConfig, now: datetime) -> list[PeerAnomaly]:
    """Thresholds, then z-score, then trends, in the peer's order."""
    return [
        *detect_thresholds(data, config, now),
        *detect_zscore(data, config, now),
        *detect_spend_spikes(data, config, now),
        *detect_cycle_outliers(data, config, now),
    ]


def _cycle_window(data: PeerData, now: datetime) -> tuple[datetime, datetime]:
    return datetime.combine(data.cycle_start, time(), UTC), now


def _day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), UTC)
    return start, start + timedelta(days=1)


def detect_thresholds(data: PeerData, config: PeerConfig, now: datetime) -> list[PeerAnomaly]:
    """Layer 1: static caps, plan exhaustion (info), limited users and the team budget."""
    found: list[PeerAnomaly] = []
    cycle = _cycle_window(data, now)
    limit = config.max_spend_cents_per_cycle
    if limit > 0:
        for email in sorted(data.cycle_spend_cents):
            spend = data.cycle_spend_cents[email]
            if spend > limit:
                found.append(
                    PeerAnomaly(
                        user_email=email,
                        type=THRESHOLD,
                        severity=CRITICAL if spend > 2 * limit else WARNING,
                        metric="spend",
                        value=spend,
                        threshold=limit,
                        message=(
                            f"{data.name(email)}: spend ${spend / 100:.2f} exceeds limit "
                            f"${limit / 100:.2f} ({data.cycle_requests.get(email, 0)} premium reqs)"
                        ),
                        detected_at=now,
                        rule="cycle_spend",
                        window_start=cycle[0],
                        window_end=cycle[1],
                    )
                )
    max_requests = config.max_requests_per_day
    today = now.astimezone(UTC).date()  # new Date().toISOString(), not MAX(date)
    if max_requests > 0:
        for email, usage in sorted(data.daily.get(today, {}).items()):
            if usage.agent_requests > 0 and usage.agent_requests > max_requests:
                found.append(
                    PeerAnomaly(
                        user_email=email,
                        type=THRESHOLD,
                        severity=CRITICAL if usage.agent_requests > 2 * max_requests else WARNING,
                        metric="requests",
                        value=usage.agent_requests,
                        threshold=max_requests,
                        message=(
                            f"{usage.agent_requests} agent requests today exceeds limit of "
                            f"{max_requests} (model: {usage.most_used_model})"
                        ),
                        detected_at=now,
                        rule="requests",
                        diagnosis_model=usage.most_used_model,
                        window_start=_day_window(today)[0],
                        window_end=_day_window(today)[1],
                    )
                )
    if config.enable_info_anomalies:
        found += _plan_exhausted(data, now)
    if data.limited_users_count > 0:
        found.append(
            PeerAnomaly(
                user_email="team",
                type=THRESHOLD,
                severity=WARNING,
                metric="users_limited",
                value=data.limited_users_count,
                threshold=0,
                message=(
                    f"{data.limited_users_count} team members are limited and unable to make "
                    "requests. Review team spend limits on the Cursor dashboard."
                ),
                detected_at=now,
                rule="users_limited",
                window_start=cycle[0],
                window_end=cycle[1],
            )
        )
    budget = config.team_budget_dollars
    if budget > 0:
        team_spend = sum(data.cycle_spend_cents.values()) / 100
        if team_spend >= budget:
            found.append(
                PeerAnomaly(
                    user_email="team",
                    type=THRESHOLD,
                    severity=CRITICAL if team_spend >= budget * 1.1 else WARNING,
                    metric="team_budget",
                    value=round(team_spend * 100),
                    threshold=round(budget * 100),
                    message=(
                        f"Team spend ${team_spend:.2f} has reached the ${budget:.2f} budget "
                        f"threshold ({round(team_spend / budget * 100)}%)."
                    ),
                    detected_at=now,
                    rule="team_budget",
                    window_start=cycle[0],
                    window_end=cycle[1],
                )
            )
    return found


def _plan_exhausted(data: PeerData, now: datetime) -> list[PeerAnomaly]:
    found = []
    first_day: dict[str, date] = {}
    extra: dict[str, int] = {}
    for day in sorted(data.daily):
        if day < data.cycle_start:
            continue
        for email, usage in data.daily[day].items():
            if usage.usage_based_requests > 0:
                first_day.setdefault(email, day)
                extra[email] = extra.get(email, 0) + usage.usage_based_requests
    cycle = _cycle_window(data, now)
    for email in sorted(first_day):
        day_num = (first_day[email] - data.cycle_start).days + 1
        found.append(
            PeerAnomaly(
                user_email=email,
                type=THRESHOLD,
                severity=INFO,
                metric="plan_exhausted",
                value=extra[email],
                threshold=0,
                message=(
                    f"{data.name(email)}: exceeded included plan usage on day {day_num} of cycle "
                    f"({first_day[email].isoformat()}). {extra[email]} extra requests billed since."
                ),
                detected_at=now,
                rule="plan_exhausted",
                window_start=cycle[0],
                window_end=cycle[1],
            )
        )
    return found


def detect_zscore(data: PeerData, config: PeerConfig, now: datetime) -> list[PeerAnomaly]:
    """Layer 2: the target date's spend against everyone who spent that day (population sigma)."""
    target = data.target_date
    if target is None:
        return []
    day = data.daily[target]
    spenders = {email: u for email, u in day.items() if u.spend_cents > 0}
    if len(spenders) < MIN_USERS:
        return []
    values = [float(u.spend_cents) for u in spenders.values()]
    mean = sum(values) / len(values)
    sigma = math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))
    if sigma == 0:
        return []
    multiplier = config.zscore_multiplier
    window = _day_window(target)
    found = []
    for email in sorted(spenders):
        usage = spenders[email]
        if usage.spend_cents < MIN_DAILY_SPEND_CENTS:
            continue
        z = (usage.spend_cents - mean) / sigma
        if z > multiplier:
            model = usage.most_used_model or None
            found.append(
                PeerAnomaly(
                    user_email=email,
                    type=ZSCORE,
                    severity=CRITICAL if z > multiplier * 3 else WARNING,
                    metric="spend",
                    value=usage.spend_cents,
                    threshold=mean + multiplier * sigma,
                    message=(
                        f"{data.name(email)}: daily spend ${usage.spend_cents / 100:.2f} is "
                        f"{z:.1f}\u03c3 above team mean (${mean / 100:.2f}) \u2014 model: {model}"
                    ),
                    detected_at=now,
                    rule="zscore",
                    diagnosis_model=model,
                    diagnosis_delta=usage.spend_cents - mean,
                    window_start=window[0],
                    window_end=window[1],
                )
            )
    return found


def detect_spend_spikes(data: PeerData, config: PeerConfig, now: datetime) -> list[PeerAnomaly]:
    """Layer 3a: the target date against the average of the lookback days that have rows."""
    target = data.target_date
    if target is None:
        return []
    lookback = config.spend_spike_lookback_days
    multiplier = config.spend_spike_multiplier
    history_days = [d for d in data.daily if target - timedelta(days=lookback) <= d < target]
    window = _day_window(target)
    found = []
    for email in sorted(data.daily[target]):
        today = data.daily[target][email]
        if today.spend_cents < MIN_DAILY_SPEND_CENTS:
            continue
        history = [
            data.daily[d][email].spend_cents
            for d in history_days
            if email in data.daily[d] and data.daily[d][email].spend_cents > 0
        ]
        if not history:
            continue
        avg = sum(history) / len(history)
        if avg < MIN_BASELINE_CENTS:
            continue
        ratio = today.spend_cents / avg
        if ratio > multiplier:
            model = today.most_used_model
            found.append(
                PeerAnomaly(
                    user_email=email,
                    type=TREND,
                    severity=CRITICAL if ratio > multiplier * 3 else WARNING,
                    metric="spend",
                    value=today.spend_cents,
                    threshold=avg * multiplier,
                    message=(
                        f"{data.name(email)}: daily spend spiked to ${today.spend_cents / 100:.2f} "
                        f"({ratio:.1f}x their {lookback}-day avg of ${avg / 100:.2f}) \u2014 "
                        f"model: {model or 'unknown'}"
                    ),
                    detected_at=now,
                    rule="spike",
                    diagnosis_model=model,
                    diagnosis_delta=today.spend_cents - avg,
                    window_start=window[0],
                    window_end=window[1],
                )
            )
    return found


def detect_cycle_outliers(data: PeerData, config: PeerConfig, now: datetime) -> list[PeerAnomaly]:
    """Layer 3b: cycle spend against the team's upper median."""
    spenders = {e: s for e, s in data.cycle_spend_cents.items() if s > 0}
    if len(spenders) < MIN_USERS:
        return []
    ordered = sorted(spenders.values())
    median = ordered[len(ordered) // 2]  # the upper median for an even count
    if median < MIN_CYCLE_MEDIAN_CENTS:
        return []
    multiplier = config.cycle_outlier_multiplier
    window = _cycle_window(data, now)
    found = []
    for email in sorted(spenders):
        spend = spenders[email]
        ratio = spend / median
        if ratio > multiplier:
            model = _latest_model(data, email)
            found.append(
                PeerAnomaly(
                    user_email=email,
                    type=TREND,
                    severity=CRITICAL if ratio > multiplier * 3 else WARNING,
                    metric="spend",
                    value=spend,
                    threshold=median * multiplier,
                    message=(
                        f"{data.name(email)}: cycle spend ${spend / 100:.2f} is {ratio:.1f}x the "
                        f"team median (${median / 100:.2f}) \u2014 model: {model or 'unknown'}, "
                        f"{data.cycle_requests.get(email, 0)} premium reqs"
                    ),
                    detected_at=now,
                    rule="cycle_outlier",
                    diagnosis_model=model,
                    diagnosis_delta=spend - median,
                    window_start=window[0],
                    window_end=window[1],
                )
            )
    return found


def _latest_model(data: PeerData, email: str) -> str | None:
    for day in sorted(data.daily, reverse=True):
        usage = data.daily[day].get(email)
        if usage is not None and usage.agent_requests > 0:
            return usage.most_used_model
    return None


# ---- the peer's view of a scenario ------------------------------------------------------------


def micros_to_cents(micros: int) -> int:
    """Whole cents, rounded half-even, as Cursor reports spend."""
    return int((Decimal(micros) / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@dataclass
class _Acc:
    micros: int = 0
    requests: int = 0
    usage_based: int = 0
    models: Counter[str] = field(default_factory=Counter)

    def add(self, event: ScenarioEvent) -> None:
        self.micros += event.cost_micros
        self.requests += 1
        self.usage_based += event.kind == "usage_based"
        self.models[event.model] += 1

    def frozen(self) -> DayUsage:
        # the most requests, then the name: Cursor's own tie-break is unknown
        top = min(self.models.items(), key=lambda kv: (-kv[1], kv[0]))[0] if self.models else None
        return DayUsage(
            spend_cents=micros_to_cents(self.micros),
            agent_requests=self.requests,
            most_used_model=top,
            usage_based_requests=self.usage_based,
        )


class PeerFeed:
    """The peer's tables built incrementally from a scenario's sorted events, for the hourly
    cron: `snapshot(now, cycle_start)` with non-decreasing `now` (exact data: the peer's best
    case, no collection lag, no ~2-day retention of daily spend)."""

    def __init__(
        self,
        events: Sequence[ScenarioEvent],
        names: Mapping[str, str] | None = None,
        cycle_starts: Sequence[date] = (),
    ) -> None:
        self._events = events
        self._next = 0
        self._names = dict(names or {})
        self._cycle_starts = sorted(cycle_starts)
        self._acc: dict[date, dict[str, _Acc]] = {}
        self._frozen: dict[date, dict[str, DayUsage]] = {}
        self._now: datetime | None = None
        self._cycle_start: date | None = None
        self._cycle_micros: dict[str, int] = {}
        self._cycle_requests: dict[str, int] = {}

    @classmethod
    def for_scenario(cls, scenario: Scenario) -> PeerFeed:
        """A feed of the scenario's events that knows its members' names and its cycles."""
        names = {d.email: d.name for d in scenario.developers}
        return cls(scenario.events, names, scenario.cycle_starts)

    def snapshot(self, now: datetime, cycle_start: date | None = None) -> PeerData:
        """Everything that happened up to and including `now`; the current cycle is looked
        up in the feed's cycle starts unless given."""
        if self._now is not None and now < self._now:
            raise ValueError("snapshots must move forward in time")
        if cycle_start is None:
            index = bisect_right(self._cycle_starts, now.astimezone(UTC).date()) - 1
            if index < 0:
                raise ValueError(f"no billing cycle known at {now}")
            cycle_start = self._cycle_starts[index]
        self._now = now
        if cycle_start != self._cycle_start:
            self._start_cycle(cycle_start)
        events = self._events
        while self._next < len(events) and events[self._next].occurred_at <= now:
            event = events[self._next]
            day = event.occurred_at.date()
            self._acc.setdefault(day, {}).setdefault(event.user_email, _Acc()).add(event)
            if day >= cycle_start:
                email = event.user_email
                self._cycle_micros[email] = self._cycle_micros.get(email, 0) + event.cost_micros
                self._cycle_requests[email] = self._cycle_requests.get(email, 0) + 1
            self._next += 1
        today = now.astimezone(UTC).date()
        daily: dict[date, Mapping[str, DayUsage]] = {}
        for day, users in self._acc.items():
            if day < today:  # a finished day does not change any more
                frozen = self._frozen.get(day)
                if frozen is None:
                    frozen = self._frozen[day] = {e: a.frozen() for e, a in users.items()}
                daily[day] = frozen
            else:
                daily[day] = {e: a.frozen() for e, a in users.items()}
        return PeerData(
            now=now,
            cycle_start=cycle_start,
            daily=daily,
            cycle_spend_cents={e: micros_to_cents(m) for e, m in self._cycle_micros.items()},
            cycle_requests=dict(self._cycle_requests),
            names=self._names,
        )

    def _start_cycle(self, cycle_start: date) -> None:
        self._cycle_start = cycle_start
        self._cycle_micros, self._cycle_requests = {}, {}
        for day, users in self._acc.items():
            if day >= cycle_start:
                for email, acc in users.items():
                    self._cycle_micros[email] = self._cycle_micros.get(email, 0) + acc.micros
                    self._cycle_requests[email] = self._cycle_requests.get(email, 0) + acc.requests


def peer_data_from_events(
    events: Sequence[ScenarioEvent],
    now: datetime,
    cycle_start: date,
    names: Mapping[str, str] | None = None,
) -> PeerData:
    """The peer's tables at `now`, from a scenario's events sorted by time (one-off)."""
    upto = bisect_right(events, now, key=lambda e: e.occurred_at)
    return PeerFeed(events[:upto], names).snapshot(now, cycle_start)
