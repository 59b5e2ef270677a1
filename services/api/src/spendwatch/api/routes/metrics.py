"""`GET /metrics`: Prometheus exposition of this process."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from spendwatch.api.openapi import operation

routes = web.RouteTableDef()


@routes.get("/metrics")
@operation(
    "Prometheus metrics of this process",
    public=True,
    tag="meta",
    response_media="text/plain",
    raw_response=True,
)
async def metrics(_: web.Request) -> web.Response:
    """Every metric of the default registry, latency histogram included."""
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
