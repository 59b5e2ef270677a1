"""Bodies of /api/incidents."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from spendwatch.api.models import (
    ApiModel,
    BodyModel,
    Days,
    NewestFirstQuery,
    PlainDecimal,
    QueryModel,
    Severity,
    printable,
)
from spendwatch.common.events.base import UtcDatetime
from spendwatch.common.events.incident import Note, State, Transition

MAX_SNOOZE_MINUTES = 60 * 24 * 14


class IncidentListQuery(NewestFirstQuery):
    """`GET /api/incidents`: newest first, filtered, keyset-paginated."""

    state: State | None = None
    detector: Annotated[str, printable(200)] | None = None
    severity: Severity | None = None
    subject: Annotated[str, printable(320)] | None = None


class MetricsQuery(QueryModel):
    """`GET /api/incidents/metrics`."""

    days: Days = 30


class IncidentOut(ApiModel):
    """An incident as stored."""

    incident_id: str
    fingerprint: str
    detector: str
    subject: str
    state: State
    severity: Severity
    message: str
    model: str | None = None
    value: PlainDecimal | None = None
    threshold: PlainDecimal | None = None
    baseline: PlainDecimal | None = None
    cost_micros: int | None = None
    window_start: UtcDatetime | None = None
    window_end: UtcDatetime | None = None
    evidence_first_at: UtcDatetime | None = None
    detected_at: UtcDatetime
    alerted_at: UtcDatetime | None = None
    acknowledged_at: UtcDatetime | None = None
    acknowledged_by: str | None = None
    snoozed_until: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    resolved_by: str | None = None
    resolution: Literal["auto", "manual"] | None = None
    reopen_count: int = 0


class IncidentPage(ApiModel):
    """One page of incidents, newest first; pass `next_cursor` as `cursor` for the next."""

    items: list[IncidentOut]
    next_cursor: str | None


class TransitionOut(ApiModel):
    """One row of an incident's timeline."""

    transition_id: int
    transition: Transition | str
    from_state: State | None
    to_state: State
    actor: str
    note: str | None
    at: UtcDatetime


class IncidentMetricsOut(ApiModel):
    """MTTD/MTTI/MTTR of one incident in seconds (null until both ends exist)."""

    mttd_seconds: float | None
    mtti_seconds: float | None
    mttr_seconds: float | None
    cost_micros: int | None


class IncidentDetail(ApiModel):
    """An incident with its timeline (oldest first) and its metrics."""

    incident: IncidentOut
    transitions: list[TransitionOut]
    metrics: IncidentMetricsOut | None


class MttSummaryRow(ApiModel):
    """incident_mtt_summary for one detector, or overall when `detector` is null."""

    detector: str | None
    incidents: int
    mttd_mean: float | None
    mttd_p50: float | None
    mttd_p90: float | None
    mtti_mean: float | None
    mtti_p50: float | None
    mtti_p90: float | None
    mttr_mean: float | None
    mttr_p50: float | None
    mttr_p90: float | None
    cost_micros: PlainDecimal | None


class IncidentMetricsSummary(ApiModel):
    """MTT summary over incidents detected in [since, until)."""

    since: UtcDatetime
    until: UtcDatetime
    rows: list[MttSummaryRow]


class NoteBody(BodyModel):
    """Optional body of `POST .../ack` and `.../resolve`."""

    note: Note | None = None


class IncidentPatch(BodyModel):
    """Body of `PATCH /api/incidents/{id}`; `minutes` is required to snooze."""

    action: Literal["acknowledge", "resolve", "snooze"]
    minutes: Annotated[int, Field(ge=1, le=MAX_SNOOZE_MINUTES)] | None = None
    note: Note | None = None

    @model_validator(mode="after")
    def _minutes_only_to_snooze(self) -> IncidentPatch:
        if self.action == "snooze" and self.minutes is None:
            raise ValueError("minutes: required to snooze")
        if self.action != "snooze" and self.minutes is not None:
            raise ValueError("minutes: only for snooze")
        return self
