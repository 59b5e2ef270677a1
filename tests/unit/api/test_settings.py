"""ApiSettings: defaults, API_LISTEN parsing, API_AUTH, optional secrets kept out of reprs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from spendwatch.api.settings import ApiSettings, parse_listen

SECRETS = ("API_ADMIN_TOKEN", "SLACK_SIGNING_SECRET")
NAMES = ("API_LISTEN", "API_AUTH", "INCIDENT_COMMAND_TIMEOUT_SECONDS", *SECRETS)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]  # no stray .env


def test_defaults() -> None:
    settings = ApiSettings()
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 8080)
    assert settings.auth_enabled
    assert settings.admin_token is None
    assert settings.slack_signing_secret is None
    assert settings.incident_command_timeout_seconds == 2.0


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_LISTEN", "0.0.0.0:9000")
    monkeypatch.setenv("API_AUTH", "OFF")
    monkeypatch.setenv("INCIDENT_COMMAND_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cr3t-signing")
    monkeypatch.setenv("API_ADMIN_TOKEN", "t0k3n-admin")
    settings = ApiSettings()
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 9000)
    assert not settings.auth_enabled
    assert settings.incident_command_timeout_seconds == 0.5
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == "s3cr3t-signing"
    assert "s3cr3t-signing" not in repr(settings)
    assert "t0k3n-admin" not in repr(settings)


def test_empty_secrets_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.setenv(name, "")
    settings = ApiSettings()
    assert settings.slack_signing_secret is None
    assert settings.admin_token is None
    assert ApiSettings.model_validate({"SLACK_SIGNING_SECRET": "  "}).slack_signing_secret is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_LISTEN", "8080"),
        ("API_LISTEN", "localhost"),
        ("API_LISTEN", "host:99999"),
        ("API_LISTEN", ":8080"),
        ("API_AUTH", "maybe"),
        ("INCIDENT_COMMAND_TIMEOUT_SECONDS", "0"),
        ("INCIDENT_COMMAND_TIMEOUT_SECONDS", "-1"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        ApiSettings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8080", ("::1", 8080)),
        (" 0.0.0.0:80 ", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["", ":", "[::1]", "[]:80", "a:b", "::1:8080]"])
def test_parse_listen_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_listen(value)
