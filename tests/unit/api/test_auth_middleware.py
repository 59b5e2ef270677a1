"""The auth middleware in the app: open paths, 401/403 problems, API_ADMIN_TOKEN without a DB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from nats.aio.client import Client as NatsClient
from structlog.testing import capture_logs

from spendwatch.api.main import create_app
from spendwatch.api.models.incidents import IncidentOut
from spendwatch.api.settings import ApiSettings
from spendwatch.common.events.incident import Incident

PROBLEM = "application/problem+json"
ADMIN_TOKEN = "unit-admin-token"
Client = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client() -> AsyncIterator[Client]:
    # Nothing listens here: a token that needs a lookup meets an unreachable database.
    pool = await asyncpg.create_pool("postgresql://127.0.0.1:1/none", min_size=0)
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(**env: str) -> TestClient[web.Request, web.Application]:
        settings = ApiSettings.model_validate({"API_ADMIN_TOKEN": ADMIN_TOKEN, **env})
        app = create_app(settings, db=pool, nc=NatsClient())
        app.router.add_get("/api/echo", _echo)
        app.router.add_post("/api/echo", _echo)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    await pool.close()


async def _echo(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def test_open_paths_need_no_token(make_client: Client) -> None:
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 200
    # Slack's endpoint is reached (and answers for itself: not configured here).
    assert (await client.post("/api/slack/interactions")).status == 503


async def test_missing_and_bad_tokens_are_401_problems_with_a_challenge(
    make_client: Client,
) -> None:
    client = await make_client()
    response = await client.get("/api/echo")
    assert (response.status, response.content_type) == (401, PROBLEM)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = await response.json()
    assert body["status"] == 401
    response = await client.get("/api/echo", headers={"Authorization": "Basic eDp5"})
    assert response.status == 401


async def test_the_admin_token_setting_reads_and_writes(make_client: Client) -> None:
    client = await make_client()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (await client.get("/api/echo", headers=headers)).status == 200
    assert (await client.post("/api/echo", headers=headers)).status == 200


async def test_an_unreachable_database_is_503_not_a_crash(make_client: Client) -> None:
    client = await make_client()
    response = await client.get("/api/echo", headers={"Authorization": "Bearer sw_someone"})
    assert (response.status, response.content_type) == (503, PROBLEM)


async def test_auth_off_is_open_and_warned_about(make_client: Client) -> None:
    with capture_logs() as logs:
        client = await make_client(API_AUTH="off")
    assert any(entry["event"] == "api.auth_disabled" for entry in logs)
    assert (await client.get("/api/echo")).status == 200
    assert (await client.post("/api/echo")).status == 200


async def test_tokens_never_reach_the_logs(make_client: Client) -> None:
    client = await make_client()
    with capture_logs() as logs:
        await client.get("/api/echo", headers={"Authorization": "Bearer sw_secret-value"})
        await client.get("/api/echo", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert logs
    assert "secret-value" not in repr(logs)
    assert ADMIN_TOKEN not in repr(logs)


def test_an_incident_from_a_command_reply_becomes_the_response_model() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    incident = Incident(
        incident_id="i-1",
        fingerprint="f",
        detector="budget",
        subject="team",
        state="acknowledged",
        severity="critical",
        message="m",
        value=Decimal("1.5"),
        detected_at=at,
        acknowledged_at=at,
        acknowledged_by="api:ops",
    )
    out = IncidentOut.model_validate(incident.model_dump())
    assert out.acknowledged_by == "api:ops"
    assert '"value":"1.5"' in out.model_dump_json()
