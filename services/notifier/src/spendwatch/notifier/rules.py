"""What each incident transition does on the channels: one table, pure helpers, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from spendwatch.common.events import IncidentEvent
from spendwatch.common.events.incident import Transition


@dataclass(frozen=True, slots=True)
class Reaction:
    """How the notifier answers one transition.

    `opens`: the incident gets a root message if it has none yet (a missed `opened`);
    `edit`: the root message is edited to show the new state; `reply`: a thread reply says who
    did what; `broadcast`: that reply is also shown in the channel (a re-notification);
    `email`: an email goes out (email has no edits, so only what needs attention is mailed).
    """

    opens: bool
    edit: bool
    reply: bool
    broadcast: bool
    email: bool


REACTIONS: dict[Transition, Reaction] = {
    "opened": Reaction(opens=True, edit=False, reply=False, broadcast=False, email=True),
    # A repeat anomaly changed the value: edit in place, no new post (noise).
    "updated": Reaction(opens=True, edit=True, reply=False, broadcast=False, email=False),
    "escalated": Reaction(opens=True, edit=True, reply=True, broadcast=True, email=True),
    # Our own `alerted` command coming back: nothing visible changes.
    "alerted": Reaction(opens=False, edit=False, reply=False, broadcast=False, email=False),
    "acknowledged": Reaction(opens=True, edit=True, reply=True, broadcast=False, email=False),
    "snoozed": Reaction(opens=True, edit=True, reply=True, broadcast=False, email=False),
    # A resolved incident that never got a message is not worth a first one.
    "resolved": Reaction(opens=False, edit=True, reply=True, broadcast=False, email=False),
    "reopened": Reaction(opens=True, edit=True, reply=True, broadcast=True, email=True),
}


def version(event: IncidentEvent) -> str:
    """A sortable key of the incident snapshot an event carries: its time, then its transition
    row (`event_id` is `<incident_id>:<transition_id>`), so an older event never overwrites a
    newer state on an edited message."""
    _, _, tail = event.event_id.rpartition(":")
    seq = int(tail) if tail.isdigit() else 0
    return f"{event.at:%Y%m%dT%H%M%S.%f}|{seq:019d}"


def is_stale(event: IncidentEvent, now: datetime, max_age: timedelta | None) -> bool:
    """True if the event is too old to be worth sending (None: nothing is)."""
    return max_age is not None and event.at < now - max_age
