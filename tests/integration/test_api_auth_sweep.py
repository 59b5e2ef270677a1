"""Auth on every operation of the OpenAPI document, so a new endpoint cannot forget it.

Without a token every non-public operation is a 401; a read token may read but gets 403 on
every write; the admin token gets past auth everywhere. The operations come from the served
document, which a unit test holds equal to the router.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.integration.test_api_incidents import ADMIN_TOKEN, add_token, bearer, settings_for
from tests.integration.test_api_slack import running_api

pytestmark = pytest.mark.timeout(60)
WRITES = frozenset({"post", "put", "patch", "delete"})
PATH_VALUES = {
    "incident_id": "6f1c7a52-1c7e-4c61-9a43-2a0d4a1b9f00",
    "email": "alice@example.com",
}


@pytest.fixture
async def api(
    database_url: str, nats_url: str, pool: asyncpg.Pool
) -> AsyncIterator[aiohttp.ClientSession]:
    settings = settings_for(database_url, nats_url, INCIDENT_COMMAND_TIMEOUT_SECONDS=0.2)
    async with running_api(settings, db=pool) as http:
        yield http


async def operations(http: aiohttp.ClientSession) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, concrete path, operation) of every documented operation."""
    async with http.get("/api/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    found = []
    for template, ops in document["paths"].items():
        path = template.format(**PATH_VALUES)
        found += [(method, path, op) for method, op in ops.items()]
    return found


async def status_of(
    http: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str]
) -> int:
    async with http.request(method.upper(), path, headers=headers, data=b"") as response:
        await response.read()
        return response.status


async def test_every_operation_is_guarded(api: aiohttp.ClientSession, pool: asyncpg.Pool) -> None:
    reader = await add_token(pool, "reader", admin=False)
    ops = await operations(api)
    guarded = [(m, p) for m, p, op in ops if op.get("security") != []]
    public = [(m, p) for m, p, op in ops if op.get("security") == []]
    assert len(guarded) >= 19
    assert {p for _, p in public} >= {"/healthz", "/readyz", "/metrics", "/api/openapi.json"}

    for method, path in guarded:
        status = await status_of(api, method, path, {})
        assert status == 401, f"{method.upper()} {path} without a token: {status}"

    for method, path in guarded:
        status = await status_of(api, method, path, bearer(reader))
        if method in WRITES:
            assert status == 403, f"{method.upper()} {path} with a read token: {status}"
        else:
            assert status not in (401, 403), f"{method.upper()} {path} with a read token: {status}"

    for method, path in guarded:
        status = await status_of(api, method, path, bearer(ADMIN_TOKEN))
        assert status not in (401, 403), f"{method.upper()} {path} as admin: {status}"
        assert status < 500 or status in (503, 504), f"{method.upper()} {path} as admin: {status}"

    for method, path in public:
        if path == "/api/slack/interactions":
            continue  # needs no token, but Slack's signature (its own tests cover that)
        status = await status_of(api, method, path, {})
        assert status not in (401, 403), f"{method.upper()} {path} is public: {status}"
