"""The exception tree of the Cursor Admin API client.

SpendwatchError                 (spendwatch.common.errors)
└── CursorError                 any failure talking to the Cursor Admin API
    ├── CursorAuthError         401/403: the key is wrong, revoked or lacks access; never retried
    ├── CursorRateLimited       429 still answered after the last attempt
    ├── CursorUnavailable       5xx, timeout or connection failure after the last attempt
    ├── CursorRequestError      another 4xx (or 3xx): Cursor refused the request as sent
    └── CursorBadResponse       a 2xx whose body is not the documented JSON envelope

Only `CursorRateLimited` and `CursorUnavailable` are retried (with backoff, a capped number of
attempts); the caller sees them only once the attempts are spent. Malformed *items* inside a
well-formed page never raise: they come back as `invalid` entries of the page.
"""

from __future__ import annotations

from spendwatch.common.errors import SpendwatchError


class CursorError(SpendwatchError):
    """A failure talking to the Cursor Admin API; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CursorAuthError(CursorError):
    """Cursor refused the API key (401) or its access level (403); retrying cannot help."""


class CursorRateLimited(CursorError):  # noqa: N818 - reads as a state, like httpx.TimeoutException
    """Cursor answered 429; `retry_after` is its `Retry-After` in seconds, if it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class CursorUnavailable(CursorError):  # noqa: N818
    """Cursor answered 5xx, timed out, or could not be reached."""


class CursorRequestError(CursorError):
    """Cursor refused the request as sent (a 4xx other than 401, 403 and 429)."""


class CursorBadResponse(CursorError):  # noqa: N818
    """A successful answer whose body is not what the API documents; `body` holds it verbatim."""

    def __init__(self, message: str, *, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message, status=status)
        self.body = body
