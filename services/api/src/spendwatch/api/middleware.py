"""Request ids, access logs, latency metrics and problem+json errors for every route."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import asyncpg
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from spendwatch.api.errors import ProblemError
from spendwatch.api.keys import REQUEST_ID
from spendwatch.api.metrics import REQUEST_SECONDS
from spendwatch.api.problems import PROBLEM_CONTENT_TYPE, problem
from spendwatch.common.logging import get_logger

log = get_logger("spendwatch.api.access")

REQUEST_ID_HEADER = "X-Request-Id"
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes and scrapes are logged at debug so they do not drown the real traffic.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_SECONDS = "5"
# The database is down, restarting, out of connections or too slow: the request may succeed
# later, so it is a 503 with Retry-After rather than a 500.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.AdminShutdownError,
    ConnectionError,
    TimeoutError,
)
_HOP_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


def route_of(request: web.Request) -> str:
    """The route template that matched (`/api/users/{email}`), so metrics stay low-cardinality."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id (the client's `X-Request-Id` if sane), log it and time it."""
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = offered if _CLIENT_REQUEST_ID.match(offered) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
            status = response.status
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        except web.HTTPException as exc:  # 2xx/3xx raised by a handler; errors are problems
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away before the answer
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_of(request)
            REQUEST_SECONDS.labels(route, request.method, str(status)).observe(elapsed)
            emit = log.debug if route in _QUIET_ROUTES else log.info
            emit(
                "http.request",
                method=request.method,
                path=request.path,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as problem+json; an unexpected exception is logged and becomes 500."""
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem(exc.status, exc.title, detail=exc.detail, type_=exc.type)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == PROBLEM_CONTENT_TYPE:
            raise
        default_text = f"{exc.status}: {exc.reason}"
        detail = exc.text if exc.text and exc.text != default_text else None
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _HOP_HEADERS}
        return problem(exc.status, exc.reason, detail=detail, headers=headers)
    except DATABASE_UNAVAILABLE as exc:
        log.warning("http.database_unavailable", route=route_of(request), error=type(exc).__name__)
        return problem(
            503,
            detail="The database is unavailable; try again shortly.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
            request_id=request.get(REQUEST_ID),
        )
    except Exception:  # the last line of defence: never crash, never leak internals
        log.exception("http.unhandled_error", method=request.method, route=route_of(request))
        return problem(
            500,
            detail="An unexpected error occurred; the logs have the details.",
            request_id=request.get(REQUEST_ID),
        )
