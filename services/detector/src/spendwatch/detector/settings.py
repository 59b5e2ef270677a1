"""Settings of the detector service (thresholds live in the database, not here)."""

from __future__ import annotations

from spendwatch.common.settings import BaseServiceSettings


class DetectorSettings(BaseServiceSettings):
    """Where the bus and the database are, and the team timezone that defines a day."""
