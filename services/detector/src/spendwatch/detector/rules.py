"""Pure detection rules: a user's day against their own history, or against the team that day.

No I/O and no clock: the caller passes the days, the thresholds and the team timezone. Money is
exact `Decimal` USD; reported amounts are quantized to cents. A finding becomes an
`AnomalyDetectedV1` in the service; its fingerprint is subject + detector + day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Literal
from zoneinfo import ZoneInfo

from spendwatch.detector.thresholds import SpendSpike, StaticCaps, ZScore

Severity = Literal["warning", "critical"]

SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}  # worse is higher
SPEND_SPIKE = "spend_spike"
REQUESTS_CAP = "requests_cap"
TOKENS_CAP = "tokens_cap"
ZSCORE = "zscore"
DAILY_SPEND = "daily_spend"
USD = "usd"

_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")
_DOLLAR = Decimal(1)
_WHOLE_DOLLARS_FROM = Decimal(10)
_ZERO = Decimal(0)
_SIGMA = "\N{GREEK SMALL LETTER SIGMA}"


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
class Finding:
    """A detector's verdict on one user's day, ready to become an `AnomalyDetectedV1`."""

    detector: str
    subject: str
    metric: str
    unit: str
    value: Decimal
    threshold: Decimal
    baseline: Decimal | None
    window_start: datetime
    window_end: datetime
    window_key: str
    model: str | None
    message: str
    severity: Severity
    evidence_first_at: datetime | None

    @property
    def fingerprint(self) -> str:
        """One incident per user, detector and day."""
        return f"{self.subject}:{self.detector}:{self.window_key}"


def day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Local midnight to the next local midnight in `tz`, as aware UTC datetimes (DST-safe)."""
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


def severity(
    value: Decimal, threshold: Decimal, baseline: Decimal, critical_factor: Decimal
) -> Severity:
    """Critical when the excess over the baseline is above `critical_factor` threshold-distances."""
    if value - baseline > critical_factor * (threshold - baseline):
        return "critical"
    return "warning"


def spend_spike(
    today: UserDay,
    history: Sequence[UserDay],
    s: SpendSpike,
    critical_factor: Decimal,
    tz: ZoneInfo,
) -> Finding | None:
    """Today's spend above `multiplier` x the user's average over the lookback (gaps are $0)."""
    if s.multiplier <= 0 or today.spend < s.min_daily_spend_usd:
        return None
    first = today.day - timedelta(days=s.lookback_days)
    total = sum(
        (
            d.spend
            for d in history
            if d.user_email == today.user_email and first <= d.day < today.day
        ),
        _ZERO,
    )
    baseline = total / s.lookback_days
    floored = max(baseline, s.min_baseline_usd)
    threshold = floored * s.multiplier
    if today.spend <= threshold:
        return None
    if baseline > 0:
        ratio = _tenths(today.spend / baseline)
        against = f"{ratio}x their {s.lookback_days}-day avg of {_money(baseline)}"
    else:
        against = f"no spend in the previous {s.lookback_days} days"
    message = f"{_name(today)}: daily spend spiked to {_money(today.spend)} ({against})"
    return _finding(
        SPEND_SPIKE,
        today,
        threshold=threshold,
        baseline=baseline,
        severity=severity(today.spend, threshold, floored, critical_factor),
        message=message,
        tz=tz,
    )


def zscore(
    population: Sequence[UserDay], s: ZScore, critical_factor: Decimal, tz: ZoneInfo
) -> list[Finding]:
    """Users whose spend is more than `multiplier` sample std-devs above the active-user mean."""
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
            z = _tenths((d.spend - mean) / sigma)
            message = (
                f"{_name(d)}: daily spend {_money(d.spend)} is {z}{_SIGMA} above the team mean of "
                f"{_money(mean)}"
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
                    baseline=Decimal(0),
                    severity=severity(value, limit, Decimal(0), critical_factor),
                    message=f"{_name(day)}: {used:,} {unit} today, over the cap of {cap:,}",
                    tz=tz,
                    metric=metric,
                    unit=unit,
                    value=value,
                )
            )
    return findings


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
) -> Finding:
    start, end = day_window(day.day, tz)
    return Finding(
        detector=detector,
        subject=day.user_email,
        metric=metric,
        unit=unit,
        value=_cents(day.spend) if value is None else value,
        threshold=_cents(threshold),
        baseline=_cents(baseline),
        window_start=start,
        window_end=end,
        window_key=day.day.isoformat(),
        model=day.top_model,
        message=message,
        severity=severity,
        evidence_first_at=day.first_event_at,
    )


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def _tenths(amount: Decimal) -> str:
    return f"{amount.quantize(_TENTH, rounding=ROUND_HALF_UP):,}"


def _money(amount: Decimal) -> str:
    """Whole dollars from $10 up (`$214`, `$1,250`), cents below (`$4.75`)."""
    cents = _cents(amount)
    if cents >= _WHOLE_DOLLARS_FROM:
        return f"${cents.quantize(_DOLLAR, rounding=ROUND_HALF_UP):,}"
    return f"${cents:,}"


def _name(day: UserDay) -> str:
    """The display name, else the email's local part as words (`alice.smith` -> `Alice Smith`)."""
    if day.name and day.name.strip():
        return day.name.strip()
    local = day.user_email.partition("@")[0].partition("+")[0]
    words = local.replace("_", ".").replace("-", ".").split(".")
    return " ".join(w[:1].upper() + w[1:] for w in words if w) or day.user_email
