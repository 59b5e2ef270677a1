"""Settings of the API service (REST API, Slack interactivity)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from spendwatch.common.settings import BaseServiceSettings

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(value: str) -> tuple[str, int]:
    """(host, port) of `host:port` or `[ipv6]:port`; ValueError if it is neither."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected host:port, got {value!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port out of range in {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or "[" in host or "]" in host:
        raise ValueError(f"expected host:port, got {value!r}")
    return host, port


class ApiSettings(BaseServiceSettings):
    """Where the API listens, how it authenticates, and Slack's signing secret.

    `/metrics` is served by the API itself, so the inherited `METRICS_PORT` is not used.
    """

    listen: str = Field(default=DEFAULT_LISTEN, validation_alias="API_LISTEN")
    auth: Literal["on", "off"] = Field(default="on", validation_alias="API_AUTH")
    admin_token: SecretStr | None = Field(default=None, validation_alias="API_ADMIN_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    # How long a command waits for the incidents service; a Slack click is additionally capped
    # below Slack's 3-second limit (see routes/slack.py).
    incident_command_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, validation_alias="INCIDENT_COMMAND_TIMEOUT_SECONDS"
    )

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise ValueError(f"API_LISTEN: {exc}") from exc
        return value.strip()

    @field_validator("auth", mode="before")
    @classmethod
    def _lower_auth(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("admin_token", "slack_signing_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            return None
        return value

    @property
    def listen_host(self) -> str:
        """The host part of `API_LISTEN`."""
        return parse_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        """The port part of `API_LISTEN` (0: any free port)."""
        return parse_listen(self.listen)[1]

    @property
    def auth_enabled(self) -> bool:
        """False only with `API_AUTH=off` (a local demo)."""
        return self.auth == "on"
