"""Response and request bodies of the REST API, as pydantic models (the OpenAPI source).

Decimals are serialised as strings, datetimes as ISO 8601 in UTC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from spendwatch.common.events.base import UtcDatetime
from spendwatch.common.events.incident import Note, State, Transition

MAX_SNOOZE_MINUTES = 60 * 24 * 14

# A decimal as a plain string ("3000000", never "3.00E+6"), so clients parse it exactly.
PlainDecimal = Annotated[
    Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")
]


class ApiModel(BaseModel):
    """A frozen API body; unknown fields of a row are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class IncidentOut(ApiModel):
    """An incident as stored."""

    incident_id: str
    fingerprint: str
    detector: str
    subject: str
    state: State
    severity: Literal["info", "warning", "critical"]
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


class NoteBody(ApiModel):
    """Optional body of `POST .../ack` and `.../resolve`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    note: Note | None = None


class IncidentPatch(ApiModel):
    """Body of `PATCH /api/incidents/{id}`; `minutes` is required to snooze."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["acknowledge", "resolve", "snooze"]
    minutes: Annotated[int, Field(ge=1, le=MAX_SNOOZE_MINUTES)] | None = None
    note: Note | None = None


def json_response(model: BaseModel, *, status: int = 200) -> web.Response:
    """`model` as a JSON response (Decimals as strings)."""
    return web.Response(
        status=status, text=model.model_dump_json(), content_type="application/json"
    )


def row_dict(row: Any) -> dict[str, Any]:
    """An asyncpg record as a dict, UUIDs as strings."""
    return {
        k: (str(v) if k.endswith("_id") and v is not None and k != "transition_id" else v)
        for k, v in dict(row).items()
    }
