"""Billing-cycle rules: caps and budgets, the team's outliers, expensive models, plan exhaustion.

A cycle is a run of team-timezone days starting on the cycle date Cursor reports (monthly from
that anchor; calendar months when there is none). Pure: the caller passes the cycle's numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

from spendwatch.common.cycles import Cycle
from spendwatch.common.thresholds import CycleOutlier, ExpensiveModel, StaticCaps
from spendwatch.detector.findings import (
    TEAM,
    Finding,
    Severity,
    cents,
    display_name,
    money,
    severity,
    tenths,
)
from spendwatch.detector.rules import ModelDay

USER_CYCLE_CAP = "user_cycle_cap"
TEAM_BUDGET = "team_budget"
CYCLE_OUTLIER = "cycle_outlier"
EXPENSIVE_MODEL = "expensive_model"
PLAN_EXHAUSTION = "plan_exhaustion"
CYCLE_SPEND = "cycle_spend"

_ZERO = Decimal(0)
_PERCENT = Decimal(100)


@dataclass(frozen=True, slots=True)
class CycleSpend:
    """One user's spend in a cycle so far."""

    user_email: str
    spend: Decimal
    on_demand: Decimal  # past the included plan ('usage_based')
    on_demand_requests: int
    first_on_demand_day: date | None
    top_model: str | None
    name: str | None = None


def user_cycle_cap(
    spends: Sequence[CycleSpend],
    caps: StaticCaps,
    critical_factor: Decimal,
    cycle: Cycle,
    tz: ZoneInfo,
) -> list[Finding]:
    """Users whose cycle spend is over the per-user cap (critical at `critical_factor` x)."""
    cap = caps.user_cycle_spend_usd
    if not cap:
        return []
    return [
        _finding(
            USER_CYCLE_CAP,
            s.user_email,
            cycle,
            tz,
            value=s.spend,
            threshold=cap,
            baseline=_ZERO,
            severity=severity(s.spend, cap, _ZERO, critical_factor),
            message=(
                f"{display_name(s.user_email, s.name)}: spent {money(s.spend)} this cycle, over "
                f"the cap of {money(cap)}"
            ),
            model=s.top_model,
        )
        for s in spends
        if s.spend > cap
    ]


def team_budget(
    team_spend: Decimal, caps: StaticCaps, cycle: Cycle, tz: ZoneInfo
) -> Finding | None:
    """The team reached its cycle budget: warning at 100 %, critical at the critical ratio."""
    budget = caps.team_cycle_budget_usd
    if not budget or team_spend < budget:
        return None
    grade: Severity = (
        "critical" if team_spend >= budget * caps.team_budget_critical_ratio else "warning"
    )
    share = (team_spend / budget * _PERCENT).quantize(Decimal(1), rounding=ROUND_DOWN)
    return _finding(
        TEAM_BUDGET,
        TEAM,
        cycle,
        tz,
        value=team_spend,
        threshold=budget,
        baseline=None,
        severity=grade,
        message=(
            f"Team spend {money(team_spend)} has reached the {money(budget)} budget for this "
            f"cycle ({share}%)"
        ),
    )


def cycle_outlier(
    spends: Sequence[CycleSpend],
    s: CycleOutlier,
    critical_factor: Decimal,
    cycle: Cycle,
    tz: ZoneInfo,
) -> list[Finding]:
    """Users whose cycle spend is over `multiplier` x the median of the active users."""
    active = [x for x in spends if x.spend > 0]
    if s.multiplier <= 0 or len(active) < s.min_users:
        return []
    median = Decimal(statistics.median(x.spend for x in active))
    if median < s.min_median_usd:
        return []
    threshold = median * s.multiplier
    return [
        _finding(
            CYCLE_OUTLIER,
            x.user_email,
            cycle,
            tz,
            value=x.spend,
            threshold=threshold,
            baseline=median,
            severity=severity(x.spend, threshold, median, critical_factor),
            message=(
                f"{display_name(x.user_email, x.name)}: cycle spend {money(x.spend)} is "
                f"{tenths(x.spend / median)}x the team median of {money(median)}"
                + (f" — mostly {x.top_model}" if x.top_model else "")
            ),
            model=x.top_model,
        )
        for x in active
        if x.spend > threshold
    ]


def plan_exhaustion(spends: Sequence[CycleSpend], cycle: Cycle, tz: ZoneInfo) -> list[Finding]:
    """Info: users who went past the included plan this cycle (for the daily digest)."""
    findings = []
    for s in spends:
        if not s.on_demand_requests or s.first_on_demand_day is None:
            continue
        day = s.first_on_demand_day
        findings.append(
            _finding(
                PLAN_EXHAUSTION,
                s.user_email,
                cycle,
                tz,
                value=s.on_demand,
                threshold=_ZERO,
                baseline=None,
                severity="info",
                message=(
                    f"{display_name(s.user_email, s.name)}: went past the included plan on day "
                    f"{cycle.day_number(day)} of the cycle ({day:%b} {day.day}); "
                    f"{s.on_demand_requests:,} requests and {money(s.on_demand)} billed on "
                    "demand since"
                ),
                metric="on_demand_spend",
                model=s.top_model,
            )
        )
    return findings


def team_cost_per_request(population: Sequence[tuple[str, Decimal, int]]) -> Decimal | None:
    """The median of the users' own $/request (user, spend, requests); None without requests."""
    rates = [spend / requests for _, spend, requests in population if requests > 0]
    return Decimal(statistics.median(rates)) if rates else None


def expensive_model(
    model_days: Sequence[ModelDay],
    team_median: Decimal | None,
    team_model: str | None,
    s: ExpensiveModel,
    critical_factor: Decimal,
    cycle: Cycle,
    tz: ZoneInfo,
    *,
    candidates: Collection[str] | None = None,
) -> list[Finding]:
    """A user's $/request on one model that day far above the team's median $/request.

    One incident per user, model and cycle: it is a habit to talk about, not a daily page.
    """
    if s.multiplier <= 0 or not team_median:
        return []
    threshold = team_median * s.multiplier
    findings = []
    for m in model_days:
        if candidates is not None and m.user_email not in candidates:
            continue
        if m.requests < s.min_requests or m.spend < s.min_spend_usd:
            continue
        rate = m.spend / m.requests
        if rate <= threshold:
            continue
        usual = f"; most of the team uses {team_model}" if team_model else ""
        findings.append(
            _finding(
                EXPENSIVE_MODEL,
                m.user_email,
                cycle,
                tz,
                value=rate,
                threshold=threshold,
                baseline=team_median,
                severity=severity(rate, threshold, team_median, critical_factor),
                message=(
                    f"{display_name(m.user_email, m.name)}: averaged {money(rate)}/req on "
                    f"{m.model} today over {m.requests:,} requests "
                    f"(team median {money(team_median)}/req across models{usual})"
                ),
                metric="cost_per_request",
                unit="usd_per_request",
                model=m.model,
                key=f"{cycle.start.isoformat()}/{m.model}",
                evidence_first_at=m.first_event_at,
            )
        )
    return findings


def _finding(
    detector: str,
    subject: str,
    cycle: Cycle,
    tz: ZoneInfo,
    *,
    value: Decimal,
    threshold: Decimal,
    baseline: Decimal | None,
    severity: Severity,
    message: str,
    metric: str = CYCLE_SPEND,
    unit: str = "usd",
    model: str | None = None,
    key: str | None = None,
    evidence_first_at: datetime | None = None,
) -> Finding:
    start, end = cycle.window(tz)
    return Finding(
        detector=detector,
        subject=subject,
        metric=metric,
        unit=unit,
        value=cents(value),
        threshold=cents(threshold),
        baseline=None if baseline is None else cents(baseline),
        window_start=start,
        window_end=end,
        window_key=key or cycle.start.isoformat(),
        model=model,
        message=message,
        severity=severity,
        # None for cumulative amounts: the service finds the event where the amount crossed
        evidence_first_at=evidence_first_at,
    )
