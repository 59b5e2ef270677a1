"""Bodies of /api/anomalies (and the anomalies of a user's drilldown)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from spendwatch.api.models import (
    ApiModel,
    Days,
    NewestFirstQuery,
    PlainDecimal,
    Severity,
    printable,
)
from spendwatch.common.events.base import UtcDatetime


class AnomalyListQuery(NewestFirstQuery):
    """`GET /api/anomalies`: detected in the last `days` days, newest first, keyset-paginated."""

    days: Days = 30
    detector: Annotated[str, printable(200)] | None = None
    severity: Severity | None = None
    subject: Annotated[str, printable(320)] | None = None
    kind: Literal["detected", "cleared"] | None = None

    @field_validator("subject")
    @classmethod
    def _lower_subject(cls, value: str | None) -> str | None:
        # Subjects are lower-case e-mails, `team` or a group.
        return value.strip().lower() if value is not None else None


class AnomalyOut(ApiModel):
    """An anomaly as the detector recorded it, with the incident it went into (if any)."""

    anomaly_id: str
    fingerprint: str
    kind: Literal["detected", "cleared"]
    detector: str
    severity: Severity
    subject: str
    metric: str
    unit: str
    value: PlainDecimal
    threshold: PlainDecimal
    baseline: PlainDecimal | None = None
    window_start: UtcDatetime
    window_end: UtcDatetime
    model: str | None = None
    message: str
    evidence_first_at: UtcDatetime | None = None
    detected_at: UtcDatetime
    incident_id: str | None = None
    incident_state: str | None = None


class AnomalyPage(ApiModel):
    """One page of anomalies, newest first; pass `next_cursor` as `cursor` for the next."""

    timezone: str
    since: UtcDatetime = Field(description="Start of the first day of the window.")
    items: list[AnomalyOut]
    next_cursor: str | None
