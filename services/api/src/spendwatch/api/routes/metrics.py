"""`GET /metrics`: Prometheus exposition of this process."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(_: web.Request) -> web.Response:
    """Every metric of the default registry, latency histogram included."""
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
