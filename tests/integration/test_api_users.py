"""`GET /api/users/{email}` over real PostgreSQL: the drilldown's exact numbers on the dataset
of test_api_stats, the team median and rank, the cycle and limit, recent anomalies and
incidents, groups, case-insensitive e-mails, 404, auth and validation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import asyncpg
import pytest

from tests.integration.test_api_incidents import PROBLEM, add_incident, add_token, bearer
from tests.integration.test_api_stats import AUTH, PLATFORM, M, api, get, seed_team

pytestmark = pytest.mark.timeout(60)

__all__ = ["api"]  # the fixture


async def add_anomaly(
    pool: asyncpg.Pool, subject: str, detected_at: datetime, *, detector: str = "spend_spike"
) -> str:
    anomaly_id = str(uuid.uuid4())
    await pool.execute(
        """
        INSERT INTO anomalies (anomaly_id, fingerprint, detector, severity, subject, metric,
            value, threshold, window_start, window_end, message, detected_at)
        VALUES ($1, $2, $3, 'warning', $4, 'spend', $5, $6, $7, $7, 'spend spiked', $7)
        """,
        uuid.UUID(anomaly_id),
        f"{subject}:{detector}:{anomaly_id}",
        detector,
        subject,
        Decimal("214.5"),
        Decimal(50),
        detected_at,
    )
    return anomaly_id


async def test_the_drilldown_of_a_user(api: aiohttp.ClientSession, pool: asyncpg.Pool) -> None:
    team = await seed_team(pool)
    now = datetime.now(UTC)
    older = await add_anomaly(pool, "alice@x.com", now - timedelta(days=2))
    newer = await add_anomaly(pool, "alice@x.com", now - timedelta(hours=1))
    await add_anomaly(pool, "bob@x.com", now)
    incident = await add_incident(pool, detected_at=now, subject="alice@x.com")
    await add_incident(pool, detected_at=now, subject="bob@x.com")

    body = await get(api, "/api/users/alice@x.com", days="3")

    assert (body["user_email"], body["name"], body["role"]) == ("alice@x.com", "Alice", "member")
    assert (body["is_member"], body["is_removed"]) == (True, False)
    assert (body["first_day"], body["last_day"]) == (str(team.day(-2)), str(team.today))
    assert body["totals"] == {
        "spend_micros": 40 * M,
        "requests": 30,
        "tokens": 1500,
        "active_days": 2,
        "cost_per_request_micros": 1_333_333,  # $40 / 30
        "spend_per_active_day_micros": 20 * M,
    }
    # active users spent $40, $5, $5 and made 30, 5, 5 requests
    assert body["team"] == {
        "active_users": 3,
        "median_spend_micros": 5 * M,
        "median_requests": "5",
        "spend_vs_median_percent": "800.00",
        "spend_rank": 1,
    }
    assert [(d["day"], d["spend_micros"], d["requests"]) for d in body["daily"]] == [
        (str(team.day(-2)), 0, 0),
        (str(team.day(-1)), 10 * M, 20),
        (str(team.today), 30 * M, 10),
    ]
    assert body["models"] == [
        {
            "model": "opus",
            "providers": ["cursor"],
            "spend_micros": 30 * M,
            "requests": 10,
            "tokens": 1500,
            "days_used": 1,
            "cost_per_request_micros": 3 * M,
        },
        {
            "model": "sonnet",
            "providers": ["cursor"],
            "spend_micros": 10 * M,
            "requests": 20,
            "tokens": 0,
            "days_used": 1,
            "cost_per_request_micros": 500_000,
        },
    ]
    cycle = body["cycle"]
    assert cycle["start"] == str(team.cycle_start)
    assert (cycle["spend_micros"], cycle["provider_spend_micros"]) == (40 * M, 41 * M)
    assert (cycle["limit_micros"], cycle["limit_used_percent"]) == (100 * M, "41.00")
    assert (cycle["on_demand_micros"], cycle["first_on_demand_day"]) == (0, None)
    assert body["groups"] == [{"group_id": PLATFORM, "name": "Platform"}]
    assert [a["anomaly_id"] for a in body["anomalies"]] == [newer, older]
    assert body["anomalies"][0]["value"] == "214.5"
    assert [i["incident_id"] for i in body["incidents"]] == [incident]

    recent = await get(api, "/api/users/alice@x.com", days="3", recent="1")
    assert [a["anomaly_id"] for a in recent["anomalies"]] == [newer]


async def test_ties_share_a_rank_and_the_cycle_shows_on_demand(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    team = await seed_team(pool)

    bob = await get(api, "/api/users/bob@x.com", days="3")

    assert bob["team"]["spend_rank"] == 2  # $5, as dave: both behind alice
    assert bob["team"]["spend_vs_median_percent"] == "100.00"
    cycle = bob["cycle"]
    assert (cycle["on_demand_micros"], cycle["on_demand_requests"]) == (1 * M, 2)
    assert cycle["first_on_demand_day"] == str(team.day(-2))
    assert (cycle["limit_micros"], cycle["limit_used_percent"]) == (5 * M, "120.00")
    assert bob["groups"] == []


async def test_email_is_case_insensitive(api: aiohttp.ClientSession, pool: asyncpg.Pool) -> None:
    await seed_team(pool)
    body = await get(api, "/api/users/Alice@X.COM", days="3")
    assert (body["user_email"], body["totals"]["spend_micros"]) == ("alice@x.com", 40 * M)


async def test_a_member_without_usage_and_a_user_without_membership(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    await seed_team(pool)
    erin = await get(api, "/api/users/erin@x.com")  # removed member, $0 snapshot, no usage
    assert (erin["is_member"], erin["is_removed"], erin["name"]) == (True, True, "Erin")
    assert (erin["totals"]["spend_micros"], erin["team"]["spend_rank"]) == (0, None)
    assert erin["cycle"]["provider_spend_micros"] == 0
    assert len(erin["daily"]) == 30
    dave = await get(api, "/api/users/dave@x.com", days="3")  # usage, no member row
    assert (dave["is_member"], dave["name"], dave["totals"]["spend_micros"]) == (
        False,
        None,
        5 * M,
    )
    assert dave["models"][0]["providers"] == ["openai"]


@pytest.mark.parametrize("email", ["nobody@x.com", "a%00b@x.com", "x" * 321])
async def test_an_unknown_user_is_404(
    api: aiohttp.ClientSession, pool: asyncpg.Pool, email: str
) -> None:
    await seed_team(pool)
    async with api.get(f"/api/users/{email}", headers=AUTH) as resp:
        assert (resp.status, resp.content_type) == (404, PROBLEM)
        assert (await resp.json())["title"] == "User not found"


async def test_the_drilldown_needs_a_token(api: aiohttp.ClientSession, pool: asyncpg.Pool) -> None:
    await seed_team(pool)
    async with api.get("/api/users/alice@x.com") as resp:
        assert (resp.status, resp.content_type) == (401, PROBLEM)
    reader = await add_token(pool, "reader", admin=False)
    async with api.get("/api/users/alice@x.com", headers=bearer(reader)) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"days": "0"}, "days"),
        ({"days": "400"}, "days"),
        ({"recent": "0"}, "recent"),
        ({"recent": "101"}, "recent"),
        ({"limit": "5"}, "limit"),
    ],
)
async def test_invalid_parameters_are_400(
    api: aiohttp.ClientSession, pool: asyncpg.Pool, params: dict[str, str], detail: str
) -> None:
    await seed_team(pool)
    async with api.get("/api/users/alice@x.com", params=params, headers=AUTH) as resp:
        assert (resp.status, resp.content_type) == (400, PROBLEM)
        assert detail in (await resp.json())["detail"]
