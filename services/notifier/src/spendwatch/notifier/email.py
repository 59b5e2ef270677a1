"""Email through Resend's HTTP API (httpx) or an SMTP server (aiosmtplib).

Both send the same multipart message: a plain-text part and an HTML part. Resend gets our
idempotency key as `Idempotency-Key`, so a retry after a lost answer is not mailed twice; SMTP
gets a Message-ID derived from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx
from pydantic import SecretStr

from spendwatch.common.errors import ConfigError
from spendwatch.notifier.errors import EmailError
from spendwatch.notifier.templates import Email

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class EmailTransport(Protocol):
    """Something that can mail an `Email`."""

    async def send(self, email: Email, *, sender: str, to: list[str], key: str) -> None:
        """Mail it, or raise EmailError."""

    async def aclose(self) -> None:
        """Release connections."""


class ResendTransport:
    """`POST /emails` on the Resend API with a Bearer key."""

    def __init__(
        self,
        *,
        api_key: SecretStr,
        base_url: str,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key.get_secret_value()}"},
            timeout=timeout,
            transport=transport or httpx.AsyncHTTPTransport(retries=2),
        )

    async def send(self, email: Email, *, sender: str, to: list[str], key: str) -> None:
        """Mail it through Resend."""
        body = {
            "from": sender,
            "to": to,
            "subject": email.subject,
            "html": email.html,
            "text": email.text,
        }
        try:
            response = await self._client.post(
                "/emails", json=body, headers={"Idempotency-Key": key[:256]}
            )
        except httpx.HTTPError as exc:
            raise EmailError(f"Resend could not be reached: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise EmailError(f"Resend answered {response.status_code}: {response.text[:300]}")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to submit mail."""

    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # implicit TLS (smtps)
    start_tls: bool | None  # None: upgrade if the server offers it


def parse_smtp_url(url: str) -> SmtpConfig:
    """`smtp://user:pass@host:587?starttls=1` or `smtps://user:pass@host:465`.

    smtp defaults to port 587 and STARTTLS when offered (`starttls=1` requires it, `starttls=0`
    never upgrades); smtps uses implicit TLS on 465.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"}:
        raise ConfigError("SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ConfigError("SMTP_URL has no host")
    implicit = parts.scheme == "smtps"
    flag = (parse_qs(parts.query).get("starttls") or [""])[0].lower()
    if flag and flag not in _TRUE | _FALSE:
        raise ConfigError("SMTP_URL starttls must be 1 or 0")
    start_tls = None if implicit or not flag else flag in _TRUE
    try:
        port = parts.port or (465 if implicit else 587)
    except ValueError as exc:
        raise ConfigError("SMTP_URL has an invalid port") from exc
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit,
        start_tls=False if implicit else start_tls,
    )


def build_message(email: Email, *, sender: str, to: list[str], key: str) -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML preferred."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@spendwatch>"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class SmtpTransport:
    """Submits mail to an SMTP server, one connection per message."""

    def __init__(self, config: SmtpConfig, *, timeout: float = 15.0) -> None:
        self._config = config
        self._timeout = timeout

    async def send(self, email: Email, *, sender: str, to: list[str], key: str) -> None:
        """Mail it through the SMTP server."""
        c = self._config
        try:
            await aiosmtplib.send(
                build_message(email, sender=sender, to=to, key=key),
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=c.password,
                use_tls=c.use_tls,
                start_tls=c.start_tls,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise EmailError(f"SMTP delivery failed: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Nothing is kept open."""


class EmailChannel:
    """Alert email from one sender to a fixed list of recipients."""

    name = "email"

    def __init__(self, transport: EmailTransport, *, sender: str, recipients: list[str]) -> None:
        self._transport = transport
        self._sender = sender
        self._to = recipients
        self.target = ", ".join(recipients)[:500]

    async def send(self, email: Email, *, key: str) -> None:
        """Mail it to every recipient, or raise EmailError."""
        await self._transport.send(email, sender=self._sender, to=self._to, key=key)

    async def aclose(self) -> None:
        """Release the transport."""
        await self._transport.aclose()
