"""Response and request bodies of the REST API, as pydantic models: the OpenAPI source.

One module per area (`incidents.py`, ...); the shared pieces live here. Decimals are serialised
as strings, datetimes as ISO 8601 in UTC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# A decimal as a plain string ("3000000", never "3.00E+6"), so clients parse it exactly.
PlainDecimal = Annotated[
    Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")
]

MAX_DAYS = 366
# `?days=N`: the last N days of the team's timezone, today included.
Days = Annotated[
    int,
    Field(ge=1, le=MAX_DAYS, description="The last N days in TEAM_TIMEZONE, today included."),
]


class ApiModel(BaseModel):
    """A frozen API body; unknown fields of a row are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class QueryModel(BaseModel):
    """Query parameters of a route; an unknown parameter is a 400, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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
