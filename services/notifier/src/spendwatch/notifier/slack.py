"""Slack Web API through slack-sdk's `AsyncWebClient`: post, edit, thread replies.

Rate limits (429 with `Retry-After`), 500/503 and dropped connections are retried by the SDK's
own async retry handlers; what still fails becomes a `SlackError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from spendwatch.notifier.errors import SlackError
from spendwatch.notifier.templates import SlackMessage


@dataclass(frozen=True, slots=True)
class Posted:
    """Where a message landed: the channel id and its `ts`."""

    channel: str
    ts: str


def _error_code(exc: SlackApiError) -> str:
    data = exc.response.data if exc.response is not None else None
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = exc.response.status_code if exc.response is not None else "?"
    return f"HTTP {status}"


class SlackChannel:
    """One Slack channel, written to with a bot token."""

    name = "slack"

    def __init__(
        self,
        *,
        token: SecretStr,
        channel: str,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        retries: int = 2,
        timeout: int = 15,
    ) -> None:
        self.target = channel
        self._client = AsyncWebClient(
            token=token.get_secret_value(),
            base_url=base_url,
            session=session,
            timeout=timeout,
            retry_handlers=[
                AsyncRateLimitErrorRetryHandler(max_retry_count=retries),
                AsyncServerErrorRetryHandler(max_retry_count=retries),
                AsyncConnectionErrorRetryHandler(max_retry_count=retries),
            ],
        )

    async def check(self) -> dict[str, Any]:
        """`auth.test`: who the token is (raises SlackError if Slack refuses it)."""
        response = await self._call("auth.test", self._client.auth_test())
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def post(
        self,
        message: SlackMessage,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Posted:
        """Post a message (a thread reply with `thread_ts`; `broadcast` shows it in the channel
        too); where it landed."""
        kwargs: dict[str, Any] = {"channel": self.target, "text": message.text}
        if message.blocks:
            kwargs["blocks"] = message.blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
            kwargs["reply_broadcast"] = broadcast
        response = await self._call("chat.postMessage", self._client.chat_postMessage(**kwargs))
        return Posted(channel=str(response["channel"]), ts=str(response["ts"]))

    async def update(self, message: SlackMessage, *, channel: str, ts: str) -> None:
        """Replace the message at `ts` (blocks left out are removed, e.g. the buttons)."""
        await self._call(
            "chat.update",
            self._client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            ),
        )

    @staticmethod
    async def _call(method: str, call: Any) -> AsyncSlackResponse:
        try:
            response: AsyncSlackResponse = await call
        except SlackApiError as exc:
            raise SlackError(f"Slack {method} failed: {_error_code(exc)}") from exc
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SlackError(f"Slack {method} failed: {type(exc).__name__}: {exc}") from exc
        return response
