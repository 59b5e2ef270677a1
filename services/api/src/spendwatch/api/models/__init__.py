"""Response and request bodies of the REST API, as pydantic models: the OpenAPI source.

One module per area (`incidents.py`, ...); the shared pieces live here. Decimals are serialised
as strings, datetimes as ISO 8601 in UTC.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

M = TypeVar("M", bound=BaseModel)

# A decimal as a plain string ("3000000", never "3.00E+6"), so clients parse it exactly.
PlainDecimal = Annotated[
    Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")
]

MAX_DAYS = 366
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
Severity = Literal["info", "warning", "critical"]
# A filter value as stored text: no control characters (PostgreSQL text cannot hold NUL).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
# `?days=N`: the last N days of the team's timezone, today included.
Days = Annotated[
    int,
    Field(ge=1, le=MAX_DAYS, description="The last N days in TEAM_TIMEZONE, today included."),
]


def printable(max_length: int) -> Any:
    """A printable, non-empty filter value of at most `max_length` characters."""
    return Field(min_length=1, max_length=max_length, pattern=PRINTABLE)


def pack_cursor(*parts: str) -> str:
    """An opaque page cursor holding `parts` (the keyset of the last row of a page)."""
    raw = json.dumps(list(parts), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unpack_cursor(cursor: str, count: int) -> tuple[str, ...]:
    """The `count` parts of a cursor from `pack_cursor`; ValueError otherwise."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a cursor from this API") from exc
    if not isinstance(parts, list) or len(parts) != count:
        raise ValueError("not a cursor from this API")
    if not all(isinstance(part, str) for part in parts):
        raise ValueError("not a cursor from this API")
    return tuple(parts)


def encode_cursor(at: datetime, row_id: str) -> str:
    """The cursor after (at, row_id) of a list ordered newest first."""
    return pack_cursor(at.isoformat(), row_id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(at, row_id) of a cursor from `encode_cursor`; ValueError otherwise."""
    at_text, row_id = unpack_cursor(cursor, 2)
    try:
        at = datetime.fromisoformat(at_text)
        uuid.UUID(row_id)
    except ValueError as exc:
        raise ValueError("not a cursor from this API") from exc
    if at.tzinfo is None:
        raise ValueError("not a cursor from this API")
    return at, row_id


def newest_first_page(
    rows: list[Any], limit: int, model: type[M], *, at: str, key: str
) -> tuple[list[M], str | None]:
    """The first `limit` of `limit + 1` fetched rows as `model`s, and the cursor after them
    (None on the last page); `at` and `key` name the row's keyset fields."""
    items = [model.model_validate(row_dict(row)) for row in rows[:limit]]
    if len(rows) <= limit:
        return items, None
    last = items[-1]
    return items, encode_cursor(getattr(last, at), getattr(last, key))


class ApiModel(BaseModel):
    """A frozen API body; unknown fields of a row are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class QueryModel(BaseModel):
    """Query parameters of a route; an unknown parameter is a 400, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NewestFirstQuery(QueryModel):
    """`limit` and `cursor` of a list ordered by (time, id), newest first."""

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


class BodyModel(BaseModel):
    """A request body; an unknown field is a 422."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None


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
