"""The real collector process, SIGKILLed mid-stream and restarted, counts every cent once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import asyncpg
import pytest
from nats.js import JetStreamContext

from spendwatch.common.testing import sample_usage_events
from tests.integration.sinkkit import assert_exact, consumer_drained, publish_events, wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def start_collector(database_url: str, nats_url: str) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = os.environ | {
            "DATABASE_URL": database_url,
            "NATS_URL": nats_url,
            "METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
            "SINK_BATCH_SIZE": "200",
            "SINK_ACK_WAIT_SECONDS": "3",  # redeliver the killed process's batches quickly
        }
        proc = subprocess.Popen([sys.executable, "-m", "spendwatch.collector"], env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_sigkill_mid_stream_then_restart_never_double_counts(
    js: JetStreamContext, pool: asyncpg.Pool, start_collector: object
) -> None:
    events = list(sample_usage_events(10_000, seed=21))
    await publish_events(js, events)
    first = start_collector()  # type: ignore[operator]

    async def some_rows() -> bool:
        return bool(await pool.fetchval("SELECT count(*) >= 2000 FROM usage_events"))

    await wait_for(some_rows, timeout=60, what="first rows")
    first.send_signal(signal.SIGKILL)  # no shutdown: batches in flight are committed or not
    first.wait()
    stored = await pool.fetchval("SELECT count(*) FROM usage_events")
    assert 2000 <= stored <= 10_000

    # Everything again, as a collector re-polling the provider would.
    await publish_events(js, events, id_prefix="again:")
    second = start_collector()  # type: ignore[operator]
    await wait_for(lambda: consumer_drained(js), timeout=120, what="restarted sink to drain")
    await assert_exact(pool, events)

    second.send_signal(signal.SIGTERM)  # a clean stop exits 0
    assert await asyncio.to_thread(second.wait, 30) == 0
