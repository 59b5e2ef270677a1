"""Base class and field types of every wire event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _lower(value: str) -> str:
    return value.strip().lower()


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC; naive datetimes are rejected."""

Email = Annotated[str, AfterValidator(_lower), Field(min_length=3, max_length=320, pattern="@")]
"""An e-mail address, lower-cased so one person is one key everywhere."""

Micros = Annotated[int, Field(ge=-(2**62), le=2**62)]
"""Money in integer micro-dollars (1 USD = 1,000,000)."""

Count = Annotated[int, Field(ge=0, le=2**62)]
"""A non-negative counter (tokens, requests)."""


class Event(BaseModel):
    """A frozen wire event; unknown fields are ignored so v1 can grow additively."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def utc_now() -> datetime:
    """The current time, aware and in UTC."""
    return datetime.now(UTC)
