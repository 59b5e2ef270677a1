"""`GET /api/openapi.json`: the API's OpenAPI document (open, like the health checks)."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from spendwatch.api.openapi import build_document, operation

routes = web.RouteTableDef()
DOCUMENT = web.AppKey("openapi_document", str)


def _version() -> str:
    try:
        return version("spendwatch-api")
    except PackageNotFoundError:  # running from a source tree without metadata
        return "0.0.0"


def attach_document(app: web.Application) -> None:
    """Build the document from the finished router, once, before the app starts."""
    app[DOCUMENT] = json.dumps(build_document(app.router, version=_version()))


@routes.get("/api/openapi.json")
@operation("This OpenAPI document", public=True, tag="meta")
async def openapi_document(request: web.Request) -> web.Response:
    """The document `attach_document` built."""
    return web.Response(text=request.app[DOCUMENT], content_type="application/json")
