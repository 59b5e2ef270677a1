"""The Cursor simulator as a client sees it: a real server on 127.0.0.1, called with httpx."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import pytest

from spendwatch.simulator import run_simulator
from spendwatch.simulator.team import DAY_MS, SimulatedTeam, cost_micros_from_cents

pytestmark = pytest.mark.timeout(60)

KEY = "key_" + "t" * 64
AUTH = (KEY, "")
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def team() -> SimulatedTeam:
    """Shared by tests that only read; tests that add late events build their own."""
    return SimulatedTeam(seed=11, developers=40, days=30, now=NOW)


@pytest.fixture
async def client(team: SimulatedTeam) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        run_simulator(team, admin_key=KEY, rate_limit_per_minute=10_000) as url,
        httpx.AsyncClient(base_url=url, auth=AUTH, timeout=30) as http,
    ):
        yield http


def _decimal_json(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


def _event_cost(event: dict[str, Any]) -> Decimal:
    usage = event.get("tokenUsage") or {}
    return cost_micros_from_cents(
        event.get("chargedCents"), usage.get("totalCents"), event.get("cursorTokenFee")
    )


async def _all_events(
    http: httpx.AsyncClient, body: dict[str, Any], page_size: int
) -> tuple[int, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    page, total = 1, -1
    while True:
        response = await http.post(
            "/teams/filtered-usage-events", json=body | {"page": page, "pageSize": page_size}
        )
        assert response.status_code == 200
        data = _decimal_json(response)
        total = data["totalUsageEventsCount"]
        events += data["usageEvents"]
        assert data["pagination"]["currentPage"] == page
        if not data["pagination"]["hasNextPage"]:
            assert page == max(1, data["pagination"]["numPages"])
            return total, events
        page += 1


def _per_user_day(events: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    cells: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for event in events:
        day = datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC).date().isoformat()
        cell = cells[event["userEmail"].lower(), day]
        cell[0] += 1
        cell[1] += _event_cost(event)
    return {
        key: (int(n), int(cost.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)))
        for key, (n, cost) in cells.items()
    }


def _truth_cells(truth: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (u["user_email"], u["day"]): (u["events"], u["cost_micros"]) for u in truth["user_days"]
    }


async def test_basic_auth_with_the_key_as_user_name(client: httpx.AsyncClient) -> None:
    unauthorised = {"error": "Unauthorized", "message": "Invalid API key"}
    for auth in [None, ("key_wrong", ""), (KEY, "secret")]:
        response = await client.get("/teams/members", auth=auth or httpx.Auth())
        assert response.status_code == 401
        assert response.json() == unauthorised
    bearer = await client.get(
        "/teams/members", auth=httpx.Auth(), headers={"Authorization": f"Bearer {KEY}"}
    )
    assert bearer.status_code == 401
    ok = await client.get("/teams/members")
    assert ok.status_code == 200
    members = ok.json()["teamMembers"]
    assert len(members) == 40
    assert set(members[0]) == {"id", "email", "name", "role", "isRemoved"}
    assert (await client.get("/_sim/health", auth=httpx.Auth())).status_code == 200


async def test_every_page_together_is_the_truth(
    client: httpx.AsyncClient, team: SimulatedTeam
) -> None:
    body = {"startDate": team.window_start_ms, "endDate": team.now_ms}
    total, events = await _all_events(client, body, page_size=5000)
    truth = (await client.get("/_sim/truth")).json()
    assert total == len(events) == truth["total_events"] > 10_000
    keys = [(int(e["timestamp"]), e["userEmail"].lower()) for e in events]
    assert len(set(keys)) == len(keys)
    stamps = [ts for ts, _ in keys]
    assert stamps == sorted(stamps, reverse=True)
    cells = _per_user_day(events)
    assert cells == _truth_cells(truth)
    assert sum(_event_cost(e) for e in events) == truth["total_cost_micros"]
    assert any("chargedCents" not in e for e in events)  # the older shape is in there
    assert {a["kind"] for a in truth["anomalies"]} == {
        "spend_spike",
        "model_switch",
        "runaway_agent",
        "cycle_outlier",
    }


async def test_a_ragged_range_for_one_user_pages_consistently(
    client: httpx.AsyncClient, team: SimulatedTeam
) -> None:
    start, end = team.now_ms - 5 * DAY_MS + 4321, team.now_ms - DAY_MS - 999
    user = team.anomalies[2].user_email  # the runaway loop: thousands of events
    body = {"startDate": start, "endDate": end, "email": user.upper()}
    total, events = await _all_events(client, body, page_size=333)
    truth = (
        await client.get("/_sim/truth", params={"start_ms": start, "end_ms": end, "user": user})
    ).json()
    assert total == len(events) == truth["total_events"] > 2000
    assert all(start <= int(e["timestamp"]) <= end for e in events)
    assert _per_user_day(events) == _truth_cells(truth)
    default = (await client.post("/teams/filtered-usage-events", json=body)).json()
    assert len(default["usageEvents"]) == default["pagination"]["pageSize"] == 10
    assert default["period"] == {"startDate": start, "endDate": end}
    stranger = await client.post("/teams/filtered-usage-events", json={"email": "x@nowhere.io"})
    assert stranger.status_code == 400
    assert stranger.json() == {"error": "Bad Request", "message": "Some users are not in the team"}


async def test_twenty_requests_a_minute_then_429(team: SimulatedTeam) -> None:
    async with (
        run_simulator(team, admin_key=KEY) as url,
        httpx.AsyncClient(base_url=url, auth=AUTH) as http,
    ):
        statuses = [(await http.get("/teams/members")).status_code for _ in range(20)]
        assert statuses == [200] * 20
        limited = await http.post("/teams/spend", json={})
        assert limited.status_code == 429
        assert limited.json() == {
            "error": "Too Many Requests",
            "message": "Rate limit exceeded. Please try again later.",
        }
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        log = (await http.get("/_sim/requests")).json()["requests"]
        assert [r["status"] for r in log] == [200] * 20 + [429]
        assert log[-1]["method"] == "POST"
        assert log[-1]["path"] == "/teams/spend"
        assert log[-1]["body"] == {}
        assert log[0]["at"] <= log[-1]["at"]
        assert (await http.post("/_sim/reset-rate-limit")).status_code == 200
        assert (await http.get("/teams/members")).status_code == 200


async def test_faults_fail_the_next_matching_requests(client: httpx.AsyncClient) -> None:
    queued = await client.post("/_sim/faults", json={"kind": "429", "count": 2, "retry_after": 3})
    assert queued.status_code == 200
    for _ in range(2):
        response = await client.get("/teams/members")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
    assert (await client.get("/teams/members")).status_code == 200

    await client.post("/_sim/faults", json={"kind": "500", "count": 1, "endpoint": "spend"})
    assert (await client.get("/teams/members")).status_code == 200
    failed = await client.post("/teams/spend", json={})
    assert failed.status_code == 500
    assert failed.json() == {
        "error": "Internal Server Error",
        "message": "An unexpected error occurred",
    }
    assert (await client.post("/teams/spend", json={})).status_code == 200

    events = "/teams/filtered-usage-events"
    for variant in ("garbage_json", "missing_user_email", "wrong_types"):
        fault = {"kind": "malformed_page", "endpoint": events, "count": 1, "variant": variant}
        assert (await client.post("/_sim/faults", json=fault)).status_code == 200
        spoiled = await client.post(events, json={"pageSize": 5})
        assert spoiled.status_code == 200
        if variant == "garbage_json":
            with pytest.raises(json.JSONDecodeError):
                spoiled.json()
            continue
        first, second = spoiled.json()["usageEvents"][:2]
        if variant == "missing_user_email":
            assert "userEmail" not in first
        else:
            assert isinstance(first["timestamp"], list)
            assert first["isHeadless"] == "yes"
        assert isinstance(second["userEmail"], str)
    healthy = await client.post(events, json={"pageSize": 5})
    assert all(isinstance(e["userEmail"], str) for e in healthy.json()["usageEvents"])
    assert (await client.get("/_sim/faults")).json() == {"faults": []}
    bad = await client.post("/_sim/faults", json={"kind": "teapot"})
    assert bad.status_code == 400


async def test_late_events_arrive_in_pages_and_truth() -> None:
    team = SimulatedTeam(seed=5, developers=12, days=14, now=NOW)
    member = team.members[3]
    at = team.now_ms - 3 * DAY_MS + 5
    async with (
        run_simulator(team, admin_key=KEY, rate_limit_per_minute=1000) as url,
        httpx.AsyncClient(base_url=url, auth=AUTH) as http,
    ):
        before = (await http.get("/_sim/truth")).json()
        late = {
            "timestamp_ms": at,
            "user_email": member.email,
            "model": "claude-4.6-opus-high",
            "charged_cents": 37.33,
            "total_cents": 40.167,
            "cursor_token_fee": 1.18,
        }
        created = await http.post("/_sim/late-event", json=late)
        assert created.status_code == 201
        assert created.json()["cost_micros"] == 373_300
        assert (await http.post("/_sim/late-event", json=late)).status_code == 409
        assert (await http.post("/_sim/late-event", json={"timestamp_ms": at})).status_code == 400
        page = _decimal_json(
            await http.post(
                "/teams/filtered-usage-events",
                json={"startDate": at, "endDate": at, "pageSize": 100},
            )
        )
        assert page["totalUsageEventsCount"] == 1
        (event,) = page["usageEvents"]
        assert event["timestamp"] == str(at)
        assert event["chargedCents"] == Decimal("37.33")
        assert event["tokenUsage"]["totalCents"] == Decimal("40.167")
        after = (await http.get("/_sim/truth")).json()
        assert after["total_events"] == before["total_events"] + 1
        assert after["total_cost_micros"] == before["total_cost_micros"] + 373_300
        body = {"startDate": team.window_start_ms, "endDate": team.now_ms}
        total, events = await _all_events(http, body, page_size=10_000)
        assert total == after["total_events"]
        assert _per_user_day(events) == _truth_cells(after)


async def test_spend_daily_usage_and_groups(client: httpx.AsyncClient, team: SimulatedTeam) -> None:
    spend = (await client.post("/teams/spend", json={"pageSize": 7, "sortBy": "amount"})).json()
    current = [m for m in team.members if not m.is_removed]
    assert spend["totalMembers"] == len(current)
    assert spend["totalPages"] == -(-len(current) // 7)
    assert spend["subscriptionCycleStart"] == team.cycle_start_ms
    amounts = [row["spendCents"] for row in spend["teamMemberSpend"]]
    assert amounts == sorted(amounts, reverse=True)
    top = spend["teamMemberSpend"][0]
    assert top["overallSpendCents"] >= top["spendCents"] > 0
    truth = (await client.get("/_sim/truth", params={"start_ms": team.cycle_start_ms})).json()
    cycle_micros = sum(
        u["cost_micros"] for u in truth["user_days"] if u["user_email"] == top["email"].lower()
    )
    assert top["overallSpendCents"] == round(Decimal(cycle_micros) / 10_000)

    too_long = await client.post(
        "/teams/daily-usage-data", json={"startDate": 0, "endDate": 31 * DAY_MS}
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"] == "Bad Request"
    assert (await client.post("/teams/daily-usage-data", json={})).status_code == 400
    start, end = team.now_ms - 7 * DAY_MS, team.now_ms
    active = (
        await client.post("/teams/daily-usage-data", json={"startDate": start, "endDate": end})
    ).json()
    paged = (
        await client.post(
            "/teams/daily-usage-data",
            json={"startDate": start, "endDate": end, "page": 2, "pageSize": 15},
        )
    ).json()
    assert "pagination" not in active
    assert "isActive" not in active["data"][0]
    assert paged["pagination"] | {"totalUsers": 0} == {
        "page": 2,
        "pageSize": 15,
        "totalUsers": 0,
        "totalPages": 3,
        "hasNextPage": True,
        "hasPreviousPage": True,
    }
    assert len(paged["data"]) == 15 * 8
    assert any(not row["isActive"] for row in paged["data"])
    week = (await client.get("/_sim/truth", params={"start_ms": start - start % DAY_MS})).json()
    assert {(r["email"].lower(), r["day"]) for r in active["data"]} == set(_truth_cells(week))

    groups = (await client.get("/teams/groups")).json()
    assert groups["unassignedGroup"]["id"] == "group_unassigned"
    assert groups["billingCycle"]["cycleStart"].endswith("T00:00:00.000Z")
    listed = groups["groups"] + [groups["unassignedGroup"]]
    assert sum(g["memberCount"] for g in listed) == len(current)
    assert all(m["userId"].startswith("user_") for g in listed for m in g["currentMembers"])
    assert (await client.get("/teams/groups", params={"billingCycle": "soon"})).status_code == 400
    earlier = await client.get("/teams/groups", params={"billingCycle": "2026-10-15"})
    assert earlier.json()["billingCycle"]["cycleStart"] < groups["billingCycle"]["cycleStart"]


async def test_unknown_paths_and_methods_are_404(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/teams/nothing"), await client.get("/teams/spend")):
        assert response.status_code == 404
        assert response.json() == {"error": "Not Found", "message": "Resource not found"}
