"""Incident commands over NATS request/reply to the incidents service."""

from __future__ import annotations

import nats.errors
from nats.aio.client import Client as NatsClient
from pydantic import ValidationError

from spendwatch.api.errors import CommandError
from spendwatch.common.events import IncidentCommandReplyV1, IncidentCommandV1
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import encode, subjects

log = get_logger("spendwatch.api.commands")

_DEFAULT_REASONS = {
    "not_found": "it does not exist",
    "invalid_transition": "that is not possible in its current state",
    "invalid_command": "the incidents service refused the command",
}


async def send_command(
    nc: NatsClient, command: IncidentCommandV1, *, timeout: float
) -> IncidentCommandReplyV1:
    """Ask the incidents service to apply `command`; its `ok` reply, or CommandError.

    CommandError codes: the reply's own (`not_found`, `invalid_transition`, `invalid_command`),
    `timeout` (no answer within `timeout` seconds), `unavailable` (nobody listens, or NATS is
    down) and `bad_reply` (an answer that is not an IncidentCommandReplyV1).
    """
    what = f"Could not {command.action} incident {command.incident_id}"
    unreachable = f"{what}: spendwatch cannot reach its message bus. Try again later."
    if not nc.is_connected:
        # While reconnecting, nats-py would buffer the request and deliver it after we answered
        # "nothing changed"; refuse it now instead.
        raise CommandError("unavailable", unreachable)
    try:
        msg = await nc.request(
            subjects.incident_command(command.action), encode(command), timeout=timeout
        )
    except nats.errors.NoRespondersError as exc:
        raise CommandError(
            "unavailable", f"{what}: the incidents service is not running. Try again later."
        ) from exc
    except nats.errors.TimeoutError as exc:
        raise CommandError(
            "timeout",
            f"{what}: the incidents service did not answer within {timeout:g} s, so the "
            "incident may not have changed. Check it again in a moment.",
        ) from exc
    except (nats.errors.Error, OSError) as exc:
        log.warning("command.nats_failed", action=command.action, error=type(exc).__name__)
        raise CommandError("unavailable", unreachable) from exc
    try:
        reply = IncidentCommandReplyV1.model_validate_json(msg.data)
    except ValidationError as exc:
        log.warning("command.bad_reply", action=command.action, errors=exc.error_count())
        raise CommandError(
            "bad_reply", f"{what}: the incidents service sent an answer spendwatch cannot read."
        ) from exc
    if not reply.ok:
        code = reply.code or "invalid_command"
        reason = (reply.error or _DEFAULT_REASONS[code]).strip().rstrip(".")
        raise CommandError(code, f"{what}: {reason}.")
    return reply
