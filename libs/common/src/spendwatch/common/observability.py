"""Every service's small HTTP side door: `/metrics` (Prometheus) and `/healthz`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

HealthCheck = Callable[[], Awaitable[bool]]


async def start_metrics_server(
    port: int, healthy: HealthCheck, host: str = "0.0.0.0"
) -> web.AppRunner:
    """Serve /metrics and /healthz on `port`; the caller cleans up the returned runner."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok = await healthy()
        return web.json_response({"status": "ok" if ok else "unhealthy"}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
