"""Bodies of /api/anomalies (and the anomalies of a user's drilldown)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from spendwatch.api.models import ApiModel, Days, PlainDecimal, QueryModel
from spendwatch.common.events.base import UtcDatetime

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
Severity = Literal["info", "warning", "critical"]
# A filter value as stored text: no control characters (PostgreSQL text cannot hold NUL).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


def printable(max_length: int) -> Any:
    """A printable, non-empty filter value of at most `max_length` characters."""
    return Field(min_length=1, max_length=max_length, pattern=PRINTABLE)


def encode_cursor(detected_at: datetime, anomaly_id: str) -> str:
    """The opaque cursor after (detected_at, anomaly_id)."""
    raw = json.dumps([detected_at.isoformat(), anomaly_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(detected_at, anomaly_id) of a cursor from `encode_cursor`; ValueError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        detected, anomaly_id = json.loads(raw)
        at = datetime.fromisoformat(detected)
        uuid.UUID(anomaly_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a cursor from this API") from exc
    if at.tzinfo is None:
        raise ValueError("not a cursor from this API")
    return at, str(anomaly_id)


class AnomalyListQuery(QueryModel):
    """`GET /api/anomalies`: detected in the last `days` days, newest first, keyset-paginated."""

    days: Days = 30
    detector: Annotated[str, printable(200)] | None = None
    severity: Severity | None = None
    subject: Annotated[str, printable(320)] | None = None
    kind: Literal["detected", "cleared"] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: (
        Annotated[str, Field(max_length=512, description="`next_cursor` of the previous page.")]
        | None
    ) = None

    @field_validator("subject")
    @classmethod
    def _lower_subject(cls, value: str | None) -> str | None:
        # Subjects are lower-case e-mails, `team` or a group.
        return value.strip().lower() if value is not None else None

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
