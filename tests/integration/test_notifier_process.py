"""`python -m spendwatch.notifier` as its own process: starts, posts, serves /healthz and
/metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import aiohttp
import asyncpg
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from spendwatch.common.localstack import free_port
from tests.fakes.slack import FakeSlack
from tests.integration.test_notifier import incidents_service, publish, until
from tests.unit.notifier.builders import event, incident, store_incident

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def notifier_process(
    database_url: str,
    nats_url: str,
    nc: NatsClient,
    fake_slack: FakeSlack,
    metrics_port: int,
) -> Iterator[subprocess.Popen[bytes]]:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "LOG_LEVEL": "INFO",
        "METRICS_PORT": str(metrics_port),
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_CHANNEL_ID": fake_slack.channel,
        "SLACK_API_BASE_URL": fake_slack.url,
        "RESEND_API_KEY": "",
        "SMTP_URL": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "spendwatch.notifier"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


async def test_the_notifier_process_posts_reports_health_and_stops_cleanly(
    pool: asyncpg.Pool,
    nc: NatsClient,
    js: JetStreamContext,
    fake_slack: FakeSlack,
    notifier_process: subprocess.Popen[bytes],
    metrics_port: int,
) -> None:
    assert notifier_process.stdout is not None
    output = notifier_process.stdout
    lines: list[bytes] = []
    deadline = time.monotonic() + 30
    while not any(b"service.ready" in line for line in lines):
        line = await asyncio.to_thread(output.readline)
        assert line, b"".join(lines).decode()
        lines.append(line)
        assert time.monotonic() < deadline, "the notifier did not start"
    started = b"".join(lines)
    assert b"notifier.channel_on" in started
    assert b"notifier.channel_off" in started  # email is not configured: said once
    assert fake_slack.token.encode() not in started  # the secret is never logged
    inc = incident()
    await store_incident(pool, inc)
    async with incidents_service(nc) as commands, aiohttp.ClientSession() as http:
        await publish(js, event("opened", inc))
        await until(fake_slack.top_level, what="the root message")
        await until(lambda: commands, what="the alerted command")
        async with http.get(f"http://127.0.0.1:{metrics_port}/healthz") as response:
            assert response.status == 200
        async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            body = await response.text()
    assert 'spendwatch_notifier_deliveries_total{channel="slack",kind="root"} 1.0' in body
    assert "spendwatch_notifier_alert_latency_seconds_count 1.0" in body
    notifier_process.terminate()
    rest = await asyncio.to_thread(output.read)
    assert await asyncio.to_thread(notifier_process.wait, 30) == 0, rest.decode()
    assert fake_slack.token.encode() not in rest
