"""Runaway agents: a burst in a sliding window far above the user's own usual peaks, or headless
requests that keep coming for hours.

A user's "usual peak" is the 99th percentile of their trailing-window totals (one window ending
at each of their requests) over the history days. Pure: the caller passes the requests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from spendwatch.common.thresholds import Runaway
from spendwatch.detector.findings import (
    Finding,
    cents,
    day_window,
    display_name,
    money,
    severity,
    tenths,
)

RUNAWAY = "runaway"
MIN_BASELINE_WINDOWS = 50  # fewer, and the floors alone decide (times the multiplier for spend)
MIN_BURST_REQUESTS = 3  # one or two expensive requests are not a runaway
_ZERO = Decimal(0)
_HOUR = Decimal(3600)


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the burst rules see it."""

    at: datetime
    spend: Decimal
    tokens: int
    headless: bool
    model: str


@dataclass(frozen=True, slots=True)
class WindowTotal:
    """The requests in the window that ends at `end` (the last request's time)."""

    first: datetime
    end: datetime
    spend: Decimal
    tokens: int
    requests: int
    top_model: str


@dataclass(frozen=True, slots=True)
class Peaks:
    """A user's usual peak per window: the 99th percentile of their window totals."""

    spend: Decimal
    tokens: int
    requests: int
    windows: int


def trailing_windows(requests: Sequence[Request], window: timedelta) -> list[WindowTotal]:
    """One total per request: that request and the ones within `window` before it."""
    totals: list[WindowTotal] = []
    spend, tokens, low = _ZERO, 0, 0
    models: Counter[str] = Counter()
    for high, r in enumerate(requests):
        spend, tokens = spend + r.spend, tokens + r.tokens
        models[r.model] += 1
        while requests[low].at <= r.at - window:
            gone = requests[low]
            spend, tokens = spend - gone.spend, tokens - gone.tokens
            models[gone.model] -= 1
            low += 1
        top = max(models.items(), key=lambda kv: (kv[1], kv[0]))[0]
        totals.append(WindowTotal(requests[low].at, r.at, spend, tokens, high - low + 1, top))
    return totals


def usual_peaks(history: Sequence[Request], window: timedelta) -> Peaks:
    """The 99th percentile (nearest rank) of each window total over the history."""
    totals = trailing_windows(history, window)
    if not totals:
        return Peaks(_ZERO, 0, 0, 0)
    rank = max(0, -(-99 * len(totals) // 100) - 1)
    return Peaks(
        spend=sorted(t.spend for t in totals)[rank],
        tokens=sorted(t.tokens for t in totals)[rank],
        requests=sorted(t.requests for t in totals)[rank],
        windows=len(totals),
    )


def runaway(
    user_email: str,
    day: date,
    requests: Sequence[Request],
    peaks: Peaks,
    s: Runaway,
    critical_factor: Decimal,
    tz: ZoneInfo,
    *,
    since: datetime | None = None,
) -> Finding | None:
    """The worst burst among windows ending at `since` or later, else a long headless run."""
    window = timedelta(minutes=s.window_minutes)
    bounds = limits(peaks, s)
    worst: tuple[Decimal, Finding] | None = None
    for total in trailing_windows(requests, window):
        if (since is not None and total.end < since) or total.requests < MIN_BURST_REQUESTS:
            continue
        for metric, value, limit, usual in (
            ("window_spend", total.spend, bounds[0], peaks.spend),
            ("window_tokens", Decimal(total.tokens), bounds[1], Decimal(peaks.tokens)),
            ("window_requests", Decimal(total.requests), bounds[2], Decimal(peaks.requests)),
        ):
            if not limit or value <= limit:
                continue
            ratio = value / limit
            if worst is None or ratio > worst[0]:
                worst = (
                    ratio,
                    _burst(
                        user_email,
                        day,
                        total,
                        metric,
                        value,
                        limit,
                        usual,
                        s,
                        critical_factor,
                        tz,
                        peaks_known=peaks.windows >= MIN_BASELINE_WINDOWS,
                    ),
                )
    if worst is not None:
        return worst[1]
    return headless_run(user_email, day, requests, s, critical_factor, tz)


def burst_holds(requests: Sequence[Request], peaks: Peaks, s: Runaway, at: datetime) -> bool:
    """Whether the window ending at `at` is still over a limit (the burst has not ended)."""
    start = at - timedelta(minutes=s.window_minutes)
    inside = [r for r in requests if start < r.at <= at]
    if len(inside) < MIN_BURST_REQUESTS:
        return False
    spend_limit, tokens_limit, requests_limit = limits(peaks, s)
    spend = sum((r.spend for r in inside), _ZERO)
    tokens = sum(r.tokens for r in inside)
    return bool(
        (spend_limit and spend > spend_limit)
        or (tokens_limit and tokens > tokens_limit)
        or (requests_limit and len(inside) > requests_limit)
    )


def headless_run(
    user_email: str,
    day: date,
    requests: Sequence[Request],
    s: Runaway,
    critical_factor: Decimal,
    tz: ZoneInfo,
) -> Finding | None:
    """Headless requests without a pause longer than the window, for `headless_hours` or more."""
    if not s.headless_hours:
        return None
    gap = timedelta(minutes=s.window_minutes)
    headless = [r for r in requests if r.headless]
    best, first = (0, 0), 0
    for i in range(1, len(headless)):
        if headless[i].at - headless[i - 1].at > gap:
            first = i
        elif headless[i].at - headless[first].at > headless[best[1]].at - headless[best[0]].at:
            best = (first, i)
    longest = headless[best[0] : best[1] + 1]
    hours = _hours(longest)
    limit = Decimal(s.headless_hours)
    if hours < limit:
        return None
    spend = sum((r.spend for r in longest), _ZERO)
    model = Counter(r.model for r in longest).most_common(1)[0][0]
    start, end = day_window(day, tz)
    shown = hours.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return Finding(
        detector=RUNAWAY,
        subject=user_email,
        metric="headless_hours",
        unit="hours",
        value=shown,
        threshold=limit,
        baseline=_ZERO,
        window_start=start,
        window_end=end,
        window_key=day.isoformat(),
        model=model,
        message=(
            f"{display_name(user_email)}: a headless agent has run for {shown} hours without a "
            f"break (since {longest[0].at.astimezone(tz):%H:%M %Z}), {len(longest):,} requests, "
            f"{money(spend)} — mostly {model}"
        ),
        severity=severity(hours, limit, _ZERO, critical_factor),
        evidence_first_at=longest[0].at,
    )


def limits(peaks: Peaks, s: Runaway) -> tuple[Decimal, Decimal, Decimal]:
    """Spend, tokens and requests limits of a window; 0 = that metric is not judged."""
    if s.p99_multiplier <= 0:
        return _ZERO, _ZERO, _ZERO
    known = peaks.windows >= MIN_BASELINE_WINDOWS
    # Without enough history, only a burst the multiplier times over the floor counts.
    usual_spend = peaks.spend if known else s.min_window_spend_usd
    spend = max(s.p99_multiplier * usual_spend, s.min_window_spend_usd)
    tokens = s.p99_multiplier * peaks.tokens if known else _ZERO
    requests = max(
        s.p99_multiplier * peaks.requests if known else _ZERO, Decimal(s.min_window_requests)
    )
    return spend, tokens, requests


def _burst(
    user_email: str,
    day: date,
    total: WindowTotal,
    metric: str,
    value: Decimal,
    limit: Decimal,
    usual: Decimal,
    s: Runaway,
    critical_factor: Decimal,
    tz: ZoneInfo,
    *,
    peaks_known: bool,
) -> Finding:
    start, end = day_window(day, tz)
    minutes = f"{s.window_minutes} minutes"
    what = {
        "window_spend": (money(value), money(usual), "usd"),
        "window_tokens": (f"{value:,} tokens", f"{usual:,}", "tokens"),
        "window_requests": (f"{value:,} requests", f"{usual:,}", "requests"),
    }[metric]
    if peaks_known and usual:
        against = f"{tenths(value / usual)}x their usual peak of {what[1]}"
    else:
        against = "too little history for a usual peak"
    rest = [f"{total.requests:,} requests", money(total.spend)]
    rest = [r for r in rest if r != what[0]]
    return Finding(
        detector=RUNAWAY,
        subject=user_email,
        metric=metric,
        unit=what[2],
        value=cents(value) if metric == "window_spend" else value,
        threshold=cents(limit) if metric == "window_spend" else limit.to_integral_value(),
        baseline=cents(usual) if metric == "window_spend" else usual,
        window_start=start,
        window_end=end,
        window_key=day.isoformat(),
        model=total.top_model,
        message=(
            f"{display_name(user_email)}: {what[0]} in {minutes} ({against}), "
            f"{', '.join(rest)}, mostly {total.top_model}"
        ),
        severity=severity(value, limit, usual if usual < limit else _ZERO, critical_factor),
        evidence_first_at=total.first,
    )


def _hours(run: Sequence[Request]) -> Decimal:
    if len(run) < 2:  # a run needs two requests to last
        return _ZERO
    return Decimal((run[-1].at - run[0].at).total_seconds()) / _HOUR
