"""The API's routes, one module per area; each exposes a `routes` table.

A new area (`incidents.py`, `stats.py`, ...) defines `routes = web.RouteTableDef()` and is
listed in ROUTE_TABLES. Every handler declares its contract with `@operation` (see
`spendwatch.api.openapi`), parses with `spendwatch.api.validation`, and reaches the pool, NATS
and settings through `spendwatch.api.keys`.
"""

from __future__ import annotations

from aiohttp import web

from spendwatch.api.routes import (
    anomalies,
    health,
    incidents,
    metrics,
    openapi,
    slack,
    stats,
    users,
)
from spendwatch.api.routes import groups as group_routes
from spendwatch.api.routes import settings as settings_routes

ROUTE_TABLES: tuple[web.RouteTableDef, ...] = (
    health.routes,
    metrics.routes,
    slack.routes,
    incidents.routes,
    settings_routes.routes,
    group_routes.routes,
    stats.routes,
    users.routes,
    anomalies.routes,
    openapi.routes,
)


def setup_routes(app: web.Application) -> None:
    """Register every route table on `app`."""
    for table in ROUTE_TABLES:
        app.add_routes(table)
    openapi.attach_document(app)
