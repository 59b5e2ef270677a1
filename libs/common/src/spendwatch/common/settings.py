"""Typed settings shared by every service (environment variables, pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/spendwatch"
LOCAL_NATS_URL = "nats://127.0.0.1:4222"


class BaseServiceSettings(BaseSettings):
    """Settings every spendwatch process reads: where the database and the bus are, logging."""

    # An empty variable (`NAME=` in .env, `${NAME:-}` in compose) means "not set".
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    database_url: SecretStr = Field(
        default=SecretStr(LOCAL_DATABASE_URL), validation_alias="DATABASE_URL"
    )
    nats_url: str = Field(default=LOCAL_NATS_URL, validation_alias="NATS_URL")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    team_timezone: str = Field(default="UTC", validation_alias="TEAM_TIMEZONE")
    metrics_port: int = Field(default=9101, ge=0, le=65535, validation_alias="METRICS_PORT")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown LOG_LEVEL {value!r}")
        return level

    @field_validator("team_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown TEAM_TIMEZONE {value!r}") from exc
        return value


class MigrateSettings(BaseServiceSettings):
    """Settings of `spendwatch migrate`."""

    usage_retention_days: int = Field(default=400, ge=1, validation_alias="USAGE_RETENTION_DAYS")
    migrations_dir: Path | None = Field(default=None, validation_alias="MIGRATIONS_DIR")
    # When set, migrate gives the read-only `grafana_reader` role LOGIN with this password.
    grafana_db_password: SecretStr | None = Field(
        default=None, validation_alias="GRAFANA_DB_PASSWORD"
    )
