"""The application without servers: routes, problem+json, request ids, metrics, Slack refusals.

The pool points at a closed port and NATS never connects; neither is touched by these routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from nats.aio.client import Client as NatsClient

from spendwatch.api.keys import DB, NATS, SLACK_VERIFIER
from spendwatch.api.main import create_app
from spendwatch.api.settings import ApiSettings
from tests.unit.api.payloads import SECRET, block_actions, form_body, signed_headers

PROBLEM = "application/problem+json"
ADMIN_TOKEN = "test-admin-token"
Client = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client() -> AsyncIterator[Client]:
    pool = await asyncpg.create_pool("postgresql://127.0.0.1:1/none", min_size=0)
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(
        secret: str | None = SECRET, extra: Callable[[web.Application], None] | None = None
    ) -> TestClient[web.Request, web.Application]:
        settings = ApiSettings.model_validate(
            {"SLACK_SIGNING_SECRET": secret, "API_ADMIN_TOKEN": ADMIN_TOKEN}
        )
        app = create_app(settings, db=pool, nc=NatsClient())
        if extra:
            extra(app)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    await pool.close()


def test_building_the_app_connects_to_nothing() -> None:
    app = create_app(ApiSettings.model_validate({"DATABASE_URL": "postgresql://127.0.0.1:1/x"}))
    assert DB not in app
    assert NATS not in app  # both are opened when the app starts
    assert app[SLACK_VERIFIER] is None


async def test_healthz_is_open_and_answers(make_client: Client) -> None:
    client = await make_client()
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_unknown_paths_and_methods_are_problems(make_client: Client) -> None:
    client = await make_client()
    response = await client.get("/nope")
    assert (response.status, response.content_type) == (404, PROBLEM)
    assert await response.json() == {"type": "about:blank", "title": "Not Found", "status": 404}
    response = await client.get("/api/slack/interactions")
    assert (response.status, response.content_type) == (405, PROBLEM)
    assert response.headers["Allow"] == "POST"


async def test_an_unexpected_error_is_a_500_problem_with_the_request_id(
    make_client: Client,
) -> None:
    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("internal detail that must not leak")

    client = await make_client(extra=lambda app: app.router.add_get("/boom", boom))
    response = await client.get(
        "/boom", headers={"X-Request-Id": "req-123", "Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert (response.status, response.content_type) == (500, PROBLEM)
    body = await response.json()
    assert body["request_id"] == "req-123"
    assert "internal detail" not in await response.text()
    assert (await client.get("/healthz")).status == 200  # still serving


async def test_request_ids_are_echoed_or_made(make_client: Client) -> None:
    client = await make_client()
    response = await client.get("/healthz", headers={"X-Request-Id": "abc-1"})
    assert response.headers["X-Request-Id"] == "abc-1"
    response = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    made = response.headers["X-Request-Id"]
    assert made != "bad id\twith spaces"
    assert len(made) == 32
    response = await client.get("/nope")
    assert len(response.headers["X-Request-Id"]) == 32  # errors carry one too


async def test_metrics_has_latency_by_route_and_status(make_client: Client) -> None:
    client = await make_client()
    await client.get("/healthz")
    await client.get("/no/such/thing")
    text = await (await client.get("/metrics")).text()
    assert (
        'spendwatch_api_request_duration_seconds_count{method="GET",route="/healthz",status="200"}'
        in text
    )
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/thing" not in text  # unmatched paths do not become labels


async def test_slack_without_a_signing_secret_is_not_configured(make_client: Client) -> None:
    client = await make_client(secret=None)
    body = form_body(block_actions("incident.acknowledge", value="inc-1"))
    response = await client.post("/api/slack/interactions", data=body, headers=signed_headers(body))
    assert (response.status, response.content_type) == (503, PROBLEM)
    assert (await response.json())["title"] == "Slack interactivity not configured"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "1700000000"},
        {"X-Slack-Request-Timestamp": "nonsense", "X-Slack-Signature": "v0=00"},
    ],
)
async def test_unsigned_requests_are_401_problems(
    make_client: Client, headers: dict[str, str]
) -> None:
    client = await make_client()
    body = form_body(block_actions("incident.acknowledge", value="inc-1"))
    response = await client.post("/api/slack/interactions", data=body, headers=headers)
    assert (response.status, response.content_type) == (401, PROBLEM)
    assert (await response.json())["title"] == "Invalid Slack signature"


@pytest.mark.parametrize(
    "body",
    [b"", b"payload=%7B", form_body("[]"), form_body({"type": "block_actions"}), b"\xff" * 64],
)
async def test_signed_but_malformed_payloads_are_400_problems(
    make_client: Client, body: bytes
) -> None:
    client = await make_client()
    response = await client.post("/api/slack/interactions", data=body, headers=signed_headers(body))
    assert (response.status, response.content_type) == (400, PROBLEM)
    problem = await response.json()
    assert problem["title"] == "Malformed Slack payload"
    assert problem["status"] == 400
    assert problem["detail"]


async def test_unknown_actions_get_an_ephemeral_unsupported_action(make_client: Client) -> None:
    client = await make_client()
    body = form_body(block_actions("incident.delete", value="inc-1"))
    response = await client.post("/api/slack/interactions", data=body, headers=signed_headers(body))
    assert response.status == 200
    reply = await response.json()
    assert reply["response_type"] == "ephemeral"
    assert reply["replace_original"] is False
    assert "unsupported action" in reply["text"]


async def test_a_bad_snooze_value_gets_an_ephemeral_error(make_client: Client) -> None:
    client = await make_client()
    body = form_body(block_actions("incident.snooze", selected="inc-1|forever"))
    response = await client.post("/api/slack/interactions", data=body, headers=signed_headers(body))
    assert response.status == 200
    reply = await response.json()
    assert reply["response_type"] == "ephemeral"
    assert "nothing changed" in reply["text"]


async def test_an_oversized_body_is_a_413_problem(make_client: Client) -> None:
    client = await make_client()
    body = b"payload=" + b"x" * (1024**2 + 1)
    response = await client.post("/api/slack/interactions", data=body, headers=signed_headers(body))
    assert (response.status, response.content_type) == (413, PROBLEM)


async def test_a_database_outage_in_a_handler_is_a_503_with_retry_after(
    make_client: Client,
) -> None:
    client = await make_client()  # the pool points at a closed port
    response = await client.get(
        "/api/incidents", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert (response.status, response.content_type) == (503, PROBLEM)
    assert response.headers["Retry-After"] == "5"
    body = await response.json()
    assert body["title"] == "Service Unavailable"
    assert "database" in body["detail"]


async def test_the_openapi_document_is_served_without_a_token(make_client: Client) -> None:
    client = await make_client()
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert "/api/incidents" in document["paths"]


async def test_a_cancelled_slow_query_is_a_503_not_a_500(make_client: Client) -> None:
    async def slow(_: web.Request) -> web.Response:
        raise asyncpg.QueryCanceledError("canceling statement due to statement timeout")

    client = await make_client(extra=lambda app: app.router.add_get("/slow", slow))
    response = await client.get("/slow", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert (response.status, response.content_type) == (503, PROBLEM)
    assert response.headers["Retry-After"] == "5"
    assert "statement" not in await response.text()  # no internals leak
