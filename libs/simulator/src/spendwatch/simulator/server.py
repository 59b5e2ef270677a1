"""The simulator's HTTP server: Cursor's Admin API for a `SimulatedTeam`, plus `/_sim/` controls.

`make_app` builds the aiohttp application; `run_simulator` serves it on a port for as long as
an `async with` block runs and hands out its base URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from aiohttp import web

from spendwatch.common.logging import get_logger
from spendwatch.simulator import wire
from spendwatch.simulator.errors import DuplicateEventError, InvalidSimRequestError
from spendwatch.simulator.team import (
    COST_RULE,
    DAY_MS,
    KIND_NAMES,
    SimulatedTeam,
    Truth,
    day_number,
    iso_ms,
    round_micros,
)

log = get_logger("spendwatch.simulator")

DEFAULT_ADMIN_KEY: Final = "key_" + "sim0" * 16
"""The demo key: Cursor's format, `key_` and 64 characters."""
REQUEST_LOG_SIZE: Final = 10_000
WINDOW_SECONDS: Final = 60.0
MALFORMED_VARIANTS: Final = ("wrong_types", "missing_user_email", "garbage_json")
FAULT_KINDS: Final = (*(str(s) for s in sorted(wire.ERROR_STATUSES)), "malformed_page", "delay")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Fault:
    """The next `remaining` matching admin requests fail this way."""

    kind: str
    remaining: int
    endpoint: str | None = None
    variant: str | None = None
    retry_after: int = 1
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The fault as `/_sim/faults` shows it."""
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "endpoint": self.endpoint,
            "variant": self.variant,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
        }


@dataclass(slots=True)
class SimulatorState:
    """What the server remembers between requests."""

    team: SimulatedTeam
    admin_key: str
    rate_limit_per_minute: int
    clock: Callable[[], float] = time.monotonic
    admitted: dict[str, deque[float]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    sequence: int = 0

    def admit(self, key: str) -> int | None:
        """Count a request against `key`'s rolling minute; None, or seconds to wait if full."""
        now = self.clock()
        window = self.admitted.setdefault(key, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if len(window) >= self.rate_limit_per_minute:
            return max(1, math.ceil(window[0] + WINDOW_SECONDS - now))
        window.append(now)
        return None

    def take_fault(self, endpoint: str) -> Fault | None:
        """The first queued fault matching `endpoint`, with one use consumed."""
        for fault in self.faults:
            if fault.endpoint in (None, endpoint):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None


STATE: Final = web.AppKey("simulator_state", SimulatorState)


def make_app(
    team: SimulatedTeam,
    *,
    admin_key: str,
    rate_limit_per_minute: int = 20,
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The simulator as an aiohttp application (no socket is opened here)."""
    if rate_limit_per_minute < 1:
        raise ValueError("rate_limit_per_minute must be at least 1")
    app = web.Application(middlewares=[_admin_api], client_max_size=1024**2)
    app[STATE] = SimulatorState(team, admin_key, rate_limit_per_minute, clock)
    app.router.add_get("/teams/members", _members)
    app.router.add_post("/teams/spend", _spend)
    app.router.add_post("/teams/daily-usage-data", _daily_usage)
    app.router.add_post("/teams/filtered-usage-events", _usage_events)
    app.router.add_get("/teams/groups", _groups)
    app.router.add_get("/_sim/health", _health)
    app.router.add_get("/_sim/team", _team)
    app.router.add_get("/_sim/truth", _truth)
    app.router.add_get("/_sim/requests", _requests)
    app.router.add_delete("/_sim/requests", _clear_requests)
    app.router.add_post("/_sim/late-event", _late_event)
    app.router.add_get("/_sim/faults", _faults)
    app.router.add_post("/_sim/faults", _add_fault)
    app.router.add_delete("/_sim/faults", _clear_faults)
    app.router.add_post("/_sim/reset-rate-limit", _reset_rate_limit)
    return app


@asynccontextmanager
async def run_simulator(
    team: SimulatedTeam,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    admin_key: str = DEFAULT_ADMIN_KEY,
    rate_limit_per_minute: int = 20,
) -> AsyncIterator[str]:
    """Serve `team` on host:port (0 = any free port) and yield the base URL, e.g.

    `async with run_simulator(team) as url: httpx.get(f"{url}/teams/members", auth=(key, ""))`
    """
    app = make_app(team, admin_key=admin_key, rate_limit_per_minute=rate_limit_per_minute)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        yield f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()


# ---- the admin API's gate: log, auth, faults, rate limit ------------------------------------


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _error(status: int, message: str | None = None, **headers: str) -> web.Response:
    return _json(wire.error(status, message), status=status, headers=headers or None)


def _authorised(request: web.Request, key: str) -> bool:
    """HTTP Basic with the admin key as user name and an empty password."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    return decoded == f"{key}:"


@web.middleware
async def _admin_api(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Everything outside `/_sim/` is the admin API: logged, authenticated, faulted, limited."""
    if request.path.startswith("/_sim/"):
        return await handler(request)
    state = request.app[STATE]
    text = await request.text()
    started = state.clock()
    status = 500
    try:
        response = await _gate(request, handler, state)
        status = response.status
        return response
    finally:
        state.sequence += 1
        state.requests.append(
            {
                "seq": state.sequence,
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "body": _parsed(text),
                "status": status,
                "at": started,
            }
        )


async def _gate(request: web.Request, handler: Handler, state: SimulatorState) -> web.Response:
    if not _authorised(request, state.admin_key):
        return _error(401)
    fault = state.take_fault(request.path.removeprefix("/teams/"))
    if fault is not None:
        log.info("simulator.fault", kind=fault.kind, path=request.path, remaining=fault.remaining)
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif fault.kind != "malformed_page":
            status = int(fault.kind)
            if status == 429:
                return _error(429, **{"Retry-After": str(fault.retry_after)})
            return _error(status)
    wait = state.admit(state.admin_key)
    if wait is not None:
        return _error(429, **{"Retry-After": str(wait)})
    try:
        response = await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return _error(404)
    except _BadRequestError as exc:
        return _error(400, str(exc))
    except Exception:
        log.exception("simulator.handler_failed", path=request.path)
        return _error(500)
    if not isinstance(response, web.Response):
        return _error(500)
    if fault is not None and fault.kind == "malformed_page":
        return _malformed(response, fault.variant or "garbage_json")
    return response


def _malformed(response: web.Response, variant: str) -> web.Response:
    """Spoil a good answer the way `variant` says; the status stays 200."""
    if variant == "garbage_json":
        return web.Response(
            text='{"usageEvents": [{"timestamp": "17', content_type="application/json"
        )
    body = json.loads(response.text or "{}")
    records = next((v for v in body.values() if isinstance(v, list) and v), [])
    if records and isinstance(records[0], dict):
        first = records[0]
        if variant == "missing_user_email":
            first.pop("userEmail", None)
            first.pop("email", None)
        else:  # wrong_types: every field of the first record gets a type it never has
            for name, value in first.items():
                if isinstance(value, bool):
                    first[name] = "yes"
                elif isinstance(value, int | float):
                    first[name] = "not-a-number"
                elif isinstance(value, str):
                    first[name] = ["wrong", "type"]
                else:
                    first[name] = "garbage"
    return _json(body)


def _parsed(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---- the admin API ----------------------------------------------------------------------------


class _BadRequestError(Exception):
    """The request cannot be served; answered 400 with this message."""


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise _BadRequestError("Invalid JSON body") from exc
    if not isinstance(body, dict):
        raise _BadRequestError("The request body must be a JSON object")
    return body


def _number(body: dict[str, Any], name: str, default: int | None, *, minimum: int = 0) -> int:
    value = body.get(name)
    if value is None:
        if default is None:
            raise _BadRequestError(f"{name} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _BadRequestError(f"{name} must be a number")
    if value < minimum:
        raise _BadRequestError(f"{name} must be at least {minimum}")
    return int(value)


async def _members(request: web.Request) -> web.Response:
    return _json(wire.team_members(request.app[STATE].team))


async def _spend(request: web.Request) -> web.Response:
    body = await _body(request)
    sort_by = body.get("sortBy", "date")
    direction = body.get("sortDirection", "desc")
    if sort_by not in ("amount", "date", "user") or direction not in ("asc", "desc"):
        raise _BadRequestError("sortBy must be amount|date|user and sortDirection asc|desc")
    search = body.get("searchTerm")
    if search is not None and not isinstance(search, str):
        raise _BadRequestError("searchTerm must be a string")
    return _json(
        wire.team_spend(
            request.app[STATE].team,
            search=search,
            sort_by=sort_by,
            descending=direction == "desc",
            page=_number(body, "page", 1, minimum=1),
            page_size=_number(body, "pageSize", 100, minimum=1),
        )
    )


async def _daily_usage(request: web.Request) -> web.Response:
    body = await _body(request)
    start = _number(body, "startDate", None)
    end = _number(body, "endDate", None)
    if end < start:
        raise _BadRequestError("endDate must not be before startDate")
    if end - start > 30 * DAY_MS:
        raise _BadRequestError("Date range cannot exceed 30 days")
    paged = body.get("page") is not None and body.get("pageSize") is not None
    return _json(
        wire.daily_usage(
            request.app[STATE].team,
            start_ms=start,
            end_ms=end,
            page=_number(body, "page", 1, minimum=1) if paged else None,
            page_size=_number(body, "pageSize", 1000, minimum=1) if paged else None,
        )
    )


async def _usage_events(request: web.Request) -> web.Response:
    body = await _body(request)
    team = request.app[STATE].team
    end = _number(body, "endDate", team.now_ms)
    start = _number(body, "startDate", end - 30 * DAY_MS)
    member = None
    if body.get("email") is not None:
        email = body["email"]
        member = team.member_by_email(email) if isinstance(email, str) else None
        if member is None:
            raise _BadRequestError("Some users are not in the team")
    if body.get("userId") is not None:
        by_id = team.member_by_id(_number(body, "userId", None))
        if by_id is None or (member is not None and by_id is not member):
            raise _BadRequestError("Some users are not in the team")
        member = by_id
    return _json(
        wire.usage_events_page(
            team,
            start_ms=start,
            end_ms=end,
            member=member,
            page=_number(body, "page", 1, minimum=1),
            page_size=_number(body, "pageSize", 10, minimum=1),
        )
    )


async def _groups(request: web.Request) -> web.Response:
    team = request.app[STATE].team
    cycle = request.query.get("billingCycle")
    day = team.last_day
    if cycle:
        try:
            day = day_number(date.fromisoformat(cycle))
        except ValueError as exc:
            raise _BadRequestError("billingCycle must be YYYY-MM-DD") from exc
    return _json(wire.billing_groups(team, day))


# ---- /_sim/: controls and ground truth (no authentication) -----------------------------------


async def _health(_: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _team(request: web.Request) -> web.Response:
    state = request.app[STATE]
    team = state.team
    return _json(
        {
            "seed": team.seed,
            "developers": team.developers,
            "days": team.days,
            "now": iso_ms(team.now_ms),
            "now_ms": team.now_ms,
            "window_start_ms": team.window_start_ms,
            "cycle_start": iso_ms(team.cycle_start_ms),
            "cycle_start_ms": team.cycle_start_ms,
            "rate_limit_per_minute": state.rate_limit_per_minute,
            "generation_seconds": round(team.generation_seconds, 3),
            "members": [
                {
                    "id": m.id,
                    "user_id": m.user_id,
                    "email": m.email,
                    "name": m.name,
                    "group": None if m.group is None else team.groups[m.group].name,
                    "is_removed": m.is_removed,
                }
                for m in team.members
            ],
        }
    )


def truth_json(team: SimulatedTeam, truth: Truth) -> dict[str, Any]:
    """The body of `GET /_sim/truth`."""
    return {
        "seed": team.seed,
        "developers": team.developers,
        "days": team.days,
        "now": iso_ms(team.now_ms),
        "now_ms": team.now_ms,
        "window_start_ms": team.window_start_ms,
        "cycle_start_ms": team.cycle_start_ms,
        "cost_rule": COST_RULE,
        "range": {"start_ms": truth.start_ms, "end_ms": truth.end_ms},
        "total_events": truth.total_events,
        "total_cost_micros": truth.total_cost_micros,
        "user_days": [
            {
                "user_email": u.user_email,
                "day": u.day.isoformat(),
                "events": u.events,
                "cost_micros": u.cost_micros,
            }
            for u in truth.user_days
        ],
        "anomalies": [
            {
                "kind": a.kind,
                "user_email": a.user_email,
                "window_start": iso_ms(a.window_start_ms),
                "window_end": iso_ms(a.window_end_ms),
                "window_start_ms": a.window_start_ms,
                "window_end_ms": a.window_end_ms,
                "expected_detector": a.expected_detector,
                "also_fires": list(a.also_fires),
                "model": a.model,
                "details": a.details,
            }
            for a in team.anomalies
        ],
    }


async def _truth(request: web.Request) -> web.Response:
    team = request.app[STATE].team
    try:
        start = int(request.query["start_ms"]) if "start_ms" in request.query else None
        end = int(request.query["end_ms"]) if "end_ms" in request.query else None
    except ValueError:
        return _json({"error": "start_ms and end_ms must be integers"}, status=400)
    member = None
    if email := request.query.get("user"):
        found = team.member_by_email(email)
        if found is None:
            return _json({"error": f"{email!r} is not in the team"}, status=400)
        member = found.index
    return _json(truth_json(team, team.truth(start, end, member)))


async def _requests(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return _json({"error": "since must be an integer"}, status=400)
    return _json({"requests": [r for r in state.requests if r["seq"] > since]})


async def _clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].requests.clear()
    return _json({"cleared": True})


async def _sim_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text() or "{}", parse_float=Decimal)
    except ValueError as exc:
        raise InvalidSimRequestError("the body must be JSON") from exc
    if not isinstance(body, dict):
        raise InvalidSimRequestError("the body must be a JSON object")
    return body


def _cents(body: dict[str, Any], name: str) -> Decimal | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise InvalidSimRequestError(f"{name} must be a number")
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise InvalidSimRequestError(f"{name} must be a number") from exc


async def _late_event(request: web.Request) -> web.Response:
    """Insert an event now that belongs in the past; answers the event as the API serves it."""
    team = request.app[STATE].team
    try:
        body = await _sim_body(request)
        timestamp = body.get("timestamp_ms")
        if isinstance(timestamp, str) and timestamp.isdigit():
            timestamp = int(timestamp)
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise InvalidSimRequestError("timestamp_ms must be an integer (epoch ms)")
        row = team.add_late_event(
            timestamp_ms=timestamp,
            email=str(body.get("user_email", "")),
            model=str(body.get("model", "claude-4.5-sonnet")),
            charged_cents=_cents(body, "charged_cents"),
            total_cents=_cents(body, "total_cents"),
            fee_cents=_cents(body, "cursor_token_fee"),
            kind=str(body.get("kind", "Usage-based")),
            headless=bool(body.get("is_headless", False)),
        )
    except DuplicateEventError as exc:
        return _json({"error": str(exc)}, status=409)
    except InvalidSimRequestError as exc:
        return _json({"error": str(exc), "kinds": list(KIND_NAMES)}, status=400)
    log.info("simulator.late_event", user=team.members[row.member].email, timestamp=row.ts)
    return _json(
        {"event": wire.usage_event(team, row), "cost_micros": round_micros(row.charged)},
        status=201,
    )


async def _faults(request: web.Request) -> web.Response:
    return _json({"faults": [f.as_json() for f in request.app[STATE].faults]})


async def _add_fault(request: web.Request) -> web.Response:
    """Queue a fault: the next `count` matching admin requests fail as `kind` says."""
    state = request.app[STATE]
    try:
        body = await _sim_body(request)
        fault = _fault(body)
    except InvalidSimRequestError as exc:
        return _json({"error": str(exc), "kinds": list(FAULT_KINDS)}, status=400)
    state.faults.append(fault)
    log.info("simulator.fault_queued", **fault.as_json())
    return _json({"queued": fault.as_json(), "faults": [f.as_json() for f in state.faults]})


def _fault(body: dict[str, Any]) -> Fault:
    kind = str(body.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise InvalidSimRequestError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InvalidSimRequestError("count must be a positive integer")
    endpoint = body.get("endpoint")
    if endpoint is not None:
        if not isinstance(endpoint, str):
            raise InvalidSimRequestError("endpoint must be a string")
        endpoint = endpoint.removeprefix("/").removeprefix("teams/")
    variant = body.get("variant")
    if kind == "malformed_page":
        variant = variant or "garbage_json"
        if variant not in MALFORMED_VARIANTS:
            raise InvalidSimRequestError(f"variant must be one of {', '.join(MALFORMED_VARIANTS)}")
    retry_after = body.get("retry_after", 1)
    seconds = body.get("seconds", 0)
    if not isinstance(retry_after, int) or retry_after < 0:
        raise InvalidSimRequestError("retry_after must be a whole number of seconds")
    if not isinstance(seconds, int | Decimal) or not 0 <= seconds <= 300:
        raise InvalidSimRequestError("seconds must be 0..300")
    return Fault(kind, count, endpoint, variant, retry_after, float(seconds))


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return _json({"faults": []})


async def _reset_rate_limit(request: web.Request) -> web.Response:
    request.app[STATE].admitted.clear()
    return _json({"reset": True})
