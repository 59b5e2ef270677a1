"""A fake Resend API: `POST /emails` with a Bearer key, over real HTTP.

Point `RESEND_API_BASE_URL` (or `ResendTransport(base_url=...)`) at `fake.url`. It checks the key,
validates the body as Resend documents it (`from`, `to`, `subject`, `html` and/or `text`),
honours `Idempotency-Key` (a repeat returns the first id and sends nothing), answers
`{"id": ...}` and records every accepted email. `fail_next` makes the next calls fail.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.server import LocalServer

API_KEY = "re_fake_key"


@dataclass
class SentEmail:
    """An email Resend accepted."""

    id: str
    sender: str
    to: list[str]
    subject: str
    html: str | None
    text: str | None
    idempotency_key: str | None
    at: float


class FakeResend(LocalServer):
    """The fake API; `url` is the base URL."""

    def __init__(self, *, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.emails: list[SentEmail] = []
        self.requests: list[tuple[int, dict[str, Any]]] = []  # (status answered, body)
        self._failures: list[int] = []
        self._ids: dict[str, str] = {}
        self.port = 0

    @property
    def url(self) -> str:
        """The API base URL."""
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` requests with `status`."""
        self._failures.extend([status] * n)

    def routes(self, app: web.Application) -> None:
        """The fake's endpoints."""
        app.router.add_post("/emails", self._emails)

    @staticmethod
    def _error(status: int, name: str, message: str) -> web.Response:
        return web.json_response(
            {"statusCode": status, "name": name, "message": message}, status=status
        )

    async def _emails(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = body if isinstance(body, dict) else {}
        if self._failures:
            status = self._failures.pop(0)
            self.requests.append((status, record))
            return self._error(status, "internal_server_error", "fake failure")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            self.requests.append((401, record))
            return self._error(
                401, "missing_api_key", "Missing API key in the authorization header"
            )
        if auth.removeprefix("Bearer ") != self.api_key:
            self.requests.append((403, record))
            return self._error(403, "invalid_api_key", "API key is invalid")
        to = record.get("to")
        recipients = [to] if isinstance(to, str) else to
        missing = [
            name
            for name, ok in (
                ("from", isinstance(record.get("from"), str) and record.get("from")),
                ("to", isinstance(recipients, list) and recipients),
                ("subject", isinstance(record.get("subject"), str) and record.get("subject")),
                ("html or text", record.get("html") or record.get("text")),
            )
            if not ok
        ]
        if missing:
            self.requests.append((422, record))
            return self._error(422, "validation_error", f"Missing `{missing[0]}` field.")
        key = request.headers.get("Idempotency-Key")
        if key and key in self._ids:
            self.requests.append((200, record))
            return web.json_response({"id": self._ids[key]})
        email_id = str(uuid.uuid4())
        if key:
            self._ids[key] = email_id
        assert isinstance(recipients, list)
        self.emails.append(
            SentEmail(
                id=email_id,
                sender=record["from"],
                to=[str(r) for r in recipients],
                subject=record["subject"],
                html=record.get("html"),
                text=record.get("text"),
                idempotency_key=key,
                at=time.monotonic(),
            )
        )
        self.requests.append((200, record))
        return web.json_response({"id": email_id})


@pytest.fixture
async def fake_resend() -> AsyncIterator[FakeResend]:
    """A running fake Resend API (key `API_KEY`)."""
    async with FakeResend() as resend:
        yield resend
