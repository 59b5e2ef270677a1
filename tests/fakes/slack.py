"""A fake Slack Web API: `chat.postMessage`, `chat.update` and `auth.test` over real HTTP.

Point `AsyncWebClient(base_url=fake.url)` (or `SLACK_API_BASE_URL`) at it. It accepts JSON or
form bodies, as slack-sdk sends them, checks the bot token (Bearer header or `token` field),
answers like Slack (`ok`, `channel`, `ts`; `{"ok": false, "error": ...}`), keeps every message
as it is now and records every call. `fail_next` makes the next calls answer 429 with
`Retry-After` or a 5xx.

    async with FakeSlack() as slack:            # or the `fake_slack` fixture
        ...
        assert slack.top_level()[0].blocks[0]["type"] == "header"
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.server import LocalServer

TOKEN = "xoxb-fake-token"
CHANNEL = "C0FAKE"


@dataclass
class SlackCall:
    """One request as the fake received it."""

    method: str
    args: dict[str, Any]
    at: float  # time.monotonic()
    status: int
    token: str | None


@dataclass
class SlackMessage:
    """A message as it is now (after any `chat.update`)."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def _parse_json_fields(args: dict[str, Any]) -> dict[str, Any]:
    """Form bodies carry `blocks` and `attachments` as JSON strings."""
    out = dict(args)
    for name in ("blocks", "attachments", "metadata"):
        if isinstance(out.get(name), str):
            out[name] = json.loads(out[name])
    for name in ("reply_broadcast", "unfurl_links"):
        if isinstance(out.get(name), str):
            out[name] = out[name].lower() in {"1", "true"}
    return out


class FakeSlack(LocalServer):
    """The fake Web API; `url` is the base URL to give the SDK."""

    def __init__(self, *, token: str = TOKEN, channels: tuple[str, ...] = (CHANNEL,)) -> None:
        self.token = token
        self.channels = channels
        self.channel = channels[0]
        self.calls: list[SlackCall] = []
        self.messages: dict[str, SlackMessage] = {}
        self.delay = 0.0  # seconds before each answer (to widen races)
        self._failures: list[tuple[int, float | None, str]] = []
        self._ts = itertools.count(1)
        self.port = 0

    @property
    def url(self) -> str:
        """The Web API base URL, with the trailing slash the SDK expects."""
        return f"http://127.0.0.1:{self.port}/api/"

    # --- control ---------------------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, *, status: int = 429, retry_after: float | None = 1, error: str = ""
    ) -> None:
        """Answer the next `n` calls with `status` (429 carries `Retry-After: retry_after`)."""
        default = "ratelimited" if status == 429 else "internal_error"
        self._failures.extend([(status, retry_after, error or default)] * n)

    def reset(self) -> None:
        """Forget calls, messages and pending failures."""
        self.calls.clear()
        self.messages.clear()
        self._failures.clear()

    # --- what happened ---------------------------------------------------------------------------

    def ok_calls(self, method: str) -> list[SlackCall]:
        """Successful calls of `method`, in order."""
        return [c for c in self.calls if c.method == method and c.status == 200]

    def top_level(self) -> list[SlackMessage]:
        """Messages posted to the channel (not thread replies), in order."""
        return [m for m in self.messages.values() if m.thread_ts is None]

    def replies(self, ts: str) -> list[SlackMessage]:
        """Thread replies under the message `ts`, in order."""
        return [m for m in self.messages.values() if m.thread_ts == ts]

    def updates(self) -> list[SlackCall]:
        """Successful `chat.update` calls."""
        return self.ok_calls("chat.update")

    # --- server ----------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The fake's endpoints."""
        app.router.add_route("*", "/api/{method}", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            args = await request.json() if request.can_read_body else {}
        else:
            args = dict(await request.post())
        args = _parse_json_fields(args)
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() or args.pop("token", None)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._failures:
            status, retry_after, error = self._failures.pop(0)
            self.calls.append(SlackCall(method, args, time.monotonic(), status, token))
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return web.json_response({"ok": False, "error": error}, status=status, headers=headers)
        self.calls.append(SlackCall(method, args, time.monotonic(), 200, token))
        if token != self.token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
        }.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        return web.json_response(handler(args))

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "spendwatch",
            "team_id": "T0FAKE",
            "user_id": "U0FAKE",
            "bot_id": "B0FAKE",
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = args.get("thread_ts")
        if thread_ts and thread_ts not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        n = next(self._ts)
        ts = f"{1_700_000_000 + n}.{n:06d}"
        message = SlackMessage(
            channel=channel,
            ts=ts,
            text=args.get("text"),
            blocks=list(args.get("blocks") or []),
            thread_ts=thread_ts,
            reply_broadcast=bool(args.get("reply_broadcast")),
        )
        self.messages[ts] = message
        body = {"type": "message", "text": message.text, "ts": ts, "blocks": message.blocks}
        return {"ok": True, "channel": channel, "ts": ts, "message": body}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(args.get("ts", ""))
        if message is None or message.channel != args.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        message.history.append({"text": message.text, "blocks": message.blocks})
        message.text = args.get("text", message.text)
        if "blocks" in args:
            message.blocks = list(args["blocks"] or [])
        message.edits += 1
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A running fake Slack Web API (token `TOKEN`, channel `CHANNEL`)."""
    async with FakeSlack() as slack:
        yield slack
