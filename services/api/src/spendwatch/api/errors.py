"""The API's exceptions.

SpendwatchError (spendwatch.common.errors)
└── ApiError
    ├── ProblemError                 answer with this problem+json (status, title, detail)
    ├── SlackError
    │   ├── SlackSignatureError      not signed by Slack, stale, or replayed: 401
    │   ├── MalformedInteractionError  not a Slack interaction we can read: 400
    │   ├── UnsupportedActionError   an interaction or action we do not handle: ephemeral reply
    │   └── InvalidActionValueError  a known action whose value is not what the notifier sends
    └── CommandError                 the incidents service refused a command or did not answer
"""

from __future__ import annotations

from typing import Literal

from spendwatch.common.errors import SpendwatchError

CommandErrorCode = Literal[
    "not_found", "invalid_transition", "invalid_command", "timeout", "unavailable", "bad_reply"
]


class ApiError(SpendwatchError):
    """Base of the API's own errors."""


class ProblemError(ApiError):
    """Raise from a handler to answer with an RFC 9457 problem document."""

    def __init__(
        self, status: int, title: str, *, detail: str | None = None, type_: str = "about:blank"
    ) -> None:
        super().__init__(f"{status} {title}" + (f": {detail}" if detail else ""))
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_


class SlackError(ApiError):
    """Something about a request to the Slack interactivity endpoint."""


class SlackSignatureError(SlackError):
    """The request is not proven to come from Slack; `reason` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedInteractionError(SlackError):
    """The body is not a Slack interaction payload we can read."""


class UnsupportedActionError(SlackError):
    """A well-formed interaction that spendwatch does not handle."""


class InvalidActionValueError(SlackError):
    """A known action whose value breaks the contract with the notifier's message."""


class CommandError(ApiError):
    """An incident command that did not take effect; the message is fit for a person."""

    def __init__(self, code: CommandErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
