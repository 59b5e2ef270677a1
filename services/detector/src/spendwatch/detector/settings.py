"""Settings of the detector service (thresholds live in the database, not here)."""

from __future__ import annotations

from pydantic import Field

from spendwatch.common.settings import BaseServiceSettings


class DetectorSettings(BaseServiceSettings):
    """Where the bus and the database are, the team timezone that defines a day, and how often
    the billing-cycle rules and the clears run."""

    tick_seconds: float = Field(default=15, gt=0, le=3600, validation_alias="DETECT_TICK_SECONDS")
    # How late usage may still arrive for a window that has closed (the collector's interval
    # and the provider's own delay): a window is judged final only this long after it closed.
    clear_grace_seconds: int = Field(
        default=3600, ge=0, validation_alias="DETECT_CLEAR_GRACE_SECONDS"
    )
