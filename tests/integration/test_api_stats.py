"""The team usage endpoints over real PostgreSQL: /api/stats, /api/analytics, /api/model-costs,
/api/team-spend; exact numbers on a hand-seeded rollup, the team timezone, auth, validation,
pagination, and the rollup summaries the endpoints read (migration 0008) kept exact by the
sink's own SQL.

Rows are inserted into `usage_daily_user_model` directly (triggers keep the summaries), on days
relative to today in TEAM_TIMEZONE, so the expected numbers hold whenever the test runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from spendwatch.collector import repository as sink
from spendwatch.common.cycles import cycle_containing
from spendwatch.common.events import UsageRecordedV1
from tests.integration.test_api_incidents import (
    ADMIN_TOKEN,
    PROBLEM,
    add_incident,
    add_token,
    bearer,
    settings_for,
)
from tests.integration.test_api_slack import running_api

pytestmark = pytest.mark.timeout(60)

TZ = "Europe/Berlin"
PLATFORM = "cursor::g1"  # the group key /api/groups uses: provider:account:group id
AUTH = bearer(ADMIN_TOKEN)
M = 1_000_000  # micro-dollars per dollar


def today_in(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


async def clear_of_midnight(*timezones: str, margin: float = 20.0) -> None:
    """Wait past midnight if it is due within `margin` seconds in one of `timezones`, so the
    test and the API (which reads the real clock) agree on what today is."""
    for timezone in timezones:
        now = datetime.now(ZoneInfo(timezone))
        midnight = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=now.tzinfo)
        left = (midnight - now).total_seconds()
        if left < margin:
            await asyncio.sleep(left + 1)


async def add_usage(
    pool: asyncpg.Pool,
    day: date,
    user: str,
    model: str,
    micros: int,
    events: int,
    *,
    provider: str = "cursor",
    **extra: int,
) -> None:
    """One rollup row (the summaries follow through the triggers)."""
    columns: dict[str, Any] = {
        "day": day,
        "user_email": user,
        "provider": provider,
        "model": model,
        "events": events,
        "cost_micros": micros,
        "first_event_at": datetime.combine(day, time(9), tzinfo=UTC),
        "last_event_at": datetime.combine(day, time(17), tzinfo=UTC),
        **extra,
    }
    names = ", ".join(columns)
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await pool.execute(
        f"INSERT INTO usage_daily_user_model ({names}) VALUES ({marks})", *columns.values()
    )


async def add_member(pool: asyncpg.Pool, user: str, name: str, *, removed: bool = False) -> None:
    await pool.execute(
        """
        INSERT INTO members (provider, user_email, name, role, is_removed, first_seen_at,
                             captured_at)
        VALUES ('cursor', $1, $2, 'member', $3, now(), now())
        """,
        user,
        name,
        removed,
    )


async def add_snapshot(
    pool: asyncpg.Pool,
    cycle_start: date,
    user: str,
    overall: int,
    on_demand: int = 0,
    *,
    hard_limit: int | None = None,
    monthly_limit: int | None = None,
) -> None:
    await pool.execute(
        """
        INSERT INTO spend_snapshots (provider, cycle_start, user_email, spend_micros,
            overall_spend_micros, hard_limit_override_micros, monthly_limit_micros,
            first_captured_at, captured_at)
        VALUES ('cursor', $1, $2, $3, $4, $5, $6, now(), now())
        """,
        datetime.combine(cycle_start, time(), tzinfo=UTC),
        user,
        on_demand,
        overall,
        hard_limit,
        monthly_limit,
    )


async def add_group(pool: asyncpg.Pool, group_id: str, name: str, users: list[str]) -> None:
    await pool.execute(
        "INSERT INTO groups (provider, group_id, name, captured_at)"
        " VALUES ('cursor', $1, $2, now())",
        group_id,
        name,
    )
    for user in users:
        await pool.execute(
            "INSERT INTO group_members (provider, group_id, user_email, captured_at)"
            " VALUES ('cursor', $1, $2, now())",
            group_id,
            user,
        )


@dataclass(frozen=True)
class Team:
    """The seeded dataset; `today` is T in TEAM_TIMEZONE, the cycle started on T-2."""

    today: date

    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    @property
    def cycle_start(self) -> date:
        return self.day(-2)


async def seed_team(pool: asyncpg.Pool, timezone: str = TZ) -> Team:
    """Window T-2..T (days=3): alice $40 (opus $30 on T with 4 max-mode requests and 1,500
    tokens, sonnet $10 on T-1), bob $5 on T-2 (sonnet, 5 headless requests, 2 on-demand for $1),
    dave $5 on T-1 (openai gpt-5). Previous window T-5..T-3: carol $20. Older: carol $100 on
    T-8. Billing cycle started T-2 (provider snapshots: alice $41 limit $100, bob $6 hard limit
    $5, erin $0); an older cycle's snapshot must not count."""
    team = Team(today_in(timezone))
    t = team.day
    await add_usage(
        pool, t(0), "alice@x.com", "opus", 30 * M, 10,
        max_mode_events=4, input_tokens=1000, output_tokens=500,
    )  # fmt: skip
    await add_usage(pool, t(-1), "alice@x.com", "sonnet", 10 * M, 20)
    await add_usage(
        pool, t(-2), "bob@x.com", "sonnet", 5 * M, 5,
        headless_events=5, usage_based_events=2, usage_based_micros=1 * M,
    )  # fmt: skip
    await add_usage(pool, t(-1), "dave@x.com", "gpt-5", 5 * M, 5, provider="openai")
    await add_usage(pool, t(-4), "carol@x.com", "sonnet", 20 * M, 8)
    await add_usage(pool, t(-8), "carol@x.com", "sonnet", 100 * M, 1)
    for user, name in [("alice@x.com", "Alice"), ("bob@x.com", "Bob"), ("carol@x.com", "Carol")]:
        await add_member(pool, user, name)
    await add_member(pool, "erin@x.com", "Erin", removed=True)
    await add_snapshot(pool, t(-40), "alice@x.com", 999 * M)
    await add_snapshot(pool, team.cycle_start, "alice@x.com", 41 * M, monthly_limit=100 * M)
    await add_snapshot(pool, team.cycle_start, "bob@x.com", 6 * M, 1 * M, hard_limit=5 * M)
    await add_snapshot(pool, team.cycle_start, "erin@x.com", 0)
    await add_group(pool, "g1", "Platform", ["alice@x.com", "dave@x.com"])
    await pool.execute(
        "INSERT INTO settings (key, value) VALUES ('detection', $1)",
        {"static_caps": {"team_cycle_budget_usd": "90"}},
    )
    return team


@pytest.fixture
async def api(
    database_url: str, nats_url: str, pool: asyncpg.Pool
) -> AsyncIterator[aiohttp.ClientSession]:
    await clear_of_midnight(TZ)
    settings = settings_for(database_url, nats_url, TEAM_TIMEZONE=TZ)
    async with running_api(settings, db=pool) as http:
        yield http


async def get(http: aiohttp.ClientSession, path: str, **params: str) -> Any:
    async with http.get(path, params=params, headers=AUTH) as resp:
        body = await resp.text()
        assert resp.status == 200, body
        return json.loads(body)


async def test_stats_over_three_days_against_the_three_before(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    team = await seed_team(pool)
    await add_incident(pool, detected_at=datetime.now(UTC))
    await add_incident(pool, detected_at=datetime.now(UTC), state="acknowledged")
    await add_incident(pool, detected_at=datetime.now(UTC), state="resolved")

    body = await get(api, "/api/stats", days="3", top="2")

    assert (body["timezone"], body["days"], body["members"]) == (TZ, 3, 3)
    assert body["active_share_percent"] == "100.00"  # alice, bob, dave of 3 members (erin left)
    current = body["current"]
    assert (current["first_day"], current["last_day"]) == (str(team.day(-2)), str(team.today))
    assert current["spend_micros"] == 50 * M
    assert (current["requests"], current["tokens"], current["input_tokens"]) == (40, 1500, 1000)
    assert current["active_users"] == 3
    assert current["avg_spend_per_active_user_micros"] == 16_666_667  # $50 / 3
    assert current["spend_per_day_micros"] == 16_666_667
    previous = body["previous"]
    assert (previous["first_day"], previous["last_day"]) == (str(team.day(-5)), str(team.day(-3)))
    assert (previous["spend_micros"], previous["requests"], previous["active_users"]) == (
        20 * M,
        8,
        1,
    )
    assert body["change"] == {
        "spend_percent": "150.00",
        "requests_percent": "400.00",
        "tokens_percent": None,  # no tokens before
        "active_users_percent": "200.00",
    }
    assert body["top_spenders"] == [
        {
            "user_email": "alice@x.com",
            "name": "Alice",
            "spend_micros": 40 * M,
            "requests": 30,
            "share_percent": "80.00",
            "top_model": "opus",
        },
        {
            "user_email": "bob@x.com",
            "name": "Bob",
            "spend_micros": 5 * M,
            "requests": 5,
            "share_percent": "10.00",
            "top_model": "sonnet",
        },
    ]
    assert [(m["model"], m["spend_micros"], m["requests"], m["spend_share_percent"])
            for m in body["models"]] == [
        ("opus", 30 * M, 10, "60.00"),
        ("sonnet", 15 * M, 25, "30.00"),
        ("gpt-5", 5 * M, 5, "10.00"),
    ]  # fmt: skip
    assert [(d["day"], d["spend_micros"], d["requests"], d["active_users"])
            for d in body["daily"]] == [
        (str(team.day(-2)), 5 * M, 5, 1),
        (str(team.day(-1)), 15 * M, 25, 2),
        (str(team.today), 30 * M, 10, 1),
    ]  # fmt: skip
    assert body["open_incidents"] == 2


async def test_stats_cycle_is_the_billing_cycle_with_a_trailing_week_projection(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    team = await seed_team(pool)
    # A 30-day window reaches far before the cycle: the cycle numbers must not follow it.
    cycle = (await get(api, "/api/stats", days="30"))["cycle"]

    expected = cycle_containing(team.today, team.cycle_start)
    assert expected.start == team.cycle_start
    days_left = (expected.end - team.today).days
    assert (cycle["start"], cycle["end"]) == (str(expected.start), str(expected.end))
    assert (cycle["day_number"], cycle["length_days"], cycle["days_left"]) == (
        3,
        (expected.end - expected.start).days,
        days_left,
    )
    assert cycle["spend_micros"] == 50 * M  # not carol's $20 and $100 before the cycle
    assert cycle["provider_spend_micros"] == 47 * M  # $41 + $6 + $0; not the old $999
    assert cycle["on_demand_micros"] == 1 * M
    # $20 on complete cycle days + ($40 over T-7..T-1) / 7 per day left, today included
    trailing = Decimal(5 + 10 + 5 + 20) * M / 7
    projected = (Decimal(20 * M) + trailing * days_left).quantize(Decimal(1), ROUND_HALF_EVEN)
    assert cycle["projected_micros"] == max(50 * M, int(projected))
    assert (cycle["budget_micros"], cycle["budget_used_percent"]) == (90 * M, "55.56")


async def test_days_are_the_team_timezone_days(
    database_url: str, nats_url: str, pool: asyncpg.Pool
) -> None:
    # Kiritimati (UTC+14) and Pago Pago (UTC-11) are always on different dates.
    east, west = "Pacific/Kiritimati", "Pacific/Pago_Pago"
    await clear_of_midnight(east, west)
    assert today_in(east) > today_in(west)
    await add_usage(pool, today_in(east), "east@x.com", "opus", 7 * M, 1)
    await add_usage(pool, today_in(west), "west@x.com", "opus", 3 * M, 1)
    for timezone, user, micros in [(east, "east@x.com", 7 * M), (west, "west@x.com", 3 * M)]:
        settings = settings_for(database_url, nats_url, TEAM_TIMEZONE=timezone)
        async with running_api(settings, db=pool) as http:
            body = await get(http, "/api/stats", days="1")
            assert body["current"]["last_day"] == str(today_in(timezone))
            assert body["current"]["spend_micros"] == micros
            assert [s["user_email"] for s in body["top_spenders"]] == [user]
            costs = await get(http, "/api/model-costs", days="1")
            assert [m["spend_micros"] for m in costs["models"]] == [micros]


async def test_analytics_mix_shares_exhaustion_concentration_providers(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    team = await seed_team(pool)

    body = await get(api, "/api/analytics", days="3")

    assert (body["spend_micros"], body["requests"]) == (50 * M, 40)
    assert [
        (
            m["model"],
            m["spend_share_percent"],
            m["request_share_percent"],
            m["cost_per_request_micros"],
            m["users"],
        )
        for m in body["models"]
    ] == [
        ("opus", "60.00", "25.00", 3 * M, 1),
        ("sonnet", "30.00", "62.50", 600_000, 2),
        ("gpt-5", "10.00", "12.50", 1 * M, 1),
    ]
    assert [d["active_users"] for d in body["dau"]] == [1, 2, 1]
    assert body["avg_dau"] == "1.33"
    assert body["max_mode"] == {
        "requests": 4,
        "requests_percent": "10.00",
        "spend_micros": None,
        "spend_percent": None,
        "users": 1,
    }
    assert (body["headless"]["requests"], body["headless"]["requests_percent"]) == (5, "12.50")
    assert body["on_demand"] == {
        "requests": 2,
        "requests_percent": "5.00",
        "spend_micros": 1 * M,
        "spend_percent": "2.00",
        "users": 1,
    }
    plan = body["plan_exhaustion"]
    assert plan["cycle_start"] == str(team.cycle_start)
    assert (plan["active_users"], plan["exhausted_users"], plan["exhausted_percent"]) == (
        3,
        1,
        "33.33",
    )
    assert plan["median_day_of_cycle"] == "1"
    assert plan["users"] == [
        {
            "user_email": "bob@x.com",
            "first_on_demand_day": str(team.day(-2)),
            "day_of_cycle": 1,
            "on_demand_micros": 1 * M,
            "on_demand_requests": 2,
        }
    ]
    # spends $5, $5, $40: the top 10 % is one user; Gini = (-2*5 + 0*5 + 2*40) / (3 * 50)
    assert body["concentration"] == {
        "users": 3,
        "top_users": 1,
        "top_share_percent": "80.00",
        "top_user_share_percent": "80.00",
        "gini": "0.4667",
    }
    assert body["providers"] == [
        {
            "provider": "cursor",
            "spend_micros": 45 * M,
            "spend_share_percent": "90.00",
            "requests": 35,
            "users": 2,
        },
        {
            "provider": "openai",
            "spend_micros": 5 * M,
            "spend_share_percent": "10.00",
            "requests": 5,
            "users": 1,
        },
    ]


async def test_model_costs_per_request_and_per_million_tokens(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    await seed_team(pool)

    body = await get(api, "/api/model-costs", days="3")

    opus, sonnet, gpt = body["models"]
    assert opus == {
        "model": "opus",
        "providers": ["cursor"],
        "spend_micros": 30 * M,
        "requests": 10,
        "tokens": 1500,
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_per_request_micros": 3 * M,
        "cost_per_million_tokens_micros": 20_000 * M,  # $30 per 1,500 tokens
        "users": 1,
    }
    assert (sonnet["model"], sonnet["spend_micros"], sonnet["users"]) == ("sonnet", 15 * M, 2)
    assert sonnet["cost_per_million_tokens_micros"] is None  # no tokens
    assert (gpt["model"], gpt["providers"]) == ("gpt-5", ["openai"])
    # the 30-day window adds carol's $120 on sonnet
    wide = await get(api, "/api/model-costs", days="30")
    assert [(m["model"], m["spend_micros"]) for m in wide["models"]] == [
        ("sonnet", 135 * M),
        ("opus", 30 * M),
        ("gpt-5", 5 * M),
    ]


async def test_team_spend_sorted_filtered_and_paginated(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    team = await seed_team(pool)

    body = await get(api, "/api/team-spend")
    assert (body["cycle_start"], body["total"], body["limit"], body["offset"]) == (
        str(team.cycle_start),
        4,
        100,
        0,
    )
    rows = {r["user_email"]: r for r in body["items"]}
    assert [r["user_email"] for r in body["items"]] == [
        "alice@x.com",  # provider $41
        "bob@x.com",  # $6
        "erin@x.com",  # $0
        "dave@x.com",  # no snapshot: last
    ]
    assert rows["alice@x.com"] == {
        "user_email": "alice@x.com",
        "name": "Alice",
        "provider_spend_micros": 41 * M,
        "provider_on_demand_micros": 0,
        "spend_micros": 40 * M,
        "on_demand_micros": 0,
        "requests": 30,
        "limit_micros": 100 * M,
        "limit_used_percent": "41.00",
        "groups": [{"group_id": PLATFORM, "name": "Platform"}],
    }
    bob = rows["bob@x.com"]
    assert (bob["limit_micros"], bob["limit_used_percent"]) == (5 * M, "120.00")  # hard limit
    assert (bob["provider_on_demand_micros"], bob["on_demand_micros"]) == (1 * M, 1 * M)
    dave = rows["dave@x.com"]
    assert (dave["provider_spend_micros"], dave["spend_micros"], dave["name"]) == (
        None,
        5 * M,
        None,
    )

    ordered = await get(api, "/api/team-spend", sort="spend", order="asc")
    assert [r["user_email"] for r in ordered["items"]] == [
        "erin@x.com",
        "bob@x.com",
        "dave@x.com",
        "alice@x.com",
    ]
    page = await get(api, "/api/team-spend", sort="email", order="asc", limit="2", offset="2")
    assert (page["total"], [r["user_email"] for r in page["items"]]) == (
        4,
        ["dave@x.com", "erin@x.com"],
    )
    past = await get(api, "/api/team-spend", offset="10")
    assert (past["total"], past["items"]) == (4, [])
    grouped = await get(api, "/api/team-spend", group=PLATFORM, sort="name", order="asc")
    assert (grouped["total"], [r["user_email"] for r in grouped["items"]]) == (
        2,
        ["alice@x.com", "dave@x.com"],  # Alice, then dave (no name) last
    )
    assert (await get(api, "/api/team-spend", group="g1"))["total"] == 0  # not a group key


async def test_team_spend_groups_follow_local_edits(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    await seed_team(pool)
    # dave is moved to a group made in spendwatch; the provider still lists him in Platform
    await pool.execute(
        "INSERT INTO local_groups (group_key, name, created_by) VALUES ('local:c', 'Contract', 't')"
    )
    await pool.execute(
        "INSERT INTO group_overrides (user_email, group_key, source, updated_by)"
        " VALUES ('dave@x.com', 'local:c', 'api', 't')"
    )

    platform = await get(api, "/api/team-spend", group=PLATFORM)
    assert [r["user_email"] for r in platform["items"]] == ["alice@x.com"]
    contract = await get(api, "/api/team-spend", group="local:c")
    assert [(r["user_email"], r["groups"]) for r in contract["items"]] == [
        ("dave@x.com", [{"group_id": "local:c", "name": "Contract"}])
    ]


async def test_no_data_is_zero_not_an_error(api: aiohttp.ClientSession) -> None:
    stats = await get(api, "/api/stats")
    assert (stats["current"]["spend_micros"], stats["current"]["active_users"]) == (0, 0)
    assert stats["current"]["avg_spend_per_active_user_micros"] is None
    assert len(stats["daily"]) == 30
    assert stats["cycle"]["provider_spend_micros"] is None
    assert stats["cycle"]["start"] == str(today_in(TZ).replace(day=1))  # calendar month
    analytics = await get(api, "/api/analytics")
    assert analytics["concentration"]["gini"] is None
    assert analytics["avg_dau"] == "0.00"
    assert (await get(api, "/api/model-costs"))["models"] == []
    assert (await get(api, "/api/team-spend"))["total"] == 0


USAGE_PATHS = ["/api/stats", "/api/analytics", "/api/model-costs", "/api/team-spend"]


@pytest.mark.parametrize("path", USAGE_PATHS)
async def test_reads_need_a_token(
    api: aiohttp.ClientSession, pool: asyncpg.Pool, path: str
) -> None:
    async with api.get(path) as resp:
        assert (resp.status, resp.content_type) == (401, PROBLEM)
    reader = await add_token(pool, "reader", admin=False)
    async with api.get(path, headers=bearer(reader)) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    ("path", "params", "detail"),
    [
        ("/api/stats", {"days": "0"}, "days"),
        ("/api/stats", {"days": "367"}, "days"),
        ("/api/stats", {"days": "week"}, "days"),
        ("/api/stats", {"top": "101"}, "top"),
        ("/api/stats", {"day": "3"}, "day"),
        ("/api/analytics", {"days": "-1"}, "days"),
        ("/api/analytics", {"group": "g1"}, "group"),
        ("/api/model-costs", {"days": "1.5"}, "days"),
        ("/api/team-spend", {"sort": "cost; DROP TABLE members"}, "sort"),
        ("/api/team-spend", {"order": "up"}, "order"),
        ("/api/team-spend", {"limit": "0"}, "limit"),
        ("/api/team-spend", {"offset": "-1"}, "offset"),
        ("/api/team-spend", {"days": "3"}, "days"),
        ("/api/team-spend", {"group": "g\x001"}, "group"),
    ],
)
async def test_invalid_parameters_are_400_problems(
    api: aiohttp.ClientSession, path: str, params: dict[str, str], detail: str
) -> None:
    async with api.get(path, params=params, headers=AUTH) as resp:
        assert (resp.status, resp.content_type) == (400, PROBLEM)
        problem = await resp.json()
    assert problem["title"] == "Invalid parameter"
    assert detail in problem["detail"]


async def test_repeated_parameter_is_400(api: aiohttp.ClientSession) -> None:
    async with api.get("/api/stats?days=3&days=4", headers=AUTH) as resp:
        assert resp.status == 400
        assert "days" in (await resp.json())["detail"]


def event(user: str, at: datetime, model: str, cents: int, n: int, **extra: Any) -> UsageRecordedV1:
    return UsageRecordedV1(
        event_id=f"s:{user}:{at.isoformat()}:{model}:{n}",
        provider="cursor",
        occurred_at=at,
        user_email=user,
        model=model,
        kind=extra.pop("kind", "included"),
        cost_micros=cents * 10_000,
        ingested_at=at,
        **extra,
    )


async def test_the_summaries_stay_equal_to_the_rollup_under_the_sinks_sql(
    pool: asyncpg.Pool,
) -> None:
    at = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 23:30 in Berlin: the 20th
    first = [event("a@x.com", at + timedelta(minutes=i), "opus", 100 + i, i) for i in range(5)]
    first += [event("b@x.com", at, "sonnet", 7, 0, max_mode=True, kind="usage_based")]
    second = [event("a@x.com", at + timedelta(hours=1), "opus", 50, 9, is_headless=True)]
    second += [event("a@x.com", at + timedelta(hours=1), "sonnet", 3, 9, input_tokens=40)]
    second += first[:2]  # a redelivery adds nothing
    for batch in (first, second):
        async with pool.acquire() as conn, conn.transaction():
            await sink.prepare_stage(conn)
            await sink.insert_usage_events(conn, events=batch, timezone=TZ)

    columns = (
        "events, cost_micros, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_tokens, max_mode_events, headless_events, usage_based_events, "
        "usage_based_micros"
    )
    sums = ", ".join(f"sum({c})::bigint AS {c}" for c in columns.split(", "))
    for table, keys in [
        ("usage_daily_user", "day, user_email"),
        ("usage_daily_model", "day, provider, model"),
    ]:
        expected = await pool.fetch(
            f"SELECT {keys}, {sums} FROM usage_daily_user_model GROUP BY {keys} ORDER BY {keys}"
        )
        found = await pool.fetch(f"SELECT {keys}, {columns} FROM {table} ORDER BY {keys}")
        assert [dict(r) for r in found] == [dict(r) for r in expected]
    days = await pool.fetch("SELECT day, user_email, events, cost_micros FROM usage_daily_user")
    assert sorted(tuple(r) for r in days) == [
        (date(2026, 11, 20), "a@x.com", 5, (100 + 101 + 102 + 103 + 104) * 10_000),
        (date(2026, 11, 20), "b@x.com", 1, 70_000),
        (date(2026, 11, 21), "a@x.com", 2, 530_000),  # 00:30 Berlin
    ]
    # deletes and truncation are followed too (e.g. a repair)
    await pool.execute("DELETE FROM usage_daily_user_model WHERE user_email = 'b@x.com'")
    assert (
        await pool.fetchval("SELECT count(*) FROM usage_daily_user WHERE user_email = 'b@x.com'")
        == 0
    )
    await pool.execute("TRUNCATE usage_daily_user_model")
    assert await pool.fetchval("SELECT count(*) FROM usage_daily_model") == 0
