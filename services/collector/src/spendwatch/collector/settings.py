"""Settings of the collector service (poller and sink)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from spendwatch.common.settings import BaseServiceSettings


class CollectorSettings(BaseServiceSettings):
    """Provider credentials and endpoints, polling cadence, and sink batching."""

    cursor_admin_api_key: SecretStr | None = Field(
        default=None, validation_alias="CURSOR_ADMIN_API_KEY"
    )
    cursor_api_base_url: str = Field(
        default="https://api.cursor.com", validation_alias="CURSOR_API_BASE_URL"
    )
    cursor_account: str = Field(
        default="",
        max_length=200,
        validation_alias="CURSOR_ACCOUNT",
        description="a name for this Cursor team, to tell several teams apart",
    )
    cursor_requests_per_minute: int = Field(
        default=20, ge=1, le=10_000, validation_alias="CURSOR_REQUESTS_PER_MINUTE"
    )
    anthropic_admin_api_key: SecretStr | None = Field(
        default=None, validation_alias="ANTHROPIC_ADMIN_API_KEY"
    )
    anthropic_api_base_url: str = Field(
        default="https://api.anthropic.com", validation_alias="ANTHROPIC_API_BASE_URL"
    )
    openai_admin_api_key: SecretStr | None = Field(
        default=None, validation_alias="OPENAI_ADMIN_API_KEY"
    )
    openai_api_base_url: str = Field(
        default="https://api.openai.com/v1", validation_alias="OPENAI_API_BASE_URL"
    )
    collect_interval_seconds: int = Field(
        default=300, ge=60, validation_alias="COLLECT_INTERVAL_SECONDS"
    )
    collect_overlap_seconds: int = Field(
        default=7200,
        ge=0,
        validation_alias="COLLECT_OVERLAP_SECONDS",
        description="re-read this much before the checkpoint to catch late-arriving events",
    )
    collect_backfill_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        validation_alias="COLLECT_BACKFILL_DAYS",
        description="how far back the first pass reaches (the API's own limit may be shorter)",
    )
    sink_batch_size: int = Field(default=2000, ge=1, le=10_000, validation_alias="SINK_BATCH_SIZE")
    sink_ack_wait_seconds: float = Field(
        default=60.0, gt=0, validation_alias="SINK_ACK_WAIT_SECONDS"
    )
    sink_max_deliver: int = Field(default=20, ge=2, validation_alias="SINK_MAX_DELIVER")
