"""`/api/incidents`: list, detail, metrics; acknowledge/resolve/snooze via the incidents service.

Changes go to the incidents service as commands over NATS (it owns the lifecycle); the actor is
`api:<token name>`, `api:admin` (API_ADMIN_TOKEN) or `api:anonymous` (API_AUTH=off).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from spendwatch.api import repository
from spendwatch.api.auth import ANONYMOUS
from spendwatch.api.commands import send_command
from spendwatch.api.errors import CommandError, CommandErrorCode, ProblemError
from spendwatch.api.keys import DB, NATS, PRINCIPAL, SETTINGS
from spendwatch.api.models import (
    IncidentDetail,
    IncidentMetricsOut,
    IncidentMetricsSummary,
    IncidentOut,
    IncidentPage,
    IncidentPatch,
    MttSummaryRow,
    NoteBody,
    TransitionOut,
    json_response,
    row_dict,
)
from spendwatch.common.events import IncidentCommandV1
from spendwatch.common.events.base import utc_now
from spendwatch.common.events.incident import Action
from spendwatch.common.logging import get_logger

log = get_logger("spendwatch.api.incidents")

M = TypeVar("M", bound=BaseModel)

routes = web.RouteTableDef()

STATES = frozenset({"open", "alerted", "acknowledged", "resolved"})
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DEFAULT_DAYS = 30
MAX_DAYS = 366

COMMAND_STATUS: dict[CommandErrorCode, tuple[int, str]] = {
    "not_found": (404, "Incident not found"),
    "invalid_transition": (409, "Invalid transition"),
    "invalid_command": (422, "Invalid command"),
    "timeout": (504, "Incidents service timeout"),
    "unavailable": (503, "Incidents service unavailable"),
    "bad_reply": (502, "Bad reply from the incidents service"),
}


def _bad_request(detail: str) -> ProblemError:
    return ProblemError(400, "Invalid parameter", detail=detail)


def _int_param(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"`{name}` must be an integer from {low} to {high}.") from None
    if not low <= value <= high:
        raise _bad_request(f"`{name}` must be an integer from {low} to {high}.")
    return value


def encode_cursor(detected_at: datetime, incident_id: str) -> str:
    """The opaque cursor after (detected_at, incident_id)."""
    raw = json.dumps([detected_at.isoformat(), incident_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(detected_at, incident_id) of a cursor from `encode_cursor`; ValueError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        detected, incident_id = json.loads(raw)
        at = datetime.fromisoformat(detected)
        uuid.UUID(incident_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a cursor from this API") from exc
    if at.tzinfo is None:
        raise ValueError("not a cursor from this API")
    return at, str(incident_id)


def parse_list_params(query: Any) -> dict[str, Any]:
    """state, detector, after, limit of `GET /api/incidents`; ProblemError(400) if bad."""
    state = query.get("state") or None
    if state is not None and state not in STATES:
        raise _bad_request(f"`state` must be one of: {', '.join(sorted(STATES))}.")
    detector = query.get("detector") or None
    if detector is not None and len(detector) > 200:
        raise _bad_request("`detector` is too long.")
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    cursor = query.get("cursor") or None
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError:
        raise _bad_request("`cursor` is not a cursor this API returned.") from None
    return {"state": state, "detector": detector, "after": after, "limit": limit}


def _incident_id(request: web.Request) -> str:
    raw = request.match_info["incident_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ProblemError(404, "Incident not found", detail=f"No incident {raw}.") from None


@routes.get("/api/incidents")
async def list_incidents(request: web.Request) -> web.Response:
    """Incidents newest first, filtered by state/detector, keyset-paginated."""
    params = parse_list_params(request.query)
    limit = params.pop("limit")
    rows = await repository.list_incidents(request.app[DB], limit=limit + 1, **params)
    items = [IncidentOut.model_validate(row_dict(row)) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last.detected_at, last.incident_id)
    return json_response(IncidentPage(items=items, next_cursor=next_cursor))


@routes.get("/api/incidents/metrics")
async def incident_metrics(request: web.Request) -> web.Response:
    """incident_mtt_summary over the last `days` days (overall row: detector null)."""
    days = _int_param(request.query, "days", DEFAULT_DAYS, 1, MAX_DAYS)
    until = utc_now()
    since = until - timedelta(days=days)
    rows = await repository.mtt_summary(request.app[DB], since=since, until=until)
    return json_response(
        IncidentMetricsSummary(
            since=since, until=until, rows=[MttSummaryRow.model_validate(dict(r)) for r in rows]
        )
    )


@routes.get("/api/incidents/{incident_id}")
async def incident_detail(request: web.Request) -> web.Response:
    """One incident with its timeline and metrics."""
    incident_id = _incident_id(request)
    pool = request.app[DB]
    row = await repository.get_incident(pool, incident_id=incident_id)
    if row is None:
        raise ProblemError(404, "Incident not found", detail=f"No incident {incident_id}.")
    transitions = await repository.get_transitions(pool, incident_id=incident_id)
    metrics = await repository.get_metrics(pool, incident_id=incident_id)
    return json_response(
        IncidentDetail(
            incident=IncidentOut.model_validate(row_dict(row)),
            transitions=[TransitionOut.model_validate(dict(t)) for t in transitions],
            metrics=IncidentMetricsOut.model_validate(dict(metrics)) if metrics else None,
        )
    )


async def _body(request: web.Request, model: type[M]) -> M:
    text = await request.text()
    if not text.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(text)
        except ValueError:
            raise ProblemError(400, "Malformed JSON", detail="The body is not JSON.") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise ProblemError(422, "Invalid body", detail=problems) from None


async def _command(
    request: web.Request, action: Action, *, note: str | None, minutes: int | None = None
) -> web.Response:
    incident_id = _incident_id(request)
    principal = request.get(PRINCIPAL, ANONYMOUS)
    command = IncidentCommandV1(
        action=action,
        incident_id=incident_id,
        actor=principal.actor,
        note=note,
        snooze_minutes=minutes,
    )
    settings = request.app[SETTINGS]
    context = {"action": action, "incident_id": incident_id, "actor": command.actor}
    try:
        reply = await send_command(
            request.app[NATS], command, timeout=settings.incident_command_timeout_seconds
        )
    except CommandError as exc:
        status, title = COMMAND_STATUS[exc.code]
        log.warning("api.command_failed", code=exc.code, **context)
        raise ProblemError(status, title, detail=str(exc)) from None
    log.info("api.command_applied", changed=reply.changed, **context)
    if reply.incident is not None:
        incident = IncidentOut.model_validate(reply.incident.model_dump())
    else:  # an older incidents service: read the incident back
        row = await repository.get_incident(request.app[DB], incident_id=incident_id)
        if row is None:
            raise ProblemError(404, "Incident not found", detail=f"No incident {incident_id}.")
        incident = IncidentOut.model_validate(row_dict(row))
    return json_response(incident)


@routes.post("/api/incidents/{incident_id}/ack")
async def acknowledge(request: web.Request) -> web.Response:
    """Acknowledge the incident (optional `{"note": ...}`)."""
    body = await _body(request, NoteBody)
    return await _command(request, "acknowledge", note=body.note)


@routes.post("/api/incidents/{incident_id}/resolve")
async def resolve(request: web.Request) -> web.Response:
    """Resolve the incident (optional `{"note": ...}`)."""
    body = await _body(request, NoteBody)
    return await _command(request, "resolve", note=body.note)


@routes.patch("/api/incidents/{incident_id}")
async def patch_incident(request: web.Request) -> web.Response:
    """`{"action": "acknowledge"|"resolve"|"snooze", "minutes"?: int, "note"?: str}`."""
    body = await _body(request, IncidentPatch)
    if body.action == "snooze" and body.minutes is None:
        raise ProblemError(422, "Invalid body", detail="minutes: required to snooze")
    if body.action != "snooze" and body.minutes is not None:
        raise ProblemError(422, "Invalid body", detail="minutes: only for snooze")
    return await _command(request, body.action, note=body.note, minutes=body.minutes)


__all__ = ["routes"]
