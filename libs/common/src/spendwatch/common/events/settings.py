"""Settings events: a stored settings document changed (on `settings.events.v1.updated`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from spendwatch.common.events.base import Event, UtcDatetime


class SettingsUpdatedV1(Event):
    """The document under `key` in the `settings` table changed; readers reload it."""

    type: Literal["settings.updated.v1"] = "settings.updated.v1"
    key: Annotated[str, Field(min_length=1, max_length=100)]
    actor: Annotated[str, Field(min_length=1, max_length=200)]  # `api:<token>`, `cli`, ...
    updated_at: UtcDatetime
