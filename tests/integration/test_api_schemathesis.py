"""Schemathesis against the running API: generated requests from /api/openapi.json, no 500s.

The API and the incidents service run as their real processes on a seeded database, so the
commands behind ack/resolve/snooze get real answers. The run fails on any 5xx other than the
documented 503/504 of a missing dependency, on an answer that does not match its documented
schema, status or content type, and on an invalid request that is accepted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx
import pytest

from spendwatch.common.localstack import free_port
from tests.integration.sinkkit import wait_for
from tests.integration.test_grafana import seed
from tests.processes import Service

pytestmark = pytest.mark.timeout(600)
ADMIN_TOKEN = "schemathesis-admin-token"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def api(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "METRICS_PORT": "0",
        "API_LISTEN": f"127.0.0.1:{port}",
        "API_ADMIN_TOKEN": ADMIN_TOKEN,
        "SLACK_SIGNING_SECRET": "schemathesis-signing-secret",
        "INCIDENT_COMMAND_TIMEOUT_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }
    logs = tmp_path_factory.mktemp("logs")
    with ExitStack() as stop:
        for name in ("incidents", "api"):
            stop.enter_context(Service(name, env, logs / f"{name}.log"))
        yield f"http://127.0.0.1:{port}"


async def test_generated_requests_find_no_server_error(api: str, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await seed(conn)

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{api}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(ready, timeout=30)
    result = subprocess.run(  # noqa: ASYNC221 - the API runs in its own process
        [
            str(SCHEMATHESIS),
            "run",
            f"{api}/api/openapi.json",
            f"--checks={','.join(CHECKS)}",
            f"--header=Authorization: Bearer {ADMIN_TOKEN}",
            "--max-examples=25",
            "--phases=examples,coverage,fuzzing",
            "--workers=1",
            "--seed=1",
            "--suppress-health-check=all",
            "--request-timeout=10",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=480,
    )
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
