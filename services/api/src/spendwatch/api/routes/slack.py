"""`POST /api/slack/interactions`: a click on an incident message's buttons, signed by Slack.

Slack waits 3 seconds for the answer. Success is an empty 200 (the notifier updates the message
when the incident event arrives); a refused or unanswered command is still a 200, with an
ephemeral text only the person who clicked sees.
"""

from __future__ import annotations

from aiohttp import web

from spendwatch.api.commands import send_command
from spendwatch.api.errors import (
    CommandError,
    InvalidActionValueError,
    MalformedInteractionError,
    ProblemError,
    SlackSignatureError,
    UnsupportedActionError,
)
from spendwatch.api.keys import NATS, SETTINGS, SLACK_VERIFIER
from spendwatch.api.metrics import SLACK_ACTIONS, SLACK_REJECTED
from spendwatch.api.openapi import operation
from spendwatch.api.slack import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    command_from_payload,
    ephemeral,
    interaction_payload,
)
from spendwatch.common.logging import get_logger

log = get_logger("spendwatch.api.slack")

routes = web.RouteTableDef()

# Slack gives up after 3 s; leave room for the network and our own work around the command.
SLACK_COMMAND_BUDGET_SECONDS = 2.5


@routes.post("/api/slack/interactions")
@operation(
    "Slack interactivity (button presses), verified by Slack's request signature",
    public=True,
    tag="slack",
    body_media="application/x-www-form-urlencoded",
    raw_body=True,
    errors=(401,),
)
async def interactions(request: web.Request) -> web.Response:
    """Verify Slack's signature, turn the click into an incident command and send it."""
    verifier = request.app[SLACK_VERIFIER]
    if verifier is None:
        SLACK_REJECTED.labels("not_configured").inc()
        raise ProblemError(
            503,
            "Slack interactivity not configured",
            detail="Set SLACK_SIGNING_SECRET to accept Slack interactions.",
        )
    body = await request.read()  # the raw bytes: the signature covers them exactly
    try:
        verifier.verify(
            body,
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            signature=request.headers.get(SIGNATURE_HEADER),
        )
    except SlackSignatureError as exc:
        SLACK_REJECTED.labels(exc.reason).inc()
        log.warning("slack.request_rejected", reason=exc.reason)
        raise ProblemError(
            401, "Invalid Slack signature", detail=_REJECTIONS.get(exc.reason, exc.reason)
        ) from None

    try:
        command = command_from_payload(interaction_payload(body))
    except MalformedInteractionError as exc:
        SLACK_ACTIONS.labels("unknown", "malformed").inc()
        log.warning("slack.malformed_payload", error=str(exc))
        raise ProblemError(400, "Malformed Slack payload", detail=str(exc)) from None
    except UnsupportedActionError as exc:
        SLACK_ACTIONS.labels("unknown", "unsupported").inc()
        log.info("slack.unsupported_action", what=str(exc))
        return web.json_response(
            ephemeral(
                "That is an unsupported action: spendwatch handles acknowledge, resolve and "
                "snooze on its incident messages."
            )
        )
    except InvalidActionValueError as exc:
        SLACK_ACTIONS.labels("unknown", "invalid_value").inc()
        log.warning("slack.invalid_action_value", error=str(exc))
        return web.json_response(
            ephemeral(f"spendwatch could not read that button ({exc}); nothing changed.")
        )

    settings = request.app[SETTINGS]
    timeout = min(settings.incident_command_timeout_seconds, SLACK_COMMAND_BUDGET_SECONDS)
    context = {
        "action": command.action,
        "incident_id": command.incident_id,
        "actor": command.actor,
    }
    try:
        reply = await send_command(request.app[NATS], command, timeout=timeout)
    except CommandError as exc:
        SLACK_ACTIONS.labels(command.action, exc.code).inc()
        log.warning("slack.command_failed", code=exc.code, **context)
        return web.json_response(ephemeral(str(exc)))
    SLACK_ACTIONS.labels(command.action, "ok").inc()
    log.info("slack.command_applied", changed=reply.changed, **context)
    return web.Response(status=200)


_REJECTIONS = {
    "missing_headers": f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required.",
    "bad_timestamp": f"{TIMESTAMP_HEADER} is not a Unix time in seconds.",
    "stale_timestamp": "The request timestamp is more than 5 minutes away from now.",
    "bad_signature": "The signature does not match the body.",
    "replayed": "This request was already received.",
}
