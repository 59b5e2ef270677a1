"""`GET /api/anomalies` over real PostgreSQL: the team-timezone window, filters, the incident
each anomaly went into, keyset pagination, auth and validation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from tests.integration.test_api_incidents import PROBLEM, add_incident, add_token, bearer
from tests.integration.test_api_stats import AUTH, TZ, api, get, today_in
from tests.integration.test_api_users import add_anomaly

pytestmark = pytest.mark.timeout(60)

__all__ = ["api"]  # the fixture


def midnight(days_ago: int) -> datetime:
    """Local midnight in TZ, `days_ago` days before today."""
    day = today_in(TZ) - timedelta(days=days_ago)
    return datetime.combine(day, time(), tzinfo=ZoneInfo(TZ))


async def test_the_window_starts_at_local_midnight(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    # days=2: yesterday and today in Berlin, i.e. from yesterday's local midnight
    inside = await add_anomaly(pool, "a@x.com", midnight(1))
    outside = await add_anomaly(pool, "a@x.com", midnight(1) - timedelta(seconds=1))

    body = await get(api, "/api/anomalies", days="2")

    assert [a["anomaly_id"] for a in body["items"]] == [inside]
    assert datetime.fromisoformat(body["since"]) == midnight(1).astimezone(UTC)
    assert body["timezone"] == TZ
    wider = await get(api, "/api/anomalies", days="3")
    assert [a["anomaly_id"] for a in wider["items"]] == [inside, outside]


async def test_filters_and_the_incident_of_each_anomaly(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    now = datetime.now(UTC)
    spike = await add_anomaly(pool, "a@x.com", now - timedelta(minutes=3))
    runaway = await add_anomaly(pool, "b@x.com", now - timedelta(minutes=2), detector="runaway")
    cleared = await add_anomaly(pool, "b@x.com", now - timedelta(minutes=1), detector="runaway")
    await pool.execute(
        "UPDATE anomalies SET kind = 'cleared', severity = 'info' WHERE anomaly_id = $1",
        uuid.UUID(cleared),
    )
    incident = await add_incident(pool, detected_at=now, state="acknowledged")
    await pool.execute(
        "INSERT INTO incident_anomalies (anomaly_id, incident_id, kind)"
        " VALUES ($1, $2, 'detected')",
        uuid.UUID(runaway),
        uuid.UUID(incident),
    )

    async def ids(**params: str) -> list[str]:
        return [a["anomaly_id"] for a in (await get(api, "/api/anomalies", **params))["items"]]

    assert await ids() == [cleared, runaway, spike]
    assert await ids(detector="runaway") == [cleared, runaway]
    assert await ids(subject="B@x.com") == [cleared, runaway]  # subjects are lower-case
    assert await ids(severity="warning") == [runaway, spike]
    assert await ids(kind="cleared") == [cleared]
    assert await ids(detector="runaway", kind="detected") == [runaway]
    items = {a["anomaly_id"]: a for a in (await get(api, "/api/anomalies"))["items"]}
    assert (items[runaway]["incident_id"], items[runaway]["incident_state"]) == (
        incident,
        "acknowledged",
    )
    assert (items[spike]["incident_id"], items[spike]["incident_state"]) == (None, None)
    assert items[spike]["message"] == "spend spiked"
    assert (items[spike]["value"], items[spike]["threshold"], items[spike]["unit"]) == (
        "214.5",
        "50",
        "usd",
    )


async def test_pages_follow_each_other_without_gaps_or_repeats(
    api: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    now = datetime.now(UTC)
    ids = [await add_anomaly(pool, "a@x.com", now - timedelta(minutes=i)) for i in range(5)]
    # two at the same instant: the anomaly id breaks the tie
    same = [await add_anomaly(pool, "a@x.com", now + timedelta(minutes=1)) for _ in range(2)]
    expected = [*sorted(same, reverse=True), *ids]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = await get(api, "/api/anomalies", **params)
        seen += [a["anomaly_id"] for a in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (expected, 3)


async def test_anomalies_need_a_token(api: aiohttp.ClientSession, pool: asyncpg.Pool) -> None:
    async with api.get("/api/anomalies") as resp:
        assert (resp.status, resp.content_type) == (401, PROBLEM)
    reader = await add_token(pool, "reader", admin=False)
    async with api.get("/api/anomalies", headers=bearer(reader)) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"days": "0"}, "days"),
        ({"severity": "major"}, "severity"),
        ({"kind": "open"}, "kind"),
        ({"limit": "201"}, "limit"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"state": "open"}, "state"),
        ({"detector": "spend\x00spike"}, "detector"),  # text PostgreSQL cannot hold
        ({"subject": ""}, "subject"),
    ],
)
async def test_invalid_parameters_are_400(
    api: aiohttp.ClientSession, params: dict[str, str], detail: str
) -> None:
    async with api.get("/api/anomalies", params=params, headers=AUTH) as resp:
        assert (resp.status, resp.content_type) == (400, PROBLEM)
        assert detail in (await resp.json())["detail"]
