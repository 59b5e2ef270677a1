"""/api/groups over real PostgreSQL: list with spend, local edits that survive the collector,
HiBob import preview and selective apply, export and re-import.

The roster is written by the collector's own `upsert_roster`, spend straight into the rollup.
Seed (TEAM_TIMEZONE=UTC): Cursor groups g1 "Platform" [a, b, c] and g2 "Web" [c, d, e]; f is in
no group. Spend in the last 30 days: a $1.00 (10 requests) today, b $2.50 (5) yesterday, d $0.70
(7) today; a also spent $5.00 forty days ago (outside the window).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from spendwatch.collector.repository import upsert_roster
from spendwatch.common.events import RosterSnapshotV1
from spendwatch.common.events.usage import Group, Member
from tests.integration.test_api_incidents import ADMIN_TOKEN, add_token, bearer, settings_for
from tests.integration.test_api_slack import running_api

pytestmark = pytest.mark.timeout(60)

ADMIN = bearer(ADMIN_TOKEN)
G1 = "cursor::g1"
G2 = "cursor::g2"
NAMES = {"a": "Ann", "b": "Bob", "c": "Cat", "d": "Dan", "e": "Eve", "f": "Fay"}


def email(letter: str) -> str:
    return f"{letter}@x.com"


def roster(captured_at: datetime, *, g1_name: str = "Platform") -> RosterSnapshotV1:
    return RosterSnapshotV1(
        snapshot_id=f"roster-{captured_at.timestamp():.0f}",
        provider="cursor",
        captured_at=captured_at,
        members=[Member(user_email=email(k), name=v) for k, v in NAMES.items()],
        groups=[
            Group(group_id="g1", name=g1_name, member_emails=[email(x) for x in "abc"]),
            Group(group_id="g2", name="Web", member_emails=[email(x) for x in "cde"]),
        ],
        complete_groups=True,
    )


async def collect(pool: asyncpg.Pool, snapshot: RosterSnapshotV1) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await upsert_roster(conn, snapshot)


async def add_spend(pool: asyncpg.Pool, who: str, days_ago: int, micros: int, events: int) -> None:
    day = datetime.now(UTC).date() - timedelta(days=days_ago)
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    await pool.execute(
        """
        INSERT INTO usage_daily_user_model
            (day, user_email, provider, model, events, cost_micros, first_event_at, last_event_at)
        VALUES ($1, $2, 'cursor', 'claude-4-sonnet', $3, $4, $5, $5)
        """,
        day,
        email(who),
        events,
        micros,
        at,
    )


@pytest.fixture
async def seeded(pool: asyncpg.Pool) -> asyncpg.Pool:
    await collect(pool, roster(datetime.now(UTC) - timedelta(hours=2)))
    await add_spend(pool, "a", 0, 1_000_000, 10)
    await add_spend(pool, "a", 40, 5_000_000, 50)
    await add_spend(pool, "b", 1, 2_500_000, 5)
    await add_spend(pool, "d", 0, 700_000, 7)
    return pool


@pytest.fixture
async def api(
    database_url: str, nats_url: str, seeded: asyncpg.Pool
) -> AsyncIterator[aiohttp.ClientSession]:
    async with running_api(settings_for(database_url, nats_url), db=seeded) as http:
        yield http


async def groups(http: aiohttp.ClientSession, query: str = "") -> dict[str, Any]:
    async with http.get(f"/api/groups{query}", headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in body["items"]}


def members_of(group: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["email"], m["origin"]) for m in group["members"]]


async def patch(http: aiohttp.ClientSession, *operations: dict[str, Any]) -> aiohttp.ClientResponse:
    return await http.patch(
        "/api/groups", data=json.dumps({"operations": list(operations)}), headers=ADMIN
    )


async def post_csv(
    http: aiohttp.ClientSession, text: str | bytes, query: str = "", headers: Any = None
) -> aiohttp.ClientResponse:
    return await http.post(
        f"/api/groups/import{query}",
        data=text,
        headers={**(ADMIN if headers is None else headers), "Content-Type": "text/csv"},
    )


async def test_reads_need_a_token_and_writes_an_admin(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    reader = bearer(await add_token(pool, "reader", admin=False))
    for path in ("/api/groups", "/api/groups/export"):
        async with api.get(path) as resp:
            assert resp.status == 401
        async with api.get(path, headers=reader) as resp:
            assert resp.status == 200
    create = {"operations": [{"action": "create", "name": "Eng"}]}
    async with api.patch("/api/groups", data=json.dumps(create)) as resp:
        assert resp.status == 401
    async with api.patch("/api/groups", data=json.dumps(create), headers=reader) as resp:
        assert resp.status == 403
    async with await post_csv(api, "email,group\na@x.com,Eng\n", "?mode=apply", reader) as resp:
        assert resp.status == 403
    async with await post_csv(api, "email,group\na@x.com,Eng\n", headers={}) as resp:
        assert resp.status == 401
    assert await pool.fetchval("SELECT count(*) FROM local_groups") == 0
    assert await pool.fetchval("SELECT count(*) FROM group_overrides") == 0


async def test_groups_with_members_and_spend_from_the_rollup(api: aiohttp.ClientSession) -> None:
    body = await groups(api)
    today = datetime.now(UTC).date()
    assert body["last_day"] == today.isoformat()
    assert body["first_day"] == (today - timedelta(days=29)).isoformat()
    assert body["next_cursor"] is None
    platform, web = body["items"]
    assert (platform["group_id"], platform["name"], platform["origin"]) == (
        G1,
        "Platform",
        "provider",
    )
    assert (platform["member_count"], platform["spend_micros"], platform["events"]) == (
        3,
        3_500_000,
        15,
    )
    assert [(m["email"], m["name"], m["spend_micros"]) for m in platform["members"]] == [
        ("b@x.com", "Bob", 2_500_000),
        ("a@x.com", "Ann", 1_000_000),
        ("c@x.com", "Cat", 0),
    ]
    assert (web["member_count"], web["spend_micros"], web["events"]) == (3, 700_000, 7)
    assert body["unassigned"] == [
        {"email": "f@x.com", "name": "Fay", "origin": None, "spend_micros": 0, "events": 0}
    ]
    # One day: today only (Bob's yesterday is out); 60 days: Ann's old $5 is in.
    assert by_name(await groups(api, "?days=1"))["Platform"]["spend_micros"] == 1_000_000
    assert by_name(await groups(api, "?days=60"))["Platform"]["spend_micros"] == 8_500_000
    cycle = await groups(api, "?cycle=current")
    assert cycle["first_day"] == today.replace(day=1).isoformat()  # no anchor: calendar month


@pytest.mark.parametrize(
    "query",
    [
        "?days=0",
        "?days=367",
        "?days=7&cycle=current",
        "?cycle=last",
        "?limit=0",
        "?limit=501",
        "?cursor=garbage",
        "?page=2",
        "?days=1&days=2",
    ],
)
async def test_bad_queries_are_400(api: aiohttp.ClientSession, query: str) -> None:
    async with api.get(f"/api/groups{query}", headers=ADMIN) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"


async def test_groups_are_paginated_by_name(api: aiohttp.ClientSession) -> None:
    first = await groups(api, "?limit=1")
    assert [g["name"] for g in first["items"]] == ["Platform"]
    assert first["next_cursor"]
    second = await groups(api, f"?limit=1&cursor={first['next_cursor']}")
    assert [g["name"] for g in second["items"]] == ["Web"]
    assert second["next_cursor"] is None
    assert [m["email"] for m in first["unassigned"]] == ["f@x.com"]
    assert second["unassigned"] == []  # the first page has them


async def test_create_rename_and_assign_in_one_patch(api: aiohttp.ClientSession) -> None:
    async with await patch(
        api,
        {"action": "create", "name": "Eng > Mobile"},
        {"action": "assign", "email": "A@x.com", "group_name": "eng > mobile"},
        {"action": "rename", "group_id": G1, "name": "Platform > Core"},
        {"action": "rename", "group_id": G2, "name": "Web"},
        {"action": "assign", "email": "f@x.com", "group_id": G2},
    ) as resp:
        assert resp.status == 200, await resp.text()
        results = (await resp.json())["results"]
    local = results[0]["group_id"]
    assert local.startswith("local:")
    assert [(r["action"], r["changed"]) for r in results] == [
        ("create", True),
        ("assign", True),
        ("rename", True),
        ("rename", False),
        ("assign", True),
    ]
    assert results[1]["group_id"] == local
    got = by_name(await groups(api))
    assert set(got) == {"Eng > Mobile", "Platform > Core", "Web"}
    assert members_of(got["Eng > Mobile"]) == [("a@x.com", "override")]
    assert got["Eng > Mobile"]["origin"] == "local"
    assert got["Eng > Mobile"]["spend_micros"] == 1_000_000
    # Ann left Platform (no double membership); its provider name is kept beside the local one.
    assert members_of(got["Platform > Core"]) == [("b@x.com", "provider"), ("c@x.com", "provider")]
    assert got["Platform > Core"]["provider_name"] == "Platform"
    assert ("f@x.com", "override") in members_of(got["Web"])
    assert (await groups(api))["unassigned"] == []


@pytest.mark.parametrize(
    ("operation", "status", "detail"),
    [
        ({"action": "rename", "group_id": "cursor::nope", "name": "X"}, 404, "operations.1:"),
        ({"action": "assign", "email": "zed@x.com", "group_id": G1}, 404, "zed@x.com"),
        ({"action": "assign", "email": "a@x.com", "group_name": "Nope"}, 404, "Nope"),
        ({"action": "rename", "group_id": G1, "name": "web"}, 409, "already called"),
        ({"action": "create", "name": "Brand new"}, 409, "already called"),
        ({"action": "delete", "group_id": G1}, 422, "operations.1"),
        ({"action": "assign", "email": "a@x.com", "group_id": G1, "group_name": "Web"}, 422, ""),
        ({"action": "create", "name": " "}, 422, "operations.1.create.name"),
    ],
)
async def test_a_failed_operation_undoes_the_whole_patch(
    api: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    operation: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    async with await patch(api, {"action": "create", "name": "Brand new"}, operation) as resp:
        assert resp.status == status
        assert resp.content_type == "application/problem+json"
        assert detail in (await resp.json())["detail"]
    assert await pool.fetchval("SELECT count(*) FROM local_groups") == 0
    assert await pool.fetchval("SELECT count(*) FROM group_overrides") == 0


async def test_bodies_that_are_not_operations_are_refused(api: aiohttp.ClientSession) -> None:
    for body, status in (("{", 400), ("{}", 422), ('{"operations": []}', 422), ("[]", 422)):
        async with api.patch("/api/groups", data=body, headers=ADMIN) as resp:
            assert resp.status == status, body


async def test_local_edits_survive_the_next_collection(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    async with await patch(
        api,
        {"action": "rename", "group_id": G1, "name": "Platform > Core"},
        {"action": "assign", "email": "a@x.com", "group_id": G2},
    ) as resp:
        assert resp.status == 200
    # The collector's next pass: Cursor renames g1 and still lists Ann in it.
    await collect(pool, roster(datetime.now(UTC), g1_name="Platform Team"))
    assert await pool.fetchval("SELECT name FROM groups WHERE group_id = 'g1'") == "Platform Team"
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM group_members WHERE group_id = 'g1' AND user_email = 'a@x.com'"
        )
        == 1
    )
    got = by_name(await groups(api))
    assert set(got) == {"Platform > Core", "Web"}
    assert got["Platform > Core"]["provider_name"] == "Platform Team"
    assert members_of(got["Platform > Core"]) == [("b@x.com", "provider"), ("c@x.com", "provider")]
    assert ("a@x.com", "override") in members_of(got["Web"])
    assert got["Web"]["spend_micros"] == 1_700_000

    # Resetting Ann hands her back to the roster; renaming back to Cursor's name drops the rename.
    async with await patch(
        api,
        {"action": "reset", "email": "a@x.com"},
        {"action": "rename", "group_id": G1, "name": "Platform Team"},
    ) as resp:
        assert [r["changed"] for r in (await resp.json())["results"]] == [True, True]
    got = by_name(await groups(api))
    assert ("a@x.com", "provider") in members_of(got["Platform Team"])
    assert got["Platform Team"]["provider_name"] is None
    assert await pool.fetchval("SELECT count(*) FROM group_renames") == 0


HIBOB = (
    "Email,Display name,Department,Group,Team,Job title\n"
    "a@x.com,Ann,Engineering,Platform,Core,SRE\n"
    'b@x.com,"Bo, B",Engineering,Platform,Core,\n'
    "c@x.com,Cat,Engineering,Platform,Core,\n"
    "d@x.com,Dan,Engineering,Platform,Mobile,\n"
    "e@x.com,Eve,Design,,,\n"
    "zed@x.com,Zed,Sales,,,\n"
)


async def test_import_preview_then_selective_apply(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    async with await post_csv(api, HIBOB) as resp:
        assert resp.status == 200, await resp.text()
        plan = await resp.json()
    assert (plan["format"], plan["total_rows"], plan["matched"], plan["keeps"]) == (
        "hibob",
        6,
        5,
        2,
    )
    assert [(u["email"], u["line"]) for u in plan["unknown"]] == [("zed@x.com", 7)]
    assert plan["merged"] == [
        {"team": "Platform > Mobile", "into": "Platform > Core", "members": 1},
        {"team": "Design > General", "into": "General > General", "members": 1},
    ]
    # Everyone the CSV lists from Cursor's Platform goes to Platform > Core: rename, not empty.
    assert plan["groups_to_rename"] == [
        {
            "id": "r1",
            "group_id": G1,
            "from_name": "Platform",
            "to_name": "Platform > Core",
            "members": 4,
        }
    ]
    # Ann and Bob are only in Platform: they keep it. Cat leaves Web; Dan and Eve move.
    assert [
        (c["id"], c["email"], c["current_groups"], c["to_group"], c["to_group_id"])
        for c in plan["changes"]
    ] == [
        (1, "c@x.com", ["Platform", "Web"], "Platform > Core", G1),
        (2, "d@x.com", ["Web"], "Platform > Core", G1),
        (3, "e@x.com", ["Web"], "General > General", None),
    ]
    assert plan["changes"][0]["name"] == "Cat"
    assert plan["groups_to_create"] == [
        {"name": "General > General", "group_id": None, "members": 1}
    ]
    assert plan["applied"] is None
    # A preview writes nothing.
    assert await pool.fetchval("SELECT count(*) FROM local_groups") == 0
    assert await pool.fetchval("SELECT count(*) FROM group_renames") == 0
    assert await pool.fetchval("SELECT count(*) FROM group_overrides") == 0

    query = f"?mode=apply&plan_id={plan['plan_id']}&reject=e@x.com"
    async with await post_csv(api, HIBOB, query) as resp:
        assert resp.status == 200, await resp.text()
        applied = (await resp.json())["applied"]
    assert applied["moved"] == ["c@x.com", "d@x.com"]
    assert applied["created_groups"] == []
    assert [r["id"] for r in applied["renamed_groups"]] == ["r1"]
    got = by_name(await groups(api))
    assert set(got) == {"Platform > Core", "Web"}
    assert got["Platform > Core"]["provider_name"] == "Platform"
    assert members_of(got["Platform > Core"]) == [
        ("b@x.com", "provider"),
        ("a@x.com", "provider"),
        ("d@x.com", "override"),
        ("c@x.com", "override"),
    ]
    assert members_of(got["Web"]) == [("e@x.com", "provider")]
    assert await pool.fetchval("SELECT count(*) FROM group_overrides WHERE source = 'import'") == 2

    # The old preview is stale now. The new plan: Web's only listed member, Eve, goes to
    # General > General, so Web takes that name and nobody moves.
    async with await post_csv(api, HIBOB, query) as resp:
        assert resp.status == 409
    async with await post_csv(api, HIBOB) as resp:
        again = await resp.json()
    assert (again["changes"], again["keeps"], again["groups_to_create"]) == ([], 5, [])
    assert [(r["id"], r["group_id"], r["to_name"]) for r in again["groups_to_rename"]] == [
        ("r1", G2, "General > General")
    ]
    # Ids select only within a pinned plan; renames only by id.
    async with await post_csv(api, HIBOB, "?mode=apply&accept=r1") as resp:
        assert resp.status == 422
        assert "ids need plan_id" in (await resp.json())["detail"]
    async with await post_csv(
        api, HIBOB, f"?mode=apply&plan_id={again['plan_id']}&accept=r1"
    ) as resp:
        applied = (await resp.json())["applied"]
    assert (applied["moved"], [r["to_name"] for r in applied["renamed_groups"]]) == (
        [],
        ["General > General"],
    )
    got = by_name(await groups(api))
    assert members_of(got["General > General"]) == [("e@x.com", "provider")]
    assert got["General > General"]["provider_name"] == "Web"


async def test_apply_everything_creates_renames_and_moves(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    text = (
        "Email,Department,Group,Team\n"
        "c@x.com,Eng,Platform,Core\n"
        "d@x.com,Design,Design,UX\n"
        "e@x.com,Design,Design,UX\n"
        "f@x.com,Design,Design,UX\n"
    )
    async with await post_csv(api, text, "?mode=apply") as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    # Cat is a team of one with no sibling: Platform > Core -> Platform > General -> General >
    # General. She is the only person listed from Cursor's Platform, so Platform takes that name.
    assert [m["team"] for m in body["merged"]] == ["Platform > Core", "Platform > General"]
    applied = body["applied"]
    assert [(g["name"], g["members"]) for g in applied["created_groups"]] == [("Design > UX", 3)]
    assert [(r["group_id"], r["to_name"]) for r in applied["renamed_groups"]] == [
        (G1, "General > General")
    ]
    assert applied["moved"] == ["c@x.com", "d@x.com", "e@x.com", "f@x.com"]
    got = by_name(await groups(api))
    assert set(got) == {"Design > UX", "General > General", "Web"}
    assert [e for e, _ in members_of(got["Design > UX"])] == ["d@x.com", "e@x.com", "f@x.com"]
    assert members_of(got["General > General"]) == [
        ("b@x.com", "provider"),
        ("a@x.com", "provider"),
        ("c@x.com", "override"),
    ]
    assert members_of(got["Web"]) == []
    assert await pool.fetchval("SELECT count(*) FROM local_groups") == 1


@pytest.mark.parametrize(
    ("body", "query", "status", "detail"),
    [
        (HIBOB, "?mode=apply&accept=ghost@x.com", 422, "ghost@x.com"),
        (HIBOB, "?mode=apply&accept=a@x.com&reject=b@x.com", 400, "not both"),
        (HIBOB, "?accept=a@x.com", 400, "mode=apply"),
        (HIBOB, "?mode=merge", 400, "mode"),
        (HIBOB, "?mode=apply&plan_id=xyz", 400, "plan_id"),
        (HIBOB, "?mode=apply&accept=a b@x.com", 400, "accept"),
        ("name,team\nAnn,Core\n", "", 422, "Email column"),
        ("", "", 422, "empty"),
        (b"email,group\n\xff@x.com,Web\n", "", 400, "UTF-8"),
    ],
)
async def test_bad_imports_are_refused_and_write_nothing(
    api: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    body: str | bytes,
    query: str,
    status: int,
    detail: str,
) -> None:
    async with await post_csv(api, body, query) as resp:
        assert resp.status == status
        assert detail in (await resp.json())["detail"]
    assert await pool.fetchval("SELECT count(*) FROM group_overrides") == 0


async def test_export_then_import_is_a_no_op(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    async with await patch(
        api,
        {"action": "create", "name": "Eng, Mobile"},
        {"action": "assign", "email": "d@x.com", "group_name": "Eng, Mobile"},
        {"action": "rename", "group_id": G1, "name": "Platform > Core"},
    ) as resp:
        local = (await resp.json())["results"][0]["group_id"]
    async with api.get("/api/groups/export", headers=ADMIN) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        assert resp.headers["Content-Disposition"].startswith(
            'attachment; filename="group-mapping-'
        )
        text = await resp.text()
    assert list(csv.reader(io.StringIO(text))) == [
        ["email", "name", "group", "group_id"],
        ["d@x.com", "Dan", "Eng, Mobile", local],
        ["a@x.com", "Ann", "Platform > Core", G1],
        ["b@x.com", "Bob", "Platform > Core", G1],
        ["c@x.com", "Cat", "Platform > Core", G1],
        ["c@x.com", "Cat", "Web", G2],
        ["e@x.com", "Eve", "Web", G2],
    ]
    async with await post_csv(api, text) as resp:
        plan = await resp.json()
    assert (plan["format"], plan["changes"], plan["keeps"], plan["unknown"]) == (
        "backup",
        [],
        5,
        [],
    )
    async with await post_csv(api, text, "?mode=apply") as resp:
        assert (await resp.json())["applied"] == {
            "moved": [],
            "created_groups": [],
            "renamed_groups": [],
        }
    assert await pool.fetchval("SELECT count(*) FROM group_overrides") == 1

    # Edited in a spreadsheet: Eve to the local group by name, the id column left empty.
    edited = text.replace(f"e@x.com,Eve,Web,{G2}", 'e@x.com,Eve,"Eng, Mobile",')
    async with await post_csv(api, edited, "?mode=apply") as resp:
        assert (await resp.json())["applied"]["moved"] == ["e@x.com"]
    got = by_name(await groups(api))
    assert members_of(got["Eng, Mobile"]) == [("d@x.com", "override"), ("e@x.com", "override")]


async def test_the_openapi_document_declares_the_group_routes(api: aiohttp.ClientSession) -> None:
    async with api.get("/api/openapi.json") as resp:
        doc = await resp.json()
    paths = doc["paths"]
    assert {"get", "patch"} <= set(paths["/api/groups"])
    assert "text/csv" in paths["/api/groups/import"]["post"]["requestBody"]["content"]
    assert "text/csv" in paths["/api/groups/export"]["get"]["responses"]["200"]["content"]
    assert {p["name"] for p in paths["/api/groups/import"]["post"]["parameters"]} == {
        "mode",
        "plan_id",
        "accept",
        "reject",
    }
    assert {"get", "put"} <= set(paths["/api/settings"])
