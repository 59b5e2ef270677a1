"""What every rule returns, and how rules word and grade it.

A `Finding` becomes an `AnomalyDetectedV1` in the service. Its fingerprint is subject + detector +
window key, so one user's spike and cycle outlier are two things, and a worse value later in the
same window is the same thing at a higher severity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

Severity = Literal["info", "warning", "critical"]

SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}  # worse is higher
TEAM = "team"  # the subject of team-wide findings

_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")
_DOLLAR = Decimal(1)
_WHOLE_DOLLARS_FROM = Decimal(10)


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's verdict on one subject and window, ready to become an `AnomalyDetectedV1`."""

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
        """One incident per subject, detector and window."""
        return fingerprint(self.subject, self.detector, self.window_key)


def fingerprint(subject: str, detector: str, window_key: str) -> str:
    """`bob@x.com:spend_spike:2026-11-21`; subjects and detectors never contain a colon (a window
    key may: `2026-11-01/anthropic.claude-3-5-sonnet-v1:0`)."""
    return f"{subject}:{detector}:{window_key}"


def parse_fingerprint(value: str) -> tuple[str, str, str]:
    """(subject, detector, window key) of a fingerprint."""
    subject, detector, key = value.split(":", 2)
    return subject, detector, key


def day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Local midnight to the next local midnight in `tz`, as aware UTC datetimes (DST-safe)."""
    return days_window(day, day + timedelta(days=1), tz)


def days_window(first: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Local midnight of `first` to local midnight of `end` (exclusive), as aware UTC."""
    start = datetime.combine(first, time(), tzinfo=tz).astimezone(UTC)
    stop = datetime.combine(end, time(), tzinfo=tz).astimezone(UTC)
    return start, stop


def severity(
    value: Decimal, threshold: Decimal, baseline: Decimal, critical_factor: Decimal
) -> Severity:
    """Critical when the excess over the baseline is above `critical_factor` threshold-distances."""
    if value - baseline > critical_factor * (threshold - baseline):
        return "critical"
    return "warning"


def cents(amount: Decimal) -> Decimal:
    """Rounded to the cent, half up (what people read)."""
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def tenths(amount: Decimal) -> str:
    """`4.2`, `1,250.0`."""
    return f"{amount.quantize(_TENTH, rounding=ROUND_HALF_UP):,}"


def money(amount: Decimal) -> str:
    """Whole dollars from $10 up (`$214`, `$1,250`), cents below (`$4.75`)."""
    rounded = cents(amount)
    if rounded >= _WHOLE_DOLLARS_FROM:
        return f"${rounded.quantize(_DOLLAR, rounding=ROUND_HALF_UP):,}"
    return f"${rounded:,}"


def display_name(email: str, name: str | None = None) -> str:
    """The display name, else the email's local part as words (`alice.smith` -> `Alice Smith`)."""
    if name and name.strip():
        return name.strip()
    local = email.partition("@")[0].partition("+")[0]
    words = local.replace("_", ".").replace("-", ".").split(".")
    return " ".join(w[:1].upper() + w[1:] for w in words if w) or email
