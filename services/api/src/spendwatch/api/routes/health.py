"""`GET /healthz` (the process answers) and `GET /readyz` (PostgreSQL and NATS answer)."""

from __future__ import annotations

import asyncio
from typing import Literal

import asyncpg
from aiohttp import web

from spendwatch.api.keys import DB, NATS
from spendwatch.api.models import ApiModel, json_response
from spendwatch.api.openapi import operation
from spendwatch.api.problems import problem
from spendwatch.common.logging import get_logger

log = get_logger("spendwatch.api.health")

routes = web.RouteTableDef()

# A probe must answer fast even when the database host swallows packets.
READY_TIMEOUT_SECONDS = 2.0


class Health(ApiModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Readiness(ApiModel):
    """What the API depends on, each `ok` or `down`."""

    status: Literal["ok"] = "ok"
    checks: dict[str, Literal["ok", "down"]]


@routes.get("/healthz")
@operation("Liveness: the process answers", response=Health, public=True, tag="meta")
async def healthz(_: web.Request) -> web.Response:
    """The process is up and serving."""
    return json_response(Health())


@routes.get("/readyz")
@operation(
    "Readiness: PostgreSQL and NATS answer (503 naming what is down)",
    response=Readiness,
    public=True,
    tag="meta",
)
async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers `SELECT 1` and NATS is connected; 503 naming what is down."""
    database_failure = await database_error(request.app[DB])
    nats_ok: bool = request.app[NATS].is_connected
    checks: dict[str, Literal["ok", "down"]] = {
        "database": "down" if database_failure else "ok",
        "nats": "ok" if nats_ok else "down",
    }
    if not database_failure and nats_ok:
        return json_response(Readiness(checks=checks))
    log.warning("readyz.not_ready", database_error=database_failure, nats_connected=nats_ok)
    down = [name for name, ok in (("database", not database_failure), ("NATS", nats_ok)) if not ok]
    return problem(
        503,
        "Not ready",
        detail=f"{' and '.join(down)} {'is' if len(down) == 1 else 'are'} unreachable",
        checks=checks,
    )


async def database_error(pool: asyncpg.Pool) -> str | None:
    """None if the pool runs `SELECT 1` within the probe's time, else the error's name."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await pool.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return type(exc).__name__
    return None
