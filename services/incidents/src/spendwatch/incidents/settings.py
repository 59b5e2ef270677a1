"""Settings of the incidents service."""

from __future__ import annotations

from pydantic import Field

from spendwatch.common.settings import BaseServiceSettings


class IncidentsSettings(BaseServiceSettings):
    """Where the bus and the database are, and how long a resolved incident can reopen."""

    reopen_window_seconds: int = Field(
        default=86_400, ge=0, validation_alias="INCIDENT_REOPEN_WINDOW_SECONDS"
    )
