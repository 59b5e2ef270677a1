"""The API over real NATS and PostgreSQL: Slack clicks become incident commands, readiness.

A tiny responder on `incidents.commands.v1.*` stands in for the incidents service. Requests
are signed the way Slack signs them (tests/unit/api/payloads.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import nats
import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from spendwatch.api.main import create_app
from spendwatch.api.settings import ApiSettings
from spendwatch.common.db import create_pool
from spendwatch.common.events import IncidentCommandReplyV1, IncidentCommandV1
from spendwatch.common.localstack import free_port
from spendwatch.common.messaging import subjects
from tests.unit.api.payloads import SECRET, block_actions, form_body, signed_headers

pytestmark = pytest.mark.timeout(60)

INTERACTIONS = "/api/slack/interactions"
PROBLEM = "application/problem+json"
SLACK_LIMIT_SECONDS = 3.0


@dataclass
class Responder:
    """Answers incident commands like the incidents service would, and records them."""

    mode: Literal["ok", "not_found", "invalid_transition", "garbage", "silent"] = "ok"
    received: list[tuple[str, IncidentCommandV1]] = field(default_factory=list)

    async def handle(self, msg: Msg) -> None:
        command = IncidentCommandV1.model_validate_json(msg.data)
        self.received.append((msg.subject, command))
        if self.mode == "silent":
            return
        if self.mode == "garbage":
            await msg.respond(b"<html>502</html>")
            return
        if self.mode == "ok":
            reply = IncidentCommandReplyV1(ok=True, changed=True)
        elif self.mode == "not_found":
            reply = IncidentCommandReplyV1(
                ok=False, code="not_found", error=f"no incident {command.incident_id}"
            )
        else:
            reply = IncidentCommandReplyV1(ok=False, code="invalid_transition")
        await msg.respond(reply.model_dump_json().encode())


@pytest.fixture
async def responder(nc: NatsClient) -> AsyncIterator[Responder]:
    responder = Responder()
    sub = await nc.subscribe(subjects.INCIDENT_COMMANDS_ALL, cb=responder.handle)
    await subscriptions_live(nc)
    yield responder
    await sub.unsubscribe()


async def subscriptions_live(nc: NatsClient) -> None:
    """Return once the server has every subscription `nc` made so far.

    nats-py's `flush()` writes its PING straight to the socket, ahead of commands still queued
    for the flusher task, so its PONG does not prove a SUB arrived (under load the API's request
    then meets "no responders"). A request on the same connection is queued behind the SUBs.
    """

    async def echo(msg: Msg) -> None:
        await msg.respond(b"")

    probe = await nc.subscribe(nc.new_inbox(), cb=echo)
    try:
        await nc.request(probe.subject, b"", timeout=5)
    finally:
        await probe.unsubscribe()


def settings_for(database_url: str, nats_url: str, **extra: Any) -> ApiSettings:
    return ApiSettings.model_validate(
        {
            "DATABASE_URL": database_url,
            "NATS_URL": nats_url,
            "SLACK_SIGNING_SECRET": SECRET,
            **extra,
        }
    )


@asynccontextmanager
async def running_api(
    settings: ApiSettings, *, db: asyncpg.Pool | None = None, nc: NatsClient | None = None
) -> AsyncIterator[aiohttp.ClientSession]:
    """The app on a free port (its own pool and NATS connection unless given); a client for it."""
    runner = web.AppRunner(create_app(settings, db=db, nc=nc), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(database_url: str, nats_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with running_api(settings_for(database_url, nats_url)) as http:
        yield http


async def click(
    http: aiohttp.ClientSession, payload: dict[str, Any], **sign: Any
) -> tuple[int, bytes, float]:
    """Post a signed interaction; (status, body, seconds it took)."""
    body = form_body(payload)
    started = time.monotonic()
    async with http.post(INTERACTIONS, data=body, headers=signed_headers(body, **sign)) as resp:
        return resp.status, await resp.read(), time.monotonic() - started


@pytest.mark.parametrize(
    ("payload", "subject", "minutes"),
    [
        (block_actions("incident.acknowledge", value="inc-7"), "acknowledge", None),
        (block_actions("incident.resolve", value="inc-7"), "resolve", None),
        (block_actions("incident.snooze", selected="inc-7|240"), "snooze", 240),
    ],
)
async def test_a_click_sends_the_command_and_answers_an_empty_200(
    api: aiohttp.ClientSession,
    responder: Responder,
    payload: dict[str, Any],
    subject: str,
    minutes: int | None,
) -> None:
    status, body, took = await click(api, payload)
    assert (status, body) == (200, b"")
    assert took < SLACK_LIMIT_SECONDS
    [(received_on, command)] = responder.received
    assert received_on == subjects.incident_command(subject)
    assert (command.action, command.incident_id, command.actor) == (subject, "inc-7", "slack:alice")
    assert command.snooze_minutes == minutes


async def test_an_unknown_incident_gets_an_ephemeral_error(
    api: aiohttp.ClientSession, responder: Responder
) -> None:
    responder.mode = "not_found"
    status, body, took = await click(api, block_actions("incident.acknowledge", value="inc-404"))
    assert status == 200
    assert took < SLACK_LIMIT_SECONDS
    reply = json.loads(body)
    assert reply["response_type"] == "ephemeral"
    assert reply["replace_original"] is False
    assert reply["text"] == "Could not acknowledge incident inc-404: no incident inc-404."
    assert len(responder.received) == 1


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        ("invalid_transition", "Could not resolve incident inc-1: that is not possible in its "),
        ("garbage", "Could not resolve incident inc-1: the incidents service sent an answer "),
    ],
)
async def test_refusals_and_unreadable_answers_get_an_ephemeral_error(
    api: aiohttp.ClientSession, responder: Responder, mode: Any, text: str
) -> None:
    responder.mode = mode
    status, body, _ = await click(api, block_actions("incident.resolve", value="inc-1"))
    assert status == 200
    reply = json.loads(body)
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(text)


async def test_no_incidents_service_gets_an_ephemeral_error_at_once(
    api: aiohttp.ClientSession, nc: NatsClient
) -> None:
    status, body, took = await click(api, block_actions("incident.resolve", value="inc-1"))
    assert status == 200
    assert took < SLACK_LIMIT_SECONDS
    reply = json.loads(body)
    assert reply["response_type"] == "ephemeral"
    assert "not running" in reply["text"]


async def test_a_silent_incidents_service_times_out_within_slacks_limit(
    api: aiohttp.ClientSession, responder: Responder
) -> None:
    responder.mode = "silent"
    status, body, took = await click(api, block_actions("incident.snooze", selected="inc-1|60"))
    assert status == 200
    assert 2.0 <= took < SLACK_LIMIT_SECONDS  # INCIDENT_COMMAND_TIMEOUT_SECONDS defaults to 2
    reply = json.loads(body)
    assert reply["response_type"] == "ephemeral"
    assert "did not answer within 2 s" in reply["text"]
    assert len(responder.received) == 1


async def test_bad_stale_tampered_and_replayed_signatures_are_401(
    api: aiohttp.ClientSession, responder: Responder
) -> None:
    payload = block_actions("incident.acknowledge", value="inc-1")
    now = int(time.time())
    # Well past the 5-minute window either way: a slow machine must not bring +301 s back in.
    for sign in ({"secret": "wrong"}, {"timestamp": now - 400}, {"timestamp": now + 400}):
        status, body, _ = await click(api, payload, **sign)
        assert status == 401, sign
        assert json.loads(body)["title"] == "Invalid Slack signature"

    body = form_body(payload)
    headers = signed_headers(body)
    tampered = form_body(block_actions("incident.resolve", value="inc-1"))
    async with api.post(INTERACTIONS, data=tampered, headers=headers) as resp:
        assert (resp.status, resp.content_type) == (401, PROBLEM)
    async with api.post(INTERACTIONS, data=body, headers=headers) as resp:
        assert resp.status == 200
    async with api.post(INTERACTIONS, data=body, headers=headers) as resp:  # replayed
        assert (resp.status, resp.content_type) == (401, PROBLEM)
        assert (await resp.json())["detail"] == "This request was already received."
    assert len(responder.received) == 1  # only the genuine click reached the incidents service


async def test_garbage_never_crashes_the_server(
    api: aiohttp.ClientSession, responder: Responder
) -> None:
    bodies = [b"\x00\xff" * 100, b"payload=" + b"%" * 500, b"a=" * 5000, form_body("null")]
    for body in bodies:
        async with api.post(INTERACTIONS, data=body) as resp:
            assert resp.status == 401
        async with api.post(INTERACTIONS, data=body, headers=signed_headers(body)) as resp:
            assert (resp.status, resp.content_type) == (400, PROBLEM)
    status, _, _ = await click(api, block_actions("incident.acknowledge", value="inc-1"))
    assert status == 200
    assert responder.received[-1][1].incident_id == "inc-1"


async def test_readyz_is_200_when_database_and_nats_answer(api: aiohttp.ClientSession) -> None:
    async with api.get("/readyz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok", "checks": {"database": "ok", "nats": "ok"}}


async def test_a_given_pool_and_connection_are_left_open(
    database_url: str, nats_url: str, nc: NatsClient
) -> None:
    pool = await create_pool(database_url, max_size=2)
    try:
        settings = settings_for(database_url, nats_url)
        async with running_api(settings, db=pool, nc=nc) as http, http.get("/readyz") as resp:
            assert resp.status == 200
        assert await pool.fetchval("SELECT 1") == 1
        assert nc.is_connected
    finally:
        await pool.close()


async def test_readyz_is_503_when_the_pool_is_closed(database_url: str, nats_url: str) -> None:
    pool = await create_pool(database_url, max_size=2)
    await pool.close()
    async with (
        running_api(settings_for(database_url, nats_url), db=pool) as http,
        http.get("/readyz") as resp,
    ):
        assert (resp.status, resp.content_type) == (503, PROBLEM)
        problem = await resp.json()
        assert problem["detail"] == "database is unreachable"
        assert problem["checks"] == {"database": "down", "nats": "ok"}
        async with http.get("/healthz") as health:
            assert health.status == 200  # up, just not ready


async def test_readyz_is_503_when_postgresql_is_not_listening(nats_url: str) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/spendwatch"
    started = time.monotonic()
    async with running_api(settings_for(closed, nats_url)) as http, http.get("/readyz") as resp:
        assert resp.status == 503
        assert (await resp.json())["checks"]["database"] == "down"
    assert time.monotonic() - started < 10  # the API starts without its database


async def test_nats_down_is_not_ready_and_a_click_says_so(database_url: str, nats_url: str) -> None:
    client = await nats.connect(nats_url)
    await client.close()
    async with running_api(settings_for(database_url, nats_url), nc=client) as http:
        async with http.get("/readyz") as resp:
            assert resp.status == 503
            problem = await resp.json()
            assert problem["detail"] == "NATS is unreachable"
            assert problem["checks"] == {"database": "ok", "nats": "down"}
        status, body, _ = await click(http, block_actions("incident.acknowledge", value="inc-1"))
        assert status == 200
        assert "cannot reach its message bus" in json.loads(body)["text"]


def with_password(url: str, password: str) -> tuple[str, str]:
    """`url` with a password (PostgreSQL's trust auth ignores it), and the password in it."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), password


async def test_python_m_serves_on_api_listen_and_stops_cleanly(
    database_url: str, nats_url: str, responder: Responder, tmp_path: Any
) -> None:
    port = free_port()
    dsn, db_password = with_password(database_url, "db-pass-never-logged")
    admin_token = "admin-token-never-logged"
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": dsn,
        "NATS_URL": nats_url,
        "API_LISTEN": f"127.0.0.1:{port}",
        "SLACK_SIGNING_SECRET": SECRET,
        "API_ADMIN_TOKEN": admin_token,
        "LOG_LEVEL": "DEBUG",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "spendwatch.api",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    ready = asyncio.Event()

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            lines.append(line)
            if b"service.ready" in line:
                ready.set()

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait_for(ready.wait(), 20)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.get("/readyz") as resp:
                assert resp.status == 200
            status, body, _ = await click(http, block_actions("incident.resolve", value="inc-9"))
            assert (status, body) == (200, b"")
            status, _, _ = await click(http, block_actions("incident.resolve"), secret="nope")
            assert status == 401
            async with http.get("/metrics") as resp:
                assert 'route="/api/slack/interactions",status="200"' in await resp.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0  # a clean stop on SIGTERM
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await reader
    output = b"".join(lines).decode()
    assert "service.stopping" in output
    assert '"request_id"' in output  # the access log, with request ids
    assert [c.actor for _, c in responder.received] == ["slack:alice"]
    for secret in (SECRET, admin_token, db_password):
        assert secret not in output
