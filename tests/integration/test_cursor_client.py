"""CursorAdminClient against a small fake Cursor: a real aiohttp server on 127.0.0.1.

The fake speaks the documented wire format (reference/provider-apis.md §1) and can be told to
answer a given path (and page) with a scripted status, body, header or delay first.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiolimiter import AsyncLimiter

from spendwatch.collector.cursor import (
    CursorAdminClient,
    CursorAuthError,
    CursorBadResponse,
    CursorRateLimited,
    CursorRequestError,
    CursorUnavailable,
    UsageEventsPage,
)
from spendwatch.common.localstack import free_port

pytestmark = pytest.mark.timeout(30)

KEY = "key_" + "x" * 64
DAY_MS = 86_400_000
START = datetime(2026, 11, 1, tzinfo=UTC)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class Scripted:
    """One canned answer, used once, before the fake's normal behaviour."""

    path: str
    status: int = 200
    body: Any = None  # bytes are sent as they are, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    page: int | None = None  # only for this page of a paged endpoint


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: Any
    at: float


@dataclass
class FakeCursor:
    """The state behind the fake: what it serves, what it was asked, what it will do next."""

    members: Any = field(default_factory=lambda: {"teamMembers": []})
    spend_rows: list[dict[str, Any]] = field(default_factory=list)
    cycle_start_ms: int | None = 1704067200000
    daily_rows: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    groups: Any = field(default_factory=lambda: {"groups": [], "billingCycle": None})
    script: list[Scripted] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.headers),
                dict(request.query),
                body,
                time.monotonic(),
            )
        )
        expected = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response(
                {"error": "Unauthorized", "message": "Invalid API key"}, status=401
            )
        page = body.get("page") if isinstance(body, dict) else None
        for i, canned in enumerate(self.script):
            if canned.path == request.path and canned.page in (None, page):
                del self.script[i]
                if canned.delay:
                    await asyncio.sleep(canned.delay)
                if canned.body is None or isinstance(canned.body, bytes):
                    raw = canned.body or b""
                else:
                    raw = json.dumps(canned.body).encode()
                return web.Response(
                    status=canned.status,
                    body=raw,
                    headers=canned.headers,
                    content_type="application/json",
                )
        return web.json_response(self.answer(request.path, body))

    def answer(self, path: str, body: Any) -> Any:
        if path == "/teams/members":
            return self.members
        if path == "/teams/groups":
            return self.groups
        page, size = body["page"], body["pageSize"]
        if path == "/teams/spend":
            pages = max(1, math.ceil(len(self.spend_rows) / size))
            out: dict[str, Any] = {
                "teamMemberSpend": self.spend_rows[(page - 1) * size : page * size],
                "totalMembers": len(self.spend_rows),
                "totalPages": pages,
            }
            if self.cycle_start_ms is not None:
                out["subscriptionCycleStart"] = self.cycle_start_ms
            return out
        start, end = body["startDate"], body["endDate"]
        if end - start > 30 * DAY_MS:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "Bad Request", "message": "range over 30 days"}),
                content_type="application/json",
            )
        if path == "/teams/daily-usage-data":
            rows = [r for r in self.daily_rows if start <= r["date"] <= end]
            pages = math.ceil(len(rows) / size)
            return {
                "data": rows[(page - 1) * size : page * size],
                "period": {"startDate": start, "endDate": end},
                "pagination": {
                    "page": page,
                    "pageSize": size,
                    "totalUsers": len(rows),
                    "totalPages": pages,
                    "hasNextPage": page < pages,
                    "hasPreviousPage": page > 1,
                },
            }
        if path == "/teams/filtered-usage-events":
            events = [e for e in self.events if start <= int(e["timestamp"]) <= end]
            pages = math.ceil(len(events) / size)
            return {
                "totalUsageEventsCount": len(events),
                "pagination": {
                    "numPages": pages,
                    "currentPage": page,
                    "pageSize": size,
                    "hasNextPage": page < pages,
                    "hasPreviousPage": page > 1,
                },
                "usageEvents": events[(page - 1) * size : page * size],
                "period": {"startDate": start, "endDate": end},
            }
        raise web.HTTPNotFound(text='{"error":"Not Found","message":"Resource not found"}')


def usage_event(i: int, at: datetime = START) -> dict[str, Any]:
    """A documented-shape usage event, distinct per `i`."""
    return {
        "timestamp": str(_ms(at) + i * 1000),
        "userEmail": f"dev{i % 7}@company.com",
        "model": "claude-4.5-sonnet",
        "kind": "Usage-based",
        "maxMode": False,
        "requestsCosts": 1,
        "isTokenBasedCall": True,
        "isChargeable": True,
        "isHeadless": False,
        "tokenUsage": {
            "inputTokens": 100 + i,
            "outputTokens": 50,
            "cacheWriteTokens": 0,
            "cacheReadTokens": 0,
            "totalCents": 2.5,
        },
        "chargedCents": 2.75,
        "cursorTokenFee": 0.25,
        "isFreeBugbot": False,
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeCursor]:
    state = FakeCursor()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def make_client(
    fake: FakeCursor,
) -> AsyncIterator[Callable[..., CursorAdminClient]]:
    """Clients with fast backoff and no pacing unless a test asks for them."""
    made: list[CursorAdminClient] = []

    def make(**options: Any) -> CursorAdminClient:
        settings: dict[str, Any] = {
            "api_key": KEY,
            "base_url": fake.url,
            "account": "team-1",
            "requests_per_minute": 100_000,
            "max_attempts": 4,
            "backoff": 0.01,
            "backoff_max": 0.05,
            "rate_limit_backoff": 0.01,
            "timeout": httpx.Timeout(2.0),
        } | options
        client = CursorAdminClient(**settings)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def _collect(pages: AsyncIterator[UsageEventsPage]) -> list[UsageEventsPage]:
    return [page async for page in pages]


# --- auth and members ----------------------------------------------------------------------------


async def test_basic_auth_with_key_as_user_and_empty_password(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.members = {
        "teamMembers": [
            {
                "id": 1,
                "name": "Alex",
                "email": "Alex@Company.com",
                "role": "member",
                "isRemoved": False,
            }
        ]
    }
    client = make_client()
    (member,) = await client.members()
    assert (member.user_email, member.user_id) == ("alex@company.com", "1")
    header = fake.seen[0].headers["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")) == f"{KEY}:".encode()
    assert client.requests_made == 1


async def test_members_as_a_bare_array(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.members = [{"name": "Sam", "email": "sam@company.com", "role": "free-owner"}, {"bad": 1}]
    members = await make_client().members()
    assert [m.user_email for m in members] == ["sam@company.com"]  # the bad row is skipped


async def test_members_with_an_unusable_body(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script.append(Scripted("/teams/members", body=b"<html>oops</html>"))
    with pytest.raises(CursorBadResponse, match="not JSON") as info:
        await make_client().members()
    assert info.value.body == b"<html>oops</html>"


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_not_retried(
    status: int, fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    message = {401: "Invalid API key", 403: "Enterprise access required"}[status]
    fake.script.append(
        Scripted("/teams/members", status=status, body={"error": "x", "message": message})
    )
    client = make_client()
    with pytest.raises(CursorAuthError, match=message) as info:
        await client.members()
    assert info.value.status == status
    assert client.requests_made == 1


async def test_wrong_key_is_an_auth_error(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    client = make_client(api_key="key_wrong")
    with pytest.raises(CursorAuthError, match="401") as info:
        await client.members()
    assert client.requests_made == 1
    assert "key_wrong" not in str(info.value)


async def test_other_client_errors_are_not_retried(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script.append(
        Scripted(
            "/teams/members",
            status=400,
            body={"error": "Bad Request", "message": "Some users are not in the team"},
        )
    )
    client = make_client()
    with pytest.raises(CursorRequestError, match="Some users are not in the team"):
        await client.members()
    assert client.requests_made == 1


# --- 429 -----------------------------------------------------------------------------------------


async def test_429_with_retry_after_zero_then_200(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    # The peer's own test: 429 "Rate limited" with Retry-After: 0, then {teamMembers: []}.
    fake.script.append(
        Scripted("/teams/members", status=429, body=b"Rate limited", headers={"Retry-After": "0"})
    )
    client = make_client()
    assert await client.members() == []
    assert (client.requests_made, client.rate_limited) == (2, 1)


async def test_429_retry_after_seconds_is_honoured(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script.append(Scripted("/teams/members", status=429, headers={"Retry-After": "1"}))
    client = make_client()
    started = time.monotonic()
    await client.members()
    assert 0.95 <= time.monotonic() - started < 3
    assert fake.seen[1].at - fake.seen[0].at >= 0.95


async def test_429_retry_after_http_date_is_honoured_and_capped(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    past = format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)
    future = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    fake.script += [
        Scripted("/teams/members", status=429, headers={"Retry-After": past}),
        Scripted("/teams/members", status=429, headers={"Retry-After": future}),
    ]
    client = make_client(retry_after_cap=0.4)
    started = time.monotonic()
    await client.members()
    elapsed = time.monotonic() - started
    assert 0.35 <= elapsed < 2  # the past date: no wait; the hour: capped at 0.4 s
    assert (client.requests_made, client.rate_limited) == (3, 2)


async def test_429_without_retry_after_backs_off(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script += [Scripted("/teams/members", status=429) for _ in range(2)]
    client = make_client()
    assert await client.members() == []
    assert (client.requests_made, client.rate_limited) == (3, 2)


async def test_429_until_attempts_run_out(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script += [
        Scripted(
            "/teams/members",
            status=429,
            body={"error": "Too Many Requests", "message": "Rate limit exceeded."},
            headers={"Retry-After": "0"},
        )
        for _ in range(10)
    ]
    client = make_client(max_attempts=3)
    with pytest.raises(CursorRateLimited, match="Rate limit exceeded") as info:
        await client.members()
    assert info.value.retry_after == 0
    assert (client.requests_made, client.rate_limited) == (3, 3)


async def test_a_429_pauses_concurrent_calls_too(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script.append(Scripted("/teams/members", status=429, headers={"Retry-After": "0.5"}))
    client = make_client()
    first = asyncio.create_task(client.members())
    await asyncio.sleep(0.1)  # the 429 is in: the client holds off until 0.5 s after it
    started = time.monotonic()
    await client.groups()
    assert time.monotonic() - started >= 0.3
    await first
    assert client.rate_limited == 1


# --- 5xx, timeouts, connection failures ----------------------------------------------------------


async def test_5xx_burst_then_success(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script += [
        Scripted("/teams/members", status=500, body={"error": "Internal Server Error"}),
        Scripted("/teams/members", status=502, body=b"<html>Bad Gateway</html>"),
        Scripted("/teams/members", status=503),
    ]
    client = make_client()
    assert await client.members() == []
    assert client.requests_made == 4
    assert client.rate_limited == 0


async def test_5xx_until_attempts_run_out(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script += [Scripted("/teams/members", status=503) for _ in range(10)]
    client = make_client(max_attempts=3)
    with pytest.raises(CursorUnavailable, match="503") as info:
        await client.members()
    assert info.value.status == 503
    assert client.requests_made == 3


async def test_a_timeout_is_retried(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script.append(Scripted("/teams/members", delay=0.5, body={"teamMembers": []}))
    client = make_client(timeout=httpx.Timeout(0.15))
    assert await client.members() == []
    assert client.requests_made == 2


async def test_timeouts_until_attempts_run_out(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.script += [Scripted("/teams/members", delay=0.4) for _ in range(3)]
    client = make_client(timeout=httpx.Timeout(0.1), max_attempts=3)
    started = time.monotonic()
    with pytest.raises(CursorUnavailable, match="timed out"):
        await client.members()
    assert client.requests_made == 3
    assert time.monotonic() - started < 2


async def test_connection_refused_is_unavailable(
    make_client: Callable[..., CursorAdminClient],
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{free_port()}", max_attempts=2)
    with pytest.raises(CursorUnavailable, match="ConnectError"):
        await client.members()
    assert client.requests_made == 2


# --- paging --------------------------------------------------------------------------------------


async def test_spend_paging_stops_at_total_pages(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    # The peer's fixture: two pages of one member each, cycle start 2024-01-01.
    fake.spend_rows = [
        {"email": "a@test.com", "spendCents": 100, "fastPremiumRequests": 5},
        {"email": "b@test.com", "spendCents": 200, "fastPremiumRequests": 10},
    ]
    client = make_client()
    pages = [page async for page in client.spend_pages(page_size=1)]
    assert [[r.user_email for r in p.rows] for p in pages] == [["a@test.com"], ["b@test.com"]]
    assert [r.spend_micros for p in pages for r in p.rows] == [1_000_000, 2_000_000]
    assert all(p.cycle_start == datetime(2024, 1, 1, tzinfo=UTC) for p in pages)
    assert [p.final for p in pages] == [False, True]
    assert client.requests_made == 2
    assert [s.body for s in fake.seen] == [
        {"page": 1, "pageSize": 1},
        {"page": 2, "pageSize": 1},
    ]


async def test_usage_event_pages_page_through_and_stop(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.events = [usage_event(i) for i in range(25)]
    client = make_client()
    end = START + timedelta(days=1)
    pages = await _collect(client.usage_event_pages(START, end, page_size=10))
    assert [len(p.events) for p in pages] == [10, 10, 5]
    assert [p.number for p in pages] == [1, 2, 3]
    assert [p.final for p in pages] == [False, False, True]
    assert client.requests_made == 3
    assert len({e.event_id for p in pages for e in p.events}) == 25
    assert {e.cost_micros for p in pages for e in p.events} == {27500}
    assert {e.account for p in pages for e in p.events} == {"team-1"}
    assert fake.seen[0].body == {
        "startDate": _ms(START),
        "endDate": _ms(end),
        "page": 1,
        "pageSize": 10,
    }


async def test_default_page_size_is_large(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.events = [usage_event(i) for i in range(3)]
    await _collect(make_client().usage_event_pages(START, START + timedelta(hours=1)))
    assert fake.seen[0].body["pageSize"] >= 500


async def test_no_events_is_one_request(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    client = make_client()
    pages = await _collect(client.usage_event_pages(START, START + timedelta(days=1)))
    assert [(len(p.events), p.final) for p in pages] == [(0, True)]
    assert client.requests_made == 1


async def test_pages_are_yielded_as_they_arrive(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.events = [usage_event(i) for i in range(30)]
    client = make_client()
    pages = client.usage_event_pages(START, START + timedelta(days=1), page_size=10)
    first = await anext(pages)
    assert len(first.events) == 10
    assert client.requests_made == 1  # nothing fetched ahead of the consumer
    await pages.aclose()


async def test_long_ranges_are_cut_into_30_day_windows(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    end = START + timedelta(days=65)
    fake.events = [usage_event(0, START + timedelta(days=d)) for d in range(0, 65, 5)]
    fake.daily_rows = [
        {"email": "a@b.co", "date": _ms(START + timedelta(days=d)), "isActive": True}
        for d in range(65)
    ]
    client = make_client()
    pages = await _collect(client.usage_event_pages(START, end))
    windows = [(p.window_start, p.window_end) for p in pages]
    assert windows == [
        (START, START + timedelta(days=30)),
        (START + timedelta(days=30), START + timedelta(days=60)),
        (START + timedelta(days=60), end),
    ]
    assert len({e.event_id for p in pages for e in p.events}) == 13
    daily = [page async for page in client.daily_usage_pages(START, end, page_size=20)]
    days = sorted({r.day for p in daily for r in p.rows})
    assert days == [(START + timedelta(days=d)).date() for d in range(65)]
    assert all(s.body["endDate"] - s.body["startDate"] <= 30 * DAY_MS for s in fake.seen)


async def test_groups_with_a_billing_cycle(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.groups = {
        "groups": [
            {
                "id": "group_1",
                "name": "Platform",
                "currentMembers": [{"userId": "user_a", "email": "A@b.co"}],
            }
        ],
        "unassignedGroup": {"id": "group_unassigned", "name": "Unassigned", "currentMembers": []},
        "billingCycle": {
            "cycleStart": "2026-02-01T00:00:00.000Z",
            "cycleEnd": "2026-03-01T00:00:00.000Z",
        },
    }
    listing = await make_client().groups(date(2026, 2, 1))
    assert fake.seen[0].query == {"billingCycle": "2026-02-01"}
    assert [(g.group_id, g.member_emails) for g in listing.groups] == [
        ("group_1", ["a@b.co"]),
        ("group_unassigned", []),
    ]
    assert listing.cycle_start == datetime(2026, 2, 1, tzinfo=UTC)


# --- malformed pages -----------------------------------------------------------------------------


async def test_malformed_items_and_pages_come_back_as_invalid(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.events = [usage_event(i) for i in range(6)]
    bad_types = usage_event(100) | {"tokenUsage": {"inputTokens": "many"}, "maxMode": "sometimes"}
    no_email = {k: v for k, v in usage_event(101).items() if k != "userEmail"}
    fake.script += [
        Scripted(
            "/teams/filtered-usage-events",
            page=1,
            body={
                "pagination": {"numPages": 3, "currentPage": 1, "hasNextPage": True},
                "usageEvents": [usage_event(0), "garbage", bad_types, no_email, usage_event(1)],
            },
        ),
        Scripted("/teams/filtered-usage-events", page=2, body=b'{"usageEvents": [tru'),
    ]
    client = make_client()
    pages = await _collect(client.usage_event_pages(START, START + timedelta(days=1), page_size=2))
    assert [p.number for p in pages] == [1, 2, 3]
    first, second, third = pages
    assert len(first.events) == 2
    reasons = [reason for _, reason in first.invalid]
    assert "expected a JSON object" in reasons[0]
    assert "tokenUsage.inputTokens" in reasons[1]
    assert "maxMode" in reasons[1]
    assert "userEmail" in reasons[2]
    assert json.loads(first.invalid[2][0]) == no_email
    assert not second.envelope_ok
    assert second.invalid == [(b'{"usageEvents": [tru', second.invalid[0][1])]
    assert "not JSON" in second.invalid[0][1]
    assert [int(e.occurred_at.timestamp()) for e in third.events] == [
        int(_ms(START) / 1000) + 4,
        int(_ms(START) / 1000) + 5,
    ]
    assert third.final


async def test_unreadable_first_page_stops_when_the_count_is_unknown(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    fake.events = [usage_event(i) for i in range(6)]
    fake.script.append(Scripted("/teams/filtered-usage-events", page=1, body={"oops": True}))
    client = make_client()
    pages = await _collect(client.usage_event_pages(START, START + timedelta(days=1), page_size=2))
    assert len(pages) == 1
    assert not pages[0].envelope_ok
    assert pages[0].final
    assert pages[0].invalid[0][0] == b'{"oops": true}'
    assert client.requests_made == 1


# --- pacing --------------------------------------------------------------------------------------


async def test_the_limiter_spaces_concurrent_requests(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    client = make_client(limiter=AsyncLimiter(5, 1))  # 5 per second, shared by every call
    started = time.monotonic()
    await asyncio.gather(*(client.members() for _ in range(10)))
    elapsed = time.monotonic() - started
    arrivals = sorted(s.at - started for s in fake.seen)
    assert len(arrivals) == 10
    assert arrivals[4] < 0.5  # the bucket's first five go at once
    assert arrivals[9] >= 0.9  # then one per 0.2 s
    assert elapsed >= 0.9
    gaps = [b - a for a, b in itertools.pairwise(arrivals[5:])]
    assert min(gaps) >= 0.15


async def test_the_limiter_can_be_shared_by_clients_of_one_key(
    fake: FakeCursor, make_client: Callable[..., CursorAdminClient]
) -> None:
    shared = AsyncLimiter(1, 0.1)
    one, two = make_client(limiter=shared), make_client(limiter=shared)
    await asyncio.gather(*(c.members() for c in (one, two, one, two)))
    arrivals = sorted(s.at for s in fake.seen)
    assert arrivals[-1] - arrivals[0] >= 0.25
