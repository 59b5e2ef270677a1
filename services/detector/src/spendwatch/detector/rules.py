"""Day rules: one user's team-timezone day against their own history, or against the team.

No I/O and no clock: the caller passes the days, the thresholds and the team timezone. Money is
exact `Decimal` USD; reported amounts are quantized to cents. A partial day can only grow, so a
rule that fires on it stays true (or gets worse) as the day goes on.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

from spendwatch.common.thresholds import CostPerRequest, Seasonal, SpendSpike, StaticCaps, ZScore
from spendwatch.detector.findings import (
    Finding,
    Severity,
    cents,
    day_window,
    display_name,
    money,
    severity,
    tenths,
)

SPEND_SPIKE = "spend_spike"
REQUESTS_CAP = "requests_cap"
TOKENS_CAP = "tokens_cap"
ZSCORE = "zscore"
COST_PER_REQUEST = "cost_per_request"
SEASONAL = "seasonal"
DAILY_SPEND = "daily_spend"
USD = "usd"

_ZERO = Decimal(0)
_SIGMA = "\N{GREEK SMALL LETTER SIGMA}"
_MAD_TO_SIGMA = Decimal("1.4826")  # MAD x this estimates sigma for normal data
_WEEKDAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


@dataclass(frozen=True, slots=True)
class UserDay:
    """One user's usage on one team-timezone calendar day."""

    user_email: str
    day: date
    spend: Decimal
    requests: int
    first_event_at: datetime | None
    top_model: str | None
    name: str | None = None
    tokens: int = 0  # input + output + cache read + cache write


@dataclass(frozen=True, slots=True)
class ModelDay:
    """One user's usage of one model on one day."""

    user_email: str
    day: date
    model: str
    spend: Decimal
    requests: int
    first_event_at: datetime | None = None
    name: str | None = None


def spend_spike(
    today: UserDay,
    history: Sequence[UserDay],
    s: SpendSpike,
    critical_factor: Decimal,
    tz: ZoneInfo,
) -> Finding | None:
    """Today's spend above `multiplier` x the user's average over the lookback (gaps are $0).

    The baseline is the higher of the lookback's and the long lookback's average; a user whose
    first usage is less than `warmup_days` ago has no baseline yet and is left to other rules.
    """
    if s.multiplier <= 0 or today.spend < s.min_daily_spend_usd:
        return None
    past = _before(today, history)
    if s.warmup_days and (not past or min(past) > today.day - timedelta(days=s.warmup_days)):
        return None
    days, baseline = s.lookback_days, _average(past, today.day, s.lookback_days)
    if s.long_lookback_days > s.lookback_days:
        longer = _average(past, today.day, s.long_lookback_days)
        if longer > baseline:
            days, baseline = s.long_lookback_days, longer
    floored = max(baseline, s.min_baseline_usd)
    threshold = floored * s.multiplier
    if today.spend <= threshold:
        return None
    if baseline > 0:
        ratio = tenths(today.spend / baseline)
        against = f"{ratio}x their {days}-day avg of {money(baseline)}"
    else:
        against = f"no spend in the previous {s.lookback_days} days"
    message = f"{_name(today)}: daily spend spiked to {money(today.spend)} ({against})"
    return _finding(
        SPEND_SPIKE,
        today,
        threshold=threshold,
        baseline=baseline,
        severity=severity(today.spend, threshold, floored, critical_factor),
        message=message,
        tz=tz,
    )


def usual_working_day(today: UserDay, history: Sequence[UserDay], days: int) -> Decimal | None:
    """The user's average spend on the days they used anything, over `days` before today; None
    without such a day."""
    first = today.day - timedelta(days=days)
    active = [v for d, v in _before(today, history).items() if d >= first and v > 0]
    return sum(active, _ZERO) / len(active) if active else None


def zscore(
    population: Sequence[UserDay],
    s: ZScore,
    critical_factor: Decimal,
    tz: ZoneInfo,
    *,
    candidates: Collection[str] | None = None,
    own_averages: Mapping[str, Decimal | None] | None = None,
) -> list[Finding]:
    """Users whose spend is more than `multiplier` sample std-devs above the active-user mean.

    Only `candidates` (default: everyone) are reported. Given `own_averages` (each user's usual
    working day), only those whose entry is known and at most today / `min_own_ratio`: a steadily
    heavy user is not news every day, and a user without history is not judged yet.
    """
    active = [d for d in population if d.spend > 0]
    if s.multiplier <= 0 or len(active) < s.min_users:
        return []
    if len({d.day for d in active}) > 1:
        raise ValueError("zscore needs one day's population")
    n = len(active)
    with localcontext() as ctx:
        ctx.prec = 50  # n*sum(x^2) - sum(x)^2 cancels heavily: keep it exact
        total = sum((d.spend for d in active), _ZERO)
        squares = sum((d.spend * d.spend for d in active), _ZERO)
        numerator = n * squares - total * total
        if numerator <= 0:  # every active user spent the same: sigma = 0
            return []
        mean = total / n
        sigma = (numerator / (n * (n - 1))).sqrt()
        threshold = mean + s.multiplier * sigma
        findings: list[Finding] = []
        for d in active:
            if d.spend < s.min_daily_spend_usd or d.spend <= threshold:
                continue
            if candidates is not None and d.user_email not in candidates:
                continue
            if s.min_own_ratio and own_averages is not None:
                usual = own_averages.get(d.user_email)
                if usual is None or d.spend < s.min_own_ratio * usual:
                    continue
            z = tenths((d.spend - mean) / sigma)
            message = (
                f"{_name(d)}: daily spend {money(d.spend)} is {z}{_SIGMA} above the team mean of "
                f"{money(mean)}"
            )
            if d.top_model:
                message += f" — mostly {d.top_model}"
            findings.append(
                _finding(
                    ZSCORE,
                    d,
                    threshold=threshold,
                    baseline=mean,
                    severity=severity(d.spend, threshold, mean, critical_factor),
                    message=message,
                    tz=tz,
                )
            )
    return findings


def daily_caps(
    day: UserDay, caps: StaticCaps, critical_factor: Decimal, tz: ZoneInfo
) -> list[Finding]:
    """A user's requests or tokens on one day over a hard cap (each cap off at 0).

    Critical once the value is `critical_factor` times the cap (the distance from zero).
    """
    findings = []
    for detector, metric, unit, used, cap in (
        (REQUESTS_CAP, "daily_requests", "requests", day.requests, caps.user_daily_requests),
        (TOKENS_CAP, "daily_tokens", "tokens", day.tokens, caps.user_daily_tokens),
    ):
        if cap and used > cap:
            value, limit = Decimal(used), Decimal(cap)
            findings.append(
                _finding(
                    detector,
                    day,
                    threshold=limit,
                    baseline=_ZERO,
                    severity=severity(value, limit, _ZERO, critical_factor),
                    message=f"{_name(day)}: {used:,} {unit} today, over the cap of {cap:,}",
                    tz=tz,
                    metric=metric,
                    unit=unit,
                    value=value,
                )
            )
    return findings


def cost_per_request(
    today: UserDay,
    history: Sequence[UserDay],
    models_today: Sequence[ModelDay],
    s: CostPerRequest,
    critical_factor: Decimal,
    tz: ZoneInfo,
) -> Finding | None:
    """Today's $/request above `multiplier` x the user's own over the lookback, naming the model
    whose requests cost the most beyond that average."""
    if s.multiplier <= 0 or today.spend < s.min_daily_spend_usd or today.requests < s.min_requests:
        return None
    first = today.day - timedelta(days=s.lookback_days)
    past = [d for d in history if d.user_email == today.user_email and first <= d.day < today.day]
    requests = sum(d.requests for d in past)
    if requests < max(s.min_history_requests, 1):
        return None
    usual = sum((d.spend for d in past), _ZERO) / requests
    value = today.spend / today.requests
    threshold = usual * s.multiplier
    if usual <= 0 or value <= threshold:
        return None
    driver = max(
        (m for m in models_today if m.user_email == today.user_email and m.day == today.day),
        key=lambda m: (m.spend - usual * m.requests, m.model),
        default=None,
    )
    model = driver.model if driver else today.top_model
    message = (
        f"{_name(today)}: {money(value)} per request today, {tenths(value / usual)}x their "
        f"{s.lookback_days}-day average of {money(usual)}"
    )
    if model:
        message += f" — driven by {model}"
    return _finding(
        COST_PER_REQUEST,
        today,
        threshold=threshold,
        baseline=usual,
        severity=severity(value, threshold, usual, critical_factor),
        message=message,
        tz=tz,
        metric="cost_per_request",
        unit="usd_per_request",
        value=cents(value),
        model=model,
    )


def seasonal(
    today: UserDay,
    history: Sequence[UserDay],
    s: Seasonal,
    critical_factor: Decimal,
    tz: ZoneInfo,
) -> Finding | None:
    """Today's spend above a robust baseline of the same weekday: median + k x MAD (scaled to
    sigma) of the last `weeks` same weekdays, at least `min_increase_pct` above that median, and
    at least `min_spend_usd`. Needs `warmup_days` of history first. A same weekday with no spend
    counts as $0, unless the user spent nothing that whole week (away: not a sample)."""
    if s.k <= 0 or today.spend < s.min_spend_usd:
        return None
    past = _before(today, history)
    if not past or min(past) > today.day - timedelta(days=s.warmup_days):
        return None
    days = [today.day - timedelta(weeks=w) for w in range(1, s.weeks + 1)]
    samples = [past.get(d, _ZERO) for d in days if d >= min(past) and _present(past, d)]
    if not samples:
        return None
    median = Decimal(statistics.median(samples))
    mad = Decimal(statistics.median([abs(x - median) for x in samples]))
    floor = median * (1 + Decimal(s.min_increase_pct) / 100)
    threshold = max(median + s.k * _MAD_TO_SIGMA * mad, floor, s.min_spend_usd)
    if today.spend <= threshold:
        return None
    weekday = _WEEKDAYS[today.day.weekday()]
    message = (
        f"{_name(today)}: spent {money(today.spend)} today, against their usual "
        f"{money(median)} on {weekday} (last {len(samples)})"
    )
    return _finding(
        SEASONAL,
        today,
        threshold=threshold,
        baseline=median,
        severity=severity(today.spend, threshold, median, critical_factor),
        message=message,
        tz=tz,
    )


def _before(today: UserDay, history: Sequence[UserDay]) -> dict[date, Decimal]:
    """The user's spend per day before today."""
    return {
        d.day: d.spend for d in history if d.user_email == today.user_email and d.day < today.day
    }


def _present(past: Mapping[date, Decimal], day: date) -> bool:
    """Whether the user spent anything in the week around `day` (three days either side)."""
    return any(past.get(day + timedelta(days=k), _ZERO) > 0 for k in range(-3, 4))


def _average(past: Mapping[date, Decimal], today: date, days: int) -> Decimal:
    first = today - timedelta(days=days)
    return sum((v for d, v in past.items() if d >= first), _ZERO) / days


def _finding(
    detector: str,
    day: UserDay,
    *,
    threshold: Decimal,
    baseline: Decimal,
    severity: Severity,
    message: str,
    tz: ZoneInfo,
    metric: str = DAILY_SPEND,
    unit: str = USD,
    value: Decimal | None = None,
    model: str | None = None,
) -> Finding:
    start, end = day_window(day.day, tz)
    return Finding(
        detector=detector,
        subject=day.user_email,
        metric=metric,
        unit=unit,
        value=cents(day.spend) if value is None else value,
        threshold=cents(threshold),
        baseline=cents(baseline),
        window_start=start,
        window_end=end,
        window_key=day.day.isoformat(),
        model=model or day.top_model,
        message=message,
        severity=severity,
        evidence_first_at=day.first_event_at,
    )


def _name(day: UserDay) -> str:
    return display_name(day.user_email, day.name)
