"""Anomaly events: a detector found a condition in a window, or the window closed below it."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from spendwatch.common.events.base import Event, UtcDatetime

Severity = Literal["info", "warning", "critical"]
Unit = Literal["usd", "usd_per_request", "requests", "tokens", "sigma", "ratio", "events", "hours"]
Amount = Annotated[Decimal, Field(max_digits=30, decimal_places=9)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_]+$")]


class AnomalyFields(Event):
    """What detected and cleared anomalies share: which condition, whose, and in which window.

    `fingerprint` = subject + detector + window key (`bob@x.com:spend_spike:2026-11-21`): one
    incident per fingerprint, so a spike and a cycle outlier of one user are two things.
    Money is exact: `value`, `threshold` and `baseline` are Decimals in `unit`.
    """

    anomaly_id: Annotated[str, Field(min_length=1, max_length=100)]
    fingerprint: Annotated[str, Field(min_length=1, max_length=500)]
    detector: Name
    subject: Annotated[str, Field(min_length=1, max_length=320)]
    metric: Name
    unit: Unit
    value: Amount
    threshold: Amount
    baseline: Amount | None = None
    window_start: UtcDatetime
    window_end: UtcDatetime
    model: str | None = None
    message: Annotated[str, Field(min_length=1, max_length=1000)]


class AnomalyDetectedV1(AnomalyFields):
    """A condition holds (on `anomalies.events.v1.<detector>`); a worse one later escalates."""

    type: Literal["anomaly.detected.v1"] = "anomaly.detected.v1"
    severity: Severity
    evidence_first_at: UtcDatetime | None = None
    detected_at: UtcDatetime


class AnomalyClearedV1(AnomalyFields):
    """The window closed below the threshold (on `anomalies.events.v1.<detector>`)."""

    type: Literal["anomaly.cleared.v1"] = "anomaly.cleared.v1"
    cleared_at: UtcDatetime
