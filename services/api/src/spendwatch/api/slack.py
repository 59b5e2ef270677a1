"""Slack interactivity without I/O: request signatures, replay protection, payload -> command.

The contract with the notifier's Block Kit message: buttons `incident.acknowledge` and
`incident.resolve` carry the incident id as their `value`; the static select `incident.snooze`
carries `<incident_id>|<minutes>` as its selected option's `value`.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from spendwatch.api.errors import (
    InvalidActionValueError,
    MalformedInteractionError,
    SlackSignatureError,
    UnsupportedActionError,
)
from spendwatch.common.events import IncidentCommandV1
from spendwatch.common.events.incident import Action

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
SIGNATURE_VERSION = "v0"
MAX_AGE_SECONDS = 5 * 60

ACKNOWLEDGE = "incident.acknowledge"
RESOLVE = "incident.resolve"
SNOOZE = "incident.snooze"
ACTIONS: dict[str, Action] = {ACKNOWLEDGE: "acknowledge", RESOLVE: "resolve", SNOOZE: "snooze"}
MAX_SNOOZE_MINUTES = 60 * 24 * 14  # IncidentCommandV1's bound

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
# Whatever the incidents service uses, as long as it fits the snooze value's `|` separator.
_INCIDENT_ID = re.compile(r"^[^\s|\x00-\x1f\x7f]{1,200}$")
_MAX_FORM_FIELDS = 20


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's signature of `body` sent at `timestamp`: `v0=` + hex HMAC-SHA256 of
    `v0:<timestamp>:<body>` keyed with the signing secret."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


class ReplayGuard:
    """The signatures accepted in the last few minutes, so a captured request is refused.

    A signature covers the timestamp and the body, so it names one request; once its timestamp
    is older than the verifier's window, the timestamp check refuses a replay by itself, and the
    signature is forgotten. Only signatures that passed the HMAC check get here, so the set can
    only grow as fast as Slack sends genuine clicks; `max_entries` bounds memory anyway (when it
    is full, the signature closest to expiry is forgotten first).

    In memory is enough for one process: Slack sends each interaction once, and a replay has to
    come from someone who captured a signed request within the last five minutes. With several
    API replicas, each one only knows what it accepted itself, so the same request replayed to
    another replica within the window would be accepted there; commands are idempotent
    (repeating an acknowledge reports `changed` false), which bounds the damage. A shared store
    (a NATS KV bucket with a 5-minute TTL, or a PostgreSQL table) would close that gap.
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._expires: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._expires)

    def first_use(self, signature: str, *, expires_at: float, now: float) -> bool:
        """True and remembered until `expires_at` if `signature` was not seen; else False."""
        self._forget_expired(now)
        if signature in self._expires:
            return False
        while len(self._expires) >= self._max_entries:
            self._pop()
        self._expires[signature] = expires_at
        heapq.heappush(self._heap, (expires_at, signature))
        return True

    def _forget_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            self._pop()

    def _pop(self) -> None:
        _, signature = heapq.heappop(self._heap)
        self._expires.pop(signature, None)


class SlackRequestVerifier:
    """Checks that a request was signed by Slack with our signing secret, recently and once."""

    def __init__(
        self,
        signing_secret: str,
        *,
        clock: Callable[[], float] = time.time,
        max_age_seconds: int = MAX_AGE_SECONDS,
        replay_guard: ReplayGuard | None = None,
    ) -> None:
        if not signing_secret:
            raise ValueError("an empty signing secret verifies nothing")
        self._secret = signing_secret
        self._clock = clock
        self._max_age = max_age_seconds
        self._replays = replay_guard if replay_guard is not None else ReplayGuard()

    def __repr__(self) -> str:
        return f"SlackRequestVerifier(max_age_seconds={self._max_age})"

    def verify(self, body: bytes, *, timestamp: str | None, signature: str | None) -> None:
        """Return if the raw `body` is Slack's, else raise SlackSignatureError with a reason.

        Reasons: `missing_headers`, `bad_timestamp`, `stale_timestamp`, `bad_signature`,
        `replayed`. The body must be the bytes as received, before any parsing.
        """
        if not timestamp or not signature:
            raise SlackSignatureError("missing_headers")
        timestamp = timestamp.strip()
        if not _TIMESTAMP.match(timestamp):
            raise SlackSignatureError("bad_timestamp")
        sent_at = int(timestamp)
        now = self._clock()
        if abs(now - sent_at) > self._max_age:  # too old, or from the future
            raise SlackSignatureError("stale_timestamp")
        expected = sign(self._secret, timestamp, body)
        if not signature.isascii() or not hmac.compare_digest(expected, signature.strip()):
            raise SlackSignatureError("bad_signature")
        # Remember it until the timestamp check would refuse it anyway.
        if not self._replays.first_use(expected, expires_at=sent_at + self._max_age, now=now):
            raise SlackSignatureError("replayed")


def interaction_payload(body: bytes) -> dict[str, Any]:
    """The JSON object in the form field `payload` of an interaction request body."""
    try:
        form = parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedInteractionError("the body is not a URL-encoded form") from exc
    values = form.get("payload", [])
    if len(values) != 1:
        raise MalformedInteractionError("the form needs exactly one `payload` field")
    try:
        payload = json.loads(values[0])
    except ValueError as exc:
        raise MalformedInteractionError("`payload` is not JSON") from exc
    if not isinstance(payload, dict):
        raise MalformedInteractionError("`payload` is not a JSON object")
    return payload


def actor_of(payload: Mapping[str, Any]) -> str:
    """`slack:<username or id>` of the person who clicked."""
    user = payload.get("user")
    if not isinstance(user, dict):
        raise MalformedInteractionError("`user` is missing")
    for key in ("username", "id"):
        name = user.get(key)
        if isinstance(name, str) and name.strip():
            actor = f"slack:{name.strip()}"
            if len(actor) > 200:
                raise MalformedInteractionError(f"`user.{key}` is too long")
            return actor
    raise MalformedInteractionError("`user` has neither `username` nor `id`")


def command_from_payload(payload: Mapping[str, Any]) -> IncidentCommandV1:
    """The incident command a `block_actions` interaction asks for.

    MalformedInteractionError if it is not a readable interaction, UnsupportedActionError for an
    interaction or action spendwatch does not handle, InvalidActionValueError when a known
    action's value breaks the contract with the notifier's message.
    """
    kind = payload.get("type")
    if not isinstance(kind, str):
        raise MalformedInteractionError("`type` is missing")
    if kind != "block_actions":
        raise UnsupportedActionError(f"interaction type {kind!r}")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise MalformedInteractionError("`actions` is missing or empty")
    actor = actor_of(payload)
    # Slack sends one action per block_actions request.
    element: dict[str, Any] = actions[0]
    action_id = element.get("action_id")
    if not isinstance(action_id, str):
        raise MalformedInteractionError("`action_id` is missing")
    action = ACTIONS.get(action_id)
    if action is None:
        raise UnsupportedActionError(f"action {action_id!r}")
    if action == "snooze":
        incident_id, minutes = _snooze_value(element)
    else:
        incident_id, minutes = _incident_id(element.get("value")), None
    try:
        return IncidentCommandV1(
            action=action, incident_id=incident_id, actor=actor, snooze_minutes=minutes
        )
    except ValidationError as exc:  # the checks above should make this unreachable
        raise InvalidActionValueError(f"not a valid command: {exc.error_count()} errors") from exc


def _incident_id(value: object) -> str:
    if not isinstance(value, str) or not _INCIDENT_ID.match(value.strip()):
        raise InvalidActionValueError("the button does not carry an incident id")
    return value.strip()


def _snooze_value(element: Mapping[str, Any]) -> tuple[str, int]:
    option = element.get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    if not isinstance(value, str):
        raise InvalidActionValueError("no snooze option is selected")
    incident_id, sep, minutes_text = value.rpartition("|")
    minutes_text = minutes_text.strip()
    if not sep or not minutes_text.isdecimal() or not minutes_text.isascii():
        raise InvalidActionValueError("the snooze option is not `<incident_id>|<minutes>`")
    minutes = int(minutes_text)
    if not 1 <= minutes <= MAX_SNOOZE_MINUTES:
        raise InvalidActionValueError(f"snooze minutes must be 1..{MAX_SNOOZE_MINUTES}")
    return _incident_id(incident_id), minutes


def ephemeral(text: str) -> dict[str, object]:
    """A reply only the person who clicked sees; the original message stays as it is."""
    return {"response_type": "ephemeral", "replace_original": False, "text": text}
