"""The HTTP side door every service opens: /metrics and /healthz."""

from __future__ import annotations

import httpx

from spendwatch.common.localstack import free_port
from spendwatch.common.messaging.dlq import DEAD_LETTERED
from spendwatch.common.observability import start_metrics_server


async def test_metrics_and_health_are_served() -> None:
    healthy = True

    async def check() -> bool:
        return healthy

    DEAD_LETTERED.labels("usage").inc()
    port = free_port()
    runner = await start_metrics_server(port, check, host="127.0.0.1")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            body = (await http.get("/metrics")).text
            assert 'spendwatch_dlq_messages_total{domain="usage"}' in body
            assert (await http.get("/healthz")).status_code == 200
            healthy = False
            response = await http.get("/healthz")
            assert response.status_code == 503
            assert response.json() == {"status": "unhealthy"}
    finally:
        await runner.cleanup()
