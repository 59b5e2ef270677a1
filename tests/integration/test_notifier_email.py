"""Alert email through a real SMTP server (aiosmtpd on 127.0.0.1) and the fake Resend API:
both parts present, every interpolated value escaped in HTML, nothing mailed twice, grouping."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from nats.aio.client import Client as NatsClient
from pydantic import SecretStr

from spendwatch.common.localstack import free_port
from spendwatch.notifier.email import (
    EmailChannel,
    ResendTransport,
    SmtpTransport,
    parse_smtp_url,
)
from spendwatch.notifier.errors import EmailError
from spendwatch.notifier.service import IncidentCommands, Notifier
from tests.fakes.resend import FakeResend
from tests.integration.test_notifier import incidents_service, row, until
from tests.unit.notifier.builders import event, incident, store_incident

pytestmark = pytest.mark.timeout(60)

SENDER = "spendwatch <alerts@example.com>"
TO = ["lead@example.com", "finance@example.com"]
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(document.cookie)>'


@dataclass
class Inbox:
    """What the SMTP server accepted, and the logins it saw."""

    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = (data.login.decode(), data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == ("alerts@example.com", "p@ss word"))

    def messages(self) -> list[EmailMessage]:
        parsed = []
        for envelope in self.envelopes:
            content = envelope.original_content or envelope.content
            assert isinstance(content, bytes)
            message = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a free port of 127.0.0.1 that wants a login."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def mailer(
    db: asyncpg.Pool,
    channel: EmailChannel,
    *,
    commands: IncidentCommands | None = None,
    **kwargs: Any,
) -> Notifier:
    return Notifier(
        db=db,
        slack=None,
        email=channel,
        commands=commands,
        timezone="UTC",
        dashboard_url="http://grafana.test",
        **kwargs,
    )


def injected(**fields: Any) -> Any:
    """An incident whose subject and message try to inject HTML."""
    return incident(
        subject=f"{IMG}@evil.example",
        message=f"{SCRIPT} spent $5 on {IMG}\r\nBcc: victim@example.com",
        model=f"opus{IMG}",
        **fields,
    )


def assert_escaped(html: str) -> None:
    assert SCRIPT not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(document.cookie)&gt;" in html


async def test_smtp_alert_has_an_escaped_html_part_and_a_plain_text_part(
    pool: asyncpg.Pool, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    url = f"smtp://alerts%40example.com:p%40ss%20word@127.0.0.1:{port}?starttls=0"
    channel = EmailChannel(SmtpTransport(parse_smtp_url(url)), sender=SENDER, recipients=TO)
    n = mailer(pool, channel)
    inc = injected(severity="critical")
    await store_incident(pool, inc)
    opened = event("opened", inc)
    await n.handle(opened)
    await n.handle(opened)  # redelivered: not mailed again
    [envelope] = inbox.envelopes
    assert sorted(envelope.rcpt_tos) == sorted(TO)
    assert inbox.logins == [("alerts@example.com", "p@ss word")]
    [message] = inbox.messages()
    assert message["Bcc"] is None  # the newline in the message did not become a header
    assert "\n" not in message["Subject"]
    assert message["Subject"].startswith("[CRITICAL] <script>alert(1)</script> spent $5")
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    assert html_part is not None
    assert text_part is not None
    assert message.get_content_type() == "multipart/alternative"
    html = html_part.get_content()
    assert_escaped(html)
    assert "$214.00" in html
    text = text_part.get_content()
    assert SCRIPT in text  # plain text is shown as text: nothing to escape
    assert "Value: $214.00" in text
    stored = await row(pool, f"email:root:{inc.incident_id}")
    assert stored is not None
    assert stored["status"] == "sent"


async def test_resend_gets_the_bearer_key_an_idempotency_key_and_both_parts(
    pool: asyncpg.Pool, fake_resend: FakeResend
) -> None:
    transport = ResendTransport(api_key=SecretStr(fake_resend.api_key), base_url=fake_resend.url)
    n = mailer(pool, EmailChannel(transport, sender=SENDER, recipients=TO))
    inc = injected()
    await store_incident(pool, inc)
    opened = event("opened", inc)
    fake_resend.fail_next(1, status=500)
    with pytest.raises(EmailError, match="Resend answered 500"):
        await n.handle(opened)
    failed = await row(pool, f"email:root:{inc.incident_id}")
    assert failed is not None
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    await n.handle(opened)  # JetStream's redelivery
    await n.handle(opened)  # and once more: already sent
    escalated = event("escalated", opened.incident, severity="critical")
    await n.handle(escalated)
    await transport.aclose()
    first, second = fake_resend.emails
    assert first.sender == SENDER
    assert first.to == TO
    assert first.idempotency_key == f"email:root:{inc.incident_id}"
    assert first.html is not None
    assert first.text is not None
    assert_escaped(first.html)
    assert SCRIPT in first.text
    assert second.subject.startswith("[CRITICAL] Escalated: ")
    assert second.idempotency_key == f"email:event:{escalated.event_id}"
    done = await row(pool, f"email:root:{inc.incident_id}")
    assert done is not None
    assert (done["status"], done["attempts"]) == ("sent", 2)


async def test_a_wrong_resend_key_is_a_recorded_failure(
    pool: asyncpg.Pool, fake_resend: FakeResend
) -> None:
    transport = ResendTransport(api_key=SecretStr("re_wrong"), base_url=fake_resend.url)
    n = mailer(pool, EmailChannel(transport, sender=SENDER, recipients=TO))
    inc = incident()
    await store_incident(pool, inc)
    with pytest.raises(EmailError, match="403"):
        await n.handle(event("opened", inc))
    await transport.aclose()
    stored = await row(pool, f"email:root:{inc.incident_id}")
    assert stored is not None
    assert stored["status"] == "failed"
    assert "invalid_api_key" in stored["error"]
    assert fake_resend.emails == []


async def test_email_alone_groups_the_overflow_and_tells_the_incidents_service(
    pool: asyncpg.Pool, fake_resend: FakeResend, nc: NatsClient
) -> None:
    transport = ResendTransport(api_key=SecretStr(fake_resend.api_key), base_url=fake_resend.url)
    channel = EmailChannel(transport, sender=SENDER, recipients=TO)
    incidents = [incident(f"dev{i}@example.com") for i in range(4)] + [injected()]
    for inc in incidents:
        await store_incident(pool, inc)
    async with incidents_service(nc) as commands:
        n = mailer(
            pool,
            channel,
            commands=IncidentCommands(nc),
            group_window=timedelta(seconds=1),
        )
        try:
            for inc in incidents:
                await n.handle(event("opened", inc))
            assert len(fake_resend.emails) == 3  # at once
            await until(lambda: len(fake_resend.emails) == 4, what="the grouped email")
            await until(lambda: len(commands) == 5, what="five alerted commands")
        finally:
            await n.close()
            await transport.aclose()
    grouped = fake_resend.emails[-1]
    assert grouped.subject == "[WARNING] 2 more incidents opened"
    assert grouped.idempotency_key is not None
    assert grouped.idempotency_key.startswith("email:grouped:")
    assert grouped.html is not None
    assert grouped.text is not None
    assert_escaped(grouped.html)
    assert "dev3@example.com" in grouped.text
    assert {c.incident_id for c in commands} == {i.incident_id for i in incidents}
    assert all(c.actor == "notifier" for c in commands)
