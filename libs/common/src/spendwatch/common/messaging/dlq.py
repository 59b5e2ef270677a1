"""Dead-lettering: an invalid payload goes to `dlq.<subject>` with the reason, and is acked.

Invalid means it can never succeed (not JSON, wrong shape); transient failures are nak'ed instead.
"""

from __future__ import annotations

import json
from typing import Any

from faststream import BaseMiddleware
from faststream.exceptions import AckMessage
from faststream.message import StreamMessage
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError
from nats.js import JetStreamContext
from prometheus_client import Counter
from pydantic import ValidationError

from spendwatch.common.errors import InvalidPayloadError
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import subjects
from spendwatch.common.messaging.publish import MSG_ID

REASON = "Spendwatch-Dlq-Reason"
ORIGINAL_SUBJECT = "Spendwatch-Dlq-Subject"
ORIGINAL_SEQUENCE = "Spendwatch-Dlq-Stream-Seq"
_MAX_REASON = 900

INVALID_PAYLOAD_ERRORS: tuple[type[Exception], ...] = (
    ValidationError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    InvalidPayloadError,
)
"""Exceptions that mean the payload itself is bad, so retrying cannot help."""

log = get_logger(__name__)

# Every dead letter of every service passes through `dead_letter_payload`, so it is counted here
# (by the first token of the original subject: usage, anomalies, incidents, ...).
DEAD_LETTERED = Counter(
    "spendwatch_dlq_messages_total",
    "Messages parked in the dead-letter stream, by the domain of their subject",
    ["domain"],
)


def describe(exc: BaseException) -> str:
    """A one-line reason for a header: no newlines, bounded length."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        ]
        text = f"validation failed: {'; '.join(parts)}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:_MAX_REASON]


async def dead_letter(js: JetStreamContext, msg: Msg, reason: str) -> None:
    """Copy `msg` to `dlq.<its subject>` with the reason; idempotent per stream sequence."""
    extra: dict[str, str] = {}
    msg_id = msg.headers.get(MSG_ID) if msg.headers else None
    try:
        seq = str(msg.metadata.sequence.stream)
        extra[ORIGINAL_SEQUENCE] = seq
        msg_id = f"{msg.metadata.stream}:{seq}"
    except NotJSMessageError:
        pass  # a core NATS message: no stream sequence, keep its own id if it has one
    await dead_letter_payload(js, msg.subject, msg.data, reason, msg_id=msg_id, headers=extra)


async def dead_letter_payload(
    js: JetStreamContext,
    subject: str,
    data: bytes,
    reason: str,
    *,
    msg_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Park `data`, which was meant for `subject` (or came from it), in `dlq.<subject>`."""
    all_headers = {REASON: reason, ORIGINAL_SUBJECT: subject, **(headers or {})}
    if msg_id:
        all_headers[MSG_ID] = f"dlq:{msg_id}"
    await js.publish(subjects.dlq(subject), data, headers=all_headers)
    DEAD_LETTERED.labels(subject.split(".", 1)[0]).inc()
    log.warning("message.dead_lettered", subject=subject, reason=reason)


class DeadLetterMiddleware(BaseMiddleware):
    """FastStream middleware: invalid payloads are dead-lettered and acked, never retried.

    Register with `broker.add_middleware(DeadLetterMiddleware)`.
    """

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        """Run the handler; park the message in the DLQ if its payload is invalid."""
        try:
            return await call_next(msg)
        except INVALID_PAYLOAD_ERRORS as exc:
            broker: NatsBroker = self.context.get("broker")
            await dead_letter(broker.connection.jetstream(), msg.raw_message, describe(exc))
            raise AckMessage from exc
