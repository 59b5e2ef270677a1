"""Typed settings: defaults, validation, secrets kept out of reprs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from spendwatch.collector.settings import CollectorSettings
from spendwatch.common.settings import BaseServiceSettings, MigrateSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("DATABASE_URL", "NATS_URL", "LOG_LEVEL", "TEAM_TIMEZONE", "CURSOR_ADMIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]  # no stray .env


def test_defaults_point_at_the_local_stack() -> None:
    settings = BaseServiceSettings()
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.database_url.get_secret_value().endswith("/spendwatch")
    assert settings.team_timezone == "UTC"
    assert MigrateSettings().usage_retention_days == 400


def test_environment_overrides_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("TEAM_TIMEZONE", "Europe/Berlin")
    settings = BaseServiceSettings()
    assert (settings.log_level, settings.team_timezone) == ("DEBUG", "Europe/Berlin")
    monkeypatch.setenv("TEAM_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="TEAM_TIMEZONE"):
        BaseServiceSettings()


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURSOR_ADMIN_API_KEY", "key_supersecret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/spendwatch")
    settings = CollectorSettings()
    assert settings.cursor_admin_api_key is not None
    assert settings.cursor_admin_api_key.get_secret_value() == "key_supersecret"
    assert "supersecret" not in repr(settings)
    assert "hunter2" not in repr(settings)


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURSOR_ADMIN_API_KEY", "")
    monkeypatch.setenv("LOG_LEVEL", "")
    settings = CollectorSettings()
    assert settings.cursor_admin_api_key is None
    assert settings.log_level == "INFO"
