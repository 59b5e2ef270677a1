"""The notifier's settings and the email building blocks (no servers)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from spendwatch.common.errors import ConfigError
from spendwatch.notifier.email import SmtpConfig, build_message, parse_smtp_url
from spendwatch.notifier.settings import NotifierSettings
from spendwatch.notifier.templates import Email


def settings(**env: object) -> NotifierSettings:
    return NotifierSettings.model_validate(env)


def test_both_channels_are_off_by_default() -> None:
    s = NotifierSettings(_env_file=None)
    if s.slack_bot_token or s.alert_email_to:  # pragma: no cover - a developer's environment
        pytest.skip("channel variables are set in this environment")
    assert not s.slack_enabled
    assert not s.email_enabled
    assert s.slack_api_base_url == "https://slack.com/api/"
    assert s.resend_api_base_url == "https://api.resend.com"
    assert (s.group_window_seconds, s.group_threshold, s.digest_hour) == (30, 3, 9)


def test_slack_needs_a_token_and_a_channel() -> None:
    assert not settings(SLACK_BOT_TOKEN="xoxb-1").slack_enabled
    assert not settings(SLACK_CHANNEL_ID="C1").slack_enabled
    on = settings(
        SLACK_BOT_TOKEN="xoxb-1", SLACK_CHANNEL_ID="C1", SLACK_API_BASE_URL="http://x/api"
    )
    assert on.slack_enabled
    assert on.slack_api_base_url == "http://x/api/"  # the SDK joins method names onto it
    assert "xoxb-1" not in repr(on)


def test_email_needs_a_sender_recipients_and_a_transport() -> None:
    base = {"ALERT_EMAIL_FROM": "a@x.com", "ALERT_EMAIL_TO": " lead@x.com, ,fin@x.com "}
    assert settings(**base).email_recipients == ["lead@x.com", "fin@x.com"]
    assert not settings(**base).email_enabled
    smtp = settings(**base, SMTP_URL="smtp://u:p@h")
    assert (smtp.email_enabled, smtp.email_transport) == (True, "smtp")
    both = settings(**base, SMTP_URL="smtp://u:p@h", RESEND_API_KEY="re_1")
    assert both.email_transport == "resend"
    assert "re_1" not in repr(both)
    assert "u:p@h" not in repr(both)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:pass@mail.example.com:587?starttls=1",
            SmtpConfig("mail.example.com", 587, "user", "pass", False, True),
        ),
        ("smtp://mail.example.com", SmtpConfig("mail.example.com", 587, None, None, False, None)),
        ("smtp://h:2525?starttls=0", SmtpConfig("h", 2525, None, None, False, False)),
        (
            "smtps://a%40b.com:p%40ss%20w@smtp.example.com",
            SmtpConfig("smtp.example.com", 465, "a@b.com", "p@ss w", True, False),
        ),
    ],
)
def test_smtp_urls(url: str, expected: SmtpConfig) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://h", "smtp://", "smtp://h?starttls=maybe", "smtp://h:99999"]
)
def test_bad_smtp_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_smtp_url(url)


def test_a_message_has_a_text_and_an_html_part_and_a_stable_id() -> None:
    rendered = Email(subject="Alert", html="<p>hi</p>", text="hi")
    message = build_message(rendered, sender="s@x.com", to=["a@x.com", "b@x.com"], key="k1")
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"] == "a@x.com, b@x.com"
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().strip() == "hi"
    assert html.get_content().strip() == "<p>hi</p>"
    again = build_message(rendered, sender="s@x.com", to=["a@x.com"], key="k1")
    assert again["Message-ID"] == message["Message-ID"]
