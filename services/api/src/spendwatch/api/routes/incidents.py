"""`/api/incidents`: list, detail, metrics; acknowledge/resolve/snooze via the incidents service.

Changes go to the incidents service as commands over NATS (it owns the lifecycle); the actor is
`api:<token name>`, `api:admin` (API_ADMIN_TOKEN) or `api:anonymous` (API_AUTH=off).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from aiohttp import web

from spendwatch.api.auth import ANONYMOUS
from spendwatch.api.commands import send_command
from spendwatch.api.errors import CommandError, CommandErrorCode, ProblemError
from spendwatch.api.keys import DB, NATS, PRINCIPAL, SETTINGS
from spendwatch.api.models import json_response, newest_first_page, row_dict
from spendwatch.api.models.incidents import (
    IncidentDetail,
    IncidentListQuery,
    IncidentMetricsOut,
    IncidentMetricsSummary,
    IncidentOut,
    IncidentPage,
    IncidentPatch,
    MetricsQuery,
    MttSummaryRow,
    NoteBody,
    TransitionOut,
)
from spendwatch.api.openapi import operation
from spendwatch.api.repository import incidents as repository
from spendwatch.api.validation import parse_query, read_body
from spendwatch.common.events import IncidentCommandV1
from spendwatch.common.events.base import utc_now
from spendwatch.common.events.incident import Action
from spendwatch.common.logging import get_logger

log = get_logger("spendwatch.api.incidents")

routes = web.RouteTableDef()

INCIDENT_ID = {"incident_id": {"type": "string", "format": "uuid"}}

COMMAND_STATUS: dict[CommandErrorCode, tuple[int, str]] = {
    "not_found": (404, "Incident not found"),
    "invalid_transition": (409, "Invalid transition"),
    "invalid_command": (422, "Invalid command"),
    "timeout": (504, "Incidents service timeout"),
    "unavailable": (503, "Incidents service unavailable"),
    "bad_reply": (502, "Bad reply from the incidents service"),
}


def _incident_id(request: web.Request) -> str:
    raw = request.match_info["incident_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ProblemError(404, "Incident not found", detail=f"No incident {raw}.") from None


@routes.get("/api/incidents")
@operation(
    "Incidents, newest first, filtered and keyset-paginated",
    query=IncidentListQuery,
    response=IncidentPage,
    tag="incidents",
)
async def list_incidents(request: web.Request) -> web.Response:
    """Incidents newest first, filtered by state/detector/severity/subject."""
    query = parse_query(request, IncidentListQuery)
    rows = await repository.list_incidents(
        request.app[DB],
        state=query.state,
        detector=query.detector,
        severity=query.severity,
        subject=query.subject,
        after=query.after,
        limit=query.limit + 1,
    )
    items, next_cursor = newest_first_page(
        rows, query.limit, IncidentOut, at="detected_at", key="incident_id"
    )
    return json_response(IncidentPage(items=items, next_cursor=next_cursor))


@routes.get("/api/incidents/metrics")
@operation(
    "MTTD/MTTI/MTTR per detector and overall",
    query=MetricsQuery,
    response=IncidentMetricsSummary,
    tag="incidents",
)
async def incident_metrics(request: web.Request) -> web.Response:
    """incident_mtt_summary over the last `days` days (overall row: detector null)."""
    days = parse_query(request, MetricsQuery).days
    until = utc_now()
    since = until - timedelta(days=days)
    rows = await repository.mtt_summary(request.app[DB], since=since, until=until)
    return json_response(
        IncidentMetricsSummary(
            since=since, until=until, rows=[MttSummaryRow.model_validate(dict(r)) for r in rows]
        )
    )


@routes.get("/api/incidents/{incident_id}")
@operation(
    "One incident with its timeline and metrics",
    response=IncidentDetail,
    errors=(404,),
    tag="incidents",
    path_params=INCIDENT_ID,
)
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


COMMAND_ERRORS = (404, 409, 502, 504)


@routes.post("/api/incidents/{incident_id}/ack")
@operation(
    "Acknowledge an incident",
    body=NoteBody,
    response=IncidentOut,
    errors=COMMAND_ERRORS,
    tag="incidents",
    path_params=INCIDENT_ID,
)
async def acknowledge(request: web.Request) -> web.Response:
    """Acknowledge the incident (optional `{"note": ...}`)."""
    body = await read_body(request, NoteBody)
    return await _command(request, "acknowledge", note=body.note)


@routes.post("/api/incidents/{incident_id}/resolve")
@operation(
    "Resolve an incident",
    body=NoteBody,
    response=IncidentOut,
    errors=COMMAND_ERRORS,
    tag="incidents",
    path_params=INCIDENT_ID,
)
async def resolve(request: web.Request) -> web.Response:
    """Resolve the incident (optional `{"note": ...}`)."""
    body = await read_body(request, NoteBody)
    return await _command(request, "resolve", note=body.note)


@routes.patch("/api/incidents/{incident_id}")
@operation(
    "Acknowledge, resolve or snooze an incident",
    body=IncidentPatch,
    response=IncidentOut,
    errors=COMMAND_ERRORS,
    tag="incidents",
    path_params=INCIDENT_ID,
)
async def patch_incident(request: web.Request) -> web.Response:
    """`{"action": "acknowledge"|"resolve"|"snooze", "minutes"?: int, "note"?: str}`."""
    body = await read_body(request, IncidentPatch)
    return await _command(request, body.action, note=body.note, minutes=body.minutes)


__all__ = ["routes"]
