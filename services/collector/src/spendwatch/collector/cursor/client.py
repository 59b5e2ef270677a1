"""Async client of the Cursor Admin API: paced, retried, and normalised to our v1 models.

Pacing: every request, retries included, first takes a slot from one `aiolimiter.AsyncLimiter`
(20 per 60 s by default, Cursor's Admin API limit per team), shared by all concurrent calls on
the client; pass the same `limiter` to several clients that use one key. A 429 also pauses
every call on the client until its `Retry-After` has passed.

Retries (tenacity, never a hand-rolled loop): 429 waits `Retry-After` (seconds or an HTTP-date,
capped at `retry_after_cap`), or without it an exponential backoff from
`rate_limit_backoff` seconds; 5xx, timeouts and connection failures wait a jittered exponential
backoff from `backoff` seconds up to `backoff_max`. After `max_attempts` attempts the last error
is raised (`CursorRateLimited` / `CursorUnavailable`). 401/403 raise `CursorAuthError` at once.

Paging: each `*_pages` method is an async generator yielding a page as soon as it arrives.
Date ranges are cut into windows of at most 30 days, oldest first, each paged from 1 until
`totalPages`/`numPages` (or `hasNextPage`, or a short page) says it is done. A page whose body
is unusable is yielded with `envelope_ok=False` and the body in `invalid`; paging goes on when
the page count is already known, and stops with an error log when it is not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from aiolimiter import AsyncLimiter
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from spendwatch.collector.cursor import normalise
from spendwatch.collector.cursor.errors import (
    CursorAuthError,
    CursorBadResponse,
    CursorError,
    CursorRateLimited,
    CursorRequestError,
    CursorUnavailable,
)
from spendwatch.collector.cursor.normalise import (
    DailyUsagePage,
    GroupsListing,
    Listing,
    Page,
    SpendPage,
    UsageEventsPage,
    daily_usage_page,
    parse_json,
    spend_page,
    usage_events_page,
)
from spendwatch.common.errors import InvalidPayloadError
from spendwatch.common.events import Member, utc_now
from spendwatch.common.logging import get_logger

log = get_logger(__name__)

P = TypeVar("P", bound=Page)
L = TypeVar("L", Listing[Member], GroupsListing)

MAX_WINDOW = timedelta(days=30)  # documented maximum range of Cursor's date-ranged endpoints
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
MAX_PAGES = 10_000  # a guard against a server that never says it is done
_RETRYABLE = (CursorRateLimited, CursorUnavailable)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait by a `Retry-After` header (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def windows(
    start: datetime, end: datetime, size: timedelta = MAX_WINDOW
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive windows of at most `size`, oldest first."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    out: list[tuple[datetime, datetime]] = []
    while start < end:
        out.append((start, min(start + size, end)))
        start += size
    return out


def _epoch_ms(at: datetime) -> int:
    """Epoch milliseconds by integer arithmetic (a float timestamp can land 1 ms short)."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _error_text(response: httpx.Response) -> str:
    """Cursor's `{"error", "message"}` as one short line, else the start of the body."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and (body.get("message") or body.get("error")):
        text = f"{body.get('error', '')}: {body.get('message', '')}".strip(": ")
    else:
        text = response.text[:200]
    return " ".join(str(text).split())[:300]


class CursorAdminClient:
    """The Cursor Admin API (`/teams/*`) for one team key, normalised to spendwatch models.

    Use as `async with CursorAdminClient(api_key=..., base_url=...) as client:`. Counters:
    `requests_made` (every HTTP request sent, retries included) and `rate_limited` (429s).
    """

    def __init__(
        self,
        *,
        api_key: str | SecretStr,
        base_url: str,
        account: str = "",
        requests_per_minute: float = 20,
        limiter: AsyncLimiter | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_attempts: int = 6,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        rate_limit_backoff: float = 5.0,
        retry_after_cap: float = 120.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=httpx.BasicAuth(key, ""),
            timeout=timeout,
            headers={"Accept": "application/json"},
        )
        self._timeout = timeout
        # Evenly spaced, no burst: Cursor counts requests in a rolling minute, and a leaky bucket
        # that first lets 20 through at once earns a 429 on the 21st a few seconds later. The 10 %
        # margin absorbs requests that leave late (after a slow page) and bunch up with the next.
        self._limiter = limiter or AsyncLimiter(1, 1.1 * 60 / requests_per_minute)
        self._max_attempts = max_attempts
        self._retry_after_cap = retry_after_cap
        self._server_backoff = wait_exponential_jitter(
            multiplier=backoff, max=backoff_max, jitter=backoff
        )
        self._rate_backoff = wait_exponential_jitter(
            multiplier=rate_limit_backoff, max=retry_after_cap, jitter=rate_limit_backoff
        )
        self._paused_until = 0.0  # loop time before which no request is sent (after a 429)
        self._clock = clock
        self.account = account
        self.requests_made = 0
        self.rate_limited = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- endpoints -------------------------------------------------------------------------------

    async def members(self) -> list[Member]:
        """Everyone on the team (`GET /teams/members`); unusable rows are logged and skipped."""
        listing = await self._listing("/teams/members", normalise.members)
        return listing.items

    async def groups(self, billing_cycle: date | None = None) -> GroupsListing:
        """Billing groups of a cycle (`GET /teams/groups`, default the current one)."""
        params = {"billingCycle": billing_cycle.isoformat()} if billing_cycle else None
        return await self._listing("/teams/groups", normalise.groups, params=params)

    async def _listing(
        self, path: str, parse: Callable[[Any], L], *, params: dict[str, str] | None = None
    ) -> L:
        """GET an unpaged list; a body that is not the documented shape is CursorBadResponse."""
        response = await self._request("GET", path, params=params)
        try:
            listing = parse(parse_json(response.content))
        except InvalidPayloadError as exc:
            raise CursorBadResponse(
                f"{path}: {exc}", status=response.status_code, body=response.content
            ) from exc
        self._log_invalid(path, listing.invalid)
        return listing

    async def spend_pages(self, *, page_size: int = 100) -> AsyncGenerator[SpendPage, None]:
        """Spend per member this billing cycle (`POST /teams/spend`), page by page."""
        async for page in self._paged(
            "/teams/spend",
            lambda n: {"page": n, "pageSize": page_size},
            lambda body, n: spend_page(body, number=n),
            page_size=page_size,
        ):
            yield page

    async def daily_usage_pages(
        self, start: datetime, end: datetime, *, page_size: int = 500
    ) -> AsyncGenerator[DailyUsagePage, None]:
        """Per-member daily activity in [start, end) (`POST /teams/daily-usage-data`).

        Asks for every member (`page`+`pageSize` mode), in windows of at most 30 days.
        """
        for lo, hi in windows(start, end):

            def body(n: int, lo: datetime = lo, hi: datetime = hi) -> dict[str, Any]:
                return _ranged(lo, hi, n, page_size)

            def parse(raw: bytes, n: int, lo: datetime = lo, hi: datetime = hi) -> DailyUsagePage:
                return daily_usage_page(raw, number=n, window_start=lo, window_end=hi)

            async for page in self._paged(
                "/teams/daily-usage-data", body, parse, page_size=page_size
            ):
                yield page

    async def usage_event_pages(
        self, start: datetime, end: datetime, *, page_size: int = 1000, email: str | None = None
    ) -> AsyncGenerator[UsageEventsPage, None]:
        """Every billable request in [start, end) (`POST /teams/filtered-usage-events`).

        One `UsageEventsPage` per API page, as it arrives; `page_size` is large to save requests
        under the 20/min limit (Cursor's default is 10). Windows of at most 30 days.
        """
        for lo, hi in windows(start, end):

            def body(n: int, lo: datetime = lo, hi: datetime = hi) -> dict[str, Any]:
                request = _ranged(lo, hi, n, page_size)
                if email is not None:
                    request["email"] = email
                return request

            def parse(raw: bytes, n: int, lo: datetime = lo, hi: datetime = hi) -> UsageEventsPage:
                return usage_events_page(
                    raw,
                    number=n,
                    account=self.account,
                    ingested_at=self._clock(),
                    window_start=lo,
                    window_end=hi,
                )

            async for page in self._paged(
                "/teams/filtered-usage-events", body, parse, page_size=page_size
            ):
                yield page

    # --- paging ----------------------------------------------------------------------------------

    async def _paged(
        self,
        path: str,
        body_for: Callable[[int], Mapping[str, Any]],
        parse: Callable[[bytes, int], P],
        *,
        page_size: int,
    ) -> AsyncGenerator[P, None]:
        """POST `path` page after page, yielding each as it arrives; see the module docstring."""
        known_pages: int | None = None
        number = 1
        while True:
            response = await self._request("POST", path, json_body=body_for(number))
            page = parse(response.content, number)
            if page.total_pages is not None:
                known_pages = page.total_pages
            more = _more(page, known_pages, page_size)
            for _, reason in page.invalid:
                log.warning("cursor.invalid_item", path=path, page=number, reason=reason)
            if not page.envelope_ok:
                if more:
                    outcome = "going on: the page count is known"
                elif known_pages is None:
                    outcome = "stopping: the page count is unknown"
                else:
                    outcome = "stopping: it was the last page"
                log.error(
                    "cursor.page_unreadable",
                    path=path,
                    page=number,
                    known_pages=known_pages,
                    outcome=outcome,
                )
            if more and number >= MAX_PAGES:
                log.error("cursor.too_many_pages", path=path, pages=number)
                more = False
            yield _finalised(page, final=not more)
            if not more:
                return
            number += 1

    # --- HTTP ------------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call with pacing and retries; the 2xx response, or a `CursorError`."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RETRYABLE),
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            before_sleep=lambda state: _log_retry(path, state),
            reraise=True,
        )
        response: httpx.Response = await retrying(self._send_once, method, path, json_body, params)
        return response

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when Cursor gave one (capped), else the backoff for the failure's kind."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, CursorRateLimited):
            if exc.retry_after is not None:
                return min(exc.retry_after, self._retry_after_cap)
            return self._rate_backoff(state)
        return self._server_backoff(state)

    async def _send_once(
        self,
        method: str,
        path: str,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        delay = self._paused_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)  # a 429 told this client to hold off
        async with self._limiter:
            self.requests_made += 1
            try:
                response = await self._http.request(
                    method, path, json=json_body, params=params, timeout=self._timeout
                )
            except httpx.UnsupportedProtocol as exc:
                raise CursorError(f"{method} {path}: {exc}") from exc
            except httpx.TimeoutException as exc:
                raise CursorUnavailable(
                    f"{method} {path}: timed out ({type(exc).__name__})"
                ) from exc
            except httpx.TransportError as exc:
                raise CursorUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        return self._check(method, path, response)

    def _check(self, method: str, path: str, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        what = f"{method} {path} answered {status}: {_error_text(response)}"
        if status in (401, 403):
            raise CursorAuthError(what, status=status)
        if status == 429:
            self.rate_limited += 1
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                wait = min(retry_after, self._retry_after_cap)
                loop = asyncio.get_running_loop()
                self._paused_until = max(self._paused_until, loop.time() + wait)
            raise CursorRateLimited(what, retry_after=retry_after)
        if status >= 500 or status == 408:
            raise CursorUnavailable(what, status=status)
        raise CursorRequestError(what, status=status)

    def _log_invalid(self, path: str, invalid: list[tuple[bytes, str]]) -> None:
        for _, reason in invalid:
            log.warning("cursor.invalid_item", path=path, reason=reason)


def _ranged(start: datetime, end: datetime, page: int, page_size: int) -> dict[str, Any]:
    """The body of a date-ranged call.

    `endDate` is `end` itself: if Cursor reads it as inclusive, neighbouring windows share one
    millisecond, which is harmless (event ids are stable, daily rows are upserted); a gap is not.
    """
    return {
        "startDate": _epoch_ms(start),
        "endDate": _epoch_ms(end),
        "page": page,
        "pageSize": page_size,
    }


def _more(page: Page, known_pages: int | None, page_size: int) -> bool:
    """Whether another page follows, by the best signal this answer gives."""
    if known_pages is not None:
        return page.number < known_pages
    if not page.envelope_ok:
        return False
    if page.has_next is not None:
        return page.has_next
    return page.received == page_size > 0


def _finalised(page: P, *, final: bool) -> P:
    return page if page.final == final else dataclasses.replace(page, final=final)


def _log_retry(path: str, state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "cursor.retry",
        path=path,
        attempt=state.attempt_number,
        wait_seconds=round(state.upcoming_sleep, 3),
        reason=str(exc),
    )


__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_WINDOW",
    "CursorAdminClient",
    "parse_retry_after",
    "windows",
]
