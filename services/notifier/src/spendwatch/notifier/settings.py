"""Settings of the notifier: the channels (each optional), grouping, digests."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from spendwatch.common.settings import BaseServiceSettings


class NotifierSettings(BaseServiceSettings):
    """Slack and email are each off unless configured; secrets are `SecretStr`, never logged."""

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_channel_id: str | None = Field(default=None, validation_alias="SLACK_CHANNEL_ID")
    slack_api_base_url: str = Field(
        default="https://slack.com/api/", validation_alias="SLACK_API_BASE_URL"
    )
    resend_api_key: SecretStr | None = Field(default=None, validation_alias="RESEND_API_KEY")
    resend_api_base_url: str = Field(
        default="https://api.resend.com", validation_alias="RESEND_API_BASE_URL"
    )
    # smtp[s]://user:password@host:port[?starttls=1]; used when RESEND_API_KEY is not set.
    smtp_url: SecretStr | None = Field(default=None, validation_alias="SMTP_URL")
    alert_email_from: str | None = Field(default=None, validation_alias="ALERT_EMAIL_FROM")
    alert_email_to: str | None = Field(default=None, validation_alias="ALERT_EMAIL_TO")
    dashboard_url: str | None = Field(default=None, validation_alias="DASHBOARD_URL")
    # More than `group_threshold` incidents opening within `group_window_seconds`: the first
    # ones are posted at once, the rest are listed in one message when the window closes.
    group_window_seconds: float = Field(
        default=30, ge=0, le=3600, validation_alias="NOTIFY_GROUP_WINDOW_SECONDS"
    )
    group_threshold: int = Field(
        default=3, ge=0, le=1000, validation_alias="NOTIFY_GROUP_THRESHOLD"
    )
    digest_hour: int = Field(default=9, ge=0, le=23, validation_alias="DIGEST_HOUR")
    # How often closed grouping windows, unanswered `alerted` commands, failed grouped
    # messages and due digests are looked for.
    sweep_seconds: float = Field(default=5, gt=0, le=3600, validation_alias="NOTIFY_SWEEP_SECONDS")
    # Incident events older than this are not sent (a new consumer replaying the stream must
    # not flood the channel); 0 sends everything.
    max_event_age_hours: float = Field(
        default=24, ge=0, validation_alias="NOTIFY_MAX_EVENT_AGE_HOURS"
    )

    @field_validator("slack_api_base_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        # The SDK joins method names onto the base URL.
        return value if value.endswith("/") else value + "/"

    @property
    def slack_enabled(self) -> bool:
        """A bot token and a channel are both set."""
        return bool(self.slack_bot_token and self.slack_bot_token.get_secret_value()) and bool(
            self.slack_channel_id
        )

    @property
    def email_recipients(self) -> list[str]:
        """ALERT_EMAIL_TO split on commas."""
        return [a.strip() for a in (self.alert_email_to or "").split(",") if a.strip()]

    @property
    def email_transport(self) -> str | None:
        """`resend`, `smtp`, or None when neither is configured (Resend wins if both are)."""
        if self.resend_api_key and self.resend_api_key.get_secret_value():
            return "resend"
        if self.smtp_url and self.smtp_url.get_secret_value():
            return "smtp"
        return None

    @property
    def email_enabled(self) -> bool:
        """A sender, recipients and a transport are all set."""
        return bool(self.alert_email_from and self.email_recipients and self.email_transport)
