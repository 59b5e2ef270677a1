"""Incident events and commands.

Events (`incidents.events.v1.<transition>`, published after the transition is committed): one per
row of `incident_transitions`, carrying the incident as it is after the transition. Commands
(`incidents.commands.v1.<action>`, NATS request/reply): a person or the notifier asks the
incidents service to move an incident; the reply says what happened.

States: open -> alerted -> acknowledged -> resolved; resolved -> open again (reopened).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from spendwatch.common.events.anomaly import Severity, Unit
from spendwatch.common.events.base import Event, UtcDatetime

State = Literal["open", "alerted", "acknowledged", "resolved"]
Transition = Literal[
    "opened", "updated", "escalated", "alerted", "acknowledged", "snoozed", "resolved", "reopened"
]
Action = Literal["acknowledge", "resolve", "snooze", "alerted"]
ACTIONS: tuple[Action, ...] = ("acknowledge", "resolve", "snooze", "alerted")
Actor = Annotated[str, Field(min_length=1, max_length=200)]  # system, api:<token>, slack:<user>
Note = Annotated[str, Field(max_length=2000)]
Amount = Annotated[Decimal, Field(max_digits=30, decimal_places=9)]


class Incident(Event):
    """An incident as stored: one per fingerprint while it is not resolved."""

    incident_id: str
    fingerprint: str
    detector: str
    subject: str
    state: State
    severity: Severity
    message: str
    model: str | None = None
    unit: Unit = "usd"
    value: Amount | None = None
    threshold: Amount | None = None
    baseline: Amount | None = None
    window_start: UtcDatetime | None = None
    window_end: UtcDatetime | None = None
    last_anomaly_id: str | None = None
    evidence_first_at: UtcDatetime | None = None
    detected_at: UtcDatetime
    alerted_at: UtcDatetime | None = None
    acknowledged_at: UtcDatetime | None = None
    acknowledged_by: str | None = None
    snoozed_until: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    resolved_by: str | None = None
    resolution: Literal["auto", "manual"] | None = None
    reopen_count: int = 0


class IncidentEvent(Event):
    """What every incident event carries; `event_id` is stable per transition row."""

    event_id: str  # "<incident_id>:<transition_id>"
    incident_id: str
    fingerprint: str
    transition: Transition
    from_state: State | None
    to_state: State
    at: UtcDatetime
    actor: Actor
    note: Note | None = None
    incident: Incident


class IncidentOpenedV1(IncidentEvent):
    """A new incident (`incidents.events.v1.opened`)."""

    type: Literal["incident.opened.v1"] = "incident.opened.v1"


class IncidentUpdatedV1(IncidentEvent):
    """A repeat anomaly updated the open incident's value (`incidents.events.v1.updated`)."""

    type: Literal["incident.updated.v1"] = "incident.updated.v1"


class IncidentEscalatedV1(IncidentEvent):
    """A worse severity (`incidents.events.v1.escalated`): notify again."""

    type: Literal["incident.escalated.v1"] = "incident.escalated.v1"


class IncidentAlertedV1(IncidentEvent):
    """The first alert went out (`incidents.events.v1.alerted`): MTTI starts."""

    type: Literal["incident.alerted.v1"] = "incident.alerted.v1"


class IncidentAcknowledgedV1(IncidentEvent):
    """Someone took it (`incidents.events.v1.acknowledged`)."""

    type: Literal["incident.acknowledged.v1"] = "incident.acknowledged.v1"


class IncidentSnoozedV1(IncidentEvent):
    """Muted until `incident.snoozed_until` (`incidents.events.v1.snoozed`)."""

    type: Literal["incident.snoozed.v1"] = "incident.snoozed.v1"


class IncidentResolvedV1(IncidentEvent):
    """Resolved by a person or automatically (`incidents.events.v1.resolved`)."""

    type: Literal["incident.resolved.v1"] = "incident.resolved.v1"


class IncidentReopenedV1(IncidentEvent):
    """Fired again within the reopen window (`incidents.events.v1.reopened`)."""

    type: Literal["incident.reopened.v1"] = "incident.reopened.v1"


INCIDENT_EVENTS: dict[Transition, type[IncidentEvent]] = {
    "opened": IncidentOpenedV1,
    "updated": IncidentUpdatedV1,
    "escalated": IncidentEscalatedV1,
    "alerted": IncidentAlertedV1,
    "acknowledged": IncidentAcknowledgedV1,
    "snoozed": IncidentSnoozedV1,
    "resolved": IncidentResolvedV1,
    "reopened": IncidentReopenedV1,
}


def parse_incident_event(data: bytes | str) -> IncidentEvent:
    """The incident event in `data` (JSON), as its own class; ValueError if it is not one."""
    raw = IncidentEvent.model_validate_json(data)
    return INCIDENT_EVENTS[raw.transition].model_validate_json(data)


class IncidentCommandV1(Event):
    """Move an incident (`incidents.commands.v1.<action>`, request/reply).

    `snooze` needs `snooze_minutes`; `alerted` is the notifier saying the first alert went out.
    """

    type: Literal["incident.command.v1"] = "incident.command.v1"
    action: Action
    incident_id: str
    actor: Actor
    note: Note | None = None
    snooze_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 14)] | None = None


class IncidentCommandReplyV1(Event):
    """The answer to a command: `ok` with the incident as it is now, or a clear error.

    Codes: `not_found`, `invalid_transition`, `invalid_command`. Repeating a command that already
    took effect (resolving a resolved incident) is `ok` with `changed` false.
    """

    type: Literal["incident.command_reply.v1"] = "incident.command_reply.v1"
    ok: bool
    changed: bool = False
    incident: Incident | None = None
    error: str | None = None
    code: Literal["not_found", "invalid_transition", "invalid_command"] | None = None
