"""Bodies of /api/incidents."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from spendwatch.api.models import ApiModel, BodyModel, Days, PlainDecimal, QueryModel
from spendwatch.common.events.base import UtcDatetime
from spendwatch.common.events.incident import Note, State, Transition

MAX_SNOOZE_MINUTES = 60 * 24 * 14
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
Severity = Literal["info", "warning", "critical"]


def encode_cursor(detected_at: datetime, incident_id: str) -> str:
    """The opaque cursor after (detected_at, incident_id)."""
    raw = json.dumps([detected_at.isoformat(), incident_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(detected_at, incident_id) of a cursor from `encode_cursor`; ValueError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        detected, incident_id = json.loads(raw)
        at = datetime.fromisoformat(detected)
        uuid.UUID(incident_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a cursor from this API") from exc
    if at.tzinfo is None:
        raise ValueError("not a cursor from this API")
    return at, str(incident_id)


class IncidentListQuery(QueryModel):
    """`GET /api/incidents`: newest first, filtered, keyset-paginated."""

    state: State | None = None
    detector: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    severity: Severity | None = None
    subject: Annotated[str, Field(min_length=1, max_length=320)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: (
        Annotated[str, Field(max_length=512, description="`next_cursor` of the previous page.")]
        | None
    ) = None

    @field_validator("cursor")
    @classmethod
    def _cursor_from_this_api(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                decode_cursor(value)
            except ValueError:
                raise ValueError("not a cursor this API returned") from None
        return value

    @property
    def after(self) -> tuple[datetime, str] | None:
        """The keyset the page starts after."""
        return decode_cursor(self.cursor) if self.cursor else None


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
