"""Slack payload -> incident command: each action, snooze minutes, and what is refused how."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spendwatch.api.errors import (
    InvalidActionValueError,
    MalformedInteractionError,
    UnsupportedActionError,
)
from spendwatch.api.slack import command_from_payload, ephemeral, interaction_payload
from spendwatch.common.events import IncidentCommandV1
from tests.unit.api.payloads import block_actions, form_body


@pytest.mark.parametrize(
    ("action_id", "action"),
    [("incident.acknowledge", "acknowledge"), ("incident.resolve", "resolve")],
)
def test_buttons_carry_the_incident_id(action_id: str, action: str) -> None:
    command = command_from_payload(block_actions(action_id, value="inc-42"))
    assert command == IncidentCommandV1(
        action=action,
        incident_id="inc-42",
        actor="slack:alice",
        snooze_minutes=None,
    )


@pytest.mark.parametrize("minutes", [1, 60, 240, 1440, 20160])
def test_snooze_carries_incident_and_minutes(minutes: int) -> None:
    command = command_from_payload(block_actions("incident.snooze", selected=f"inc-42|{minutes}"))
    assert (command.action, command.incident_id, command.snooze_minutes) == (
        "snooze",
        "inc-42",
        minutes,
    )
    assert command.actor == "slack:alice"


def test_an_incident_id_may_hold_colons_and_dashes() -> None:
    incident_id = "01JD2X8Q7Z:bob@example.com:spend_spike"
    command = command_from_payload(block_actions("incident.snooze", selected=f"{incident_id}|30"))
    assert command.incident_id == incident_id


def test_actor_falls_back_to_the_user_id() -> None:
    payload = block_actions("incident.resolve", value="inc-1", user={"id": "U999"})
    assert command_from_payload(payload).actor == "slack:U999"
    payload = block_actions("incident.resolve", value="inc-1", user={"id": "U9", "username": " "})
    assert command_from_payload(payload).actor == "slack:U9"


@pytest.mark.parametrize(
    "selected",
    [
        "inc-1",  # no minutes
        "inc-1|",  # empty minutes
        "|60",  # no incident
        "inc-1|abc",
        "inc-1|0",
        "inc-1|-5",
        "inc-1|1.5",
        "inc-1|20161",  # more than 14 days
        "inc-1|٣",  # a non-ASCII digit
        "in c|60",
        "",
    ],
)
def test_bad_snooze_values_are_refused(selected: str) -> None:
    with pytest.raises(InvalidActionValueError):
        command_from_payload(block_actions("incident.snooze", selected=selected))


def test_snooze_without_a_selected_option_is_refused() -> None:
    payload = block_actions("incident.snooze", selected="inc-1|60")
    del payload["actions"][0]["selected_option"]
    with pytest.raises(InvalidActionValueError):
        command_from_payload(payload)


@pytest.mark.parametrize("value", [None, "", "   ", "a|b", "x" * 201, "inc\n1", 42])
def test_bad_button_values_are_refused(value: Any) -> None:
    payload = block_actions("incident.acknowledge")
    if value is not None:
        payload["actions"][0]["value"] = value
    with pytest.raises(InvalidActionValueError):
        command_from_payload(payload)


def test_unknown_action_ids_are_unsupported() -> None:
    with pytest.raises(UnsupportedActionError, match=r"incident\.delete"):
        command_from_payload(block_actions("incident.delete", value="inc-1"))


@pytest.mark.parametrize("kind", ["view_submission", "shortcut", "message_action"])
def test_other_interaction_types_are_unsupported(kind: str) -> None:
    payload = block_actions("incident.acknowledge", value="inc-1") | {"type": kind}
    with pytest.raises(UnsupportedActionError):
        command_from_payload(payload)


@pytest.mark.parametrize(
    "change",
    [
        {"type": None},
        {"actions": []},
        {"actions": None},
        {"actions": ["incident.acknowledge"]},
        {"actions": [{"value": "inc-1"}]},  # no action_id
        {"user": None},
        {"user": {"name": "alice"}},  # neither username nor id
        {"user": {"id": "U" * 300}},
    ],
)
def test_malformed_interactions_are_refused(change: dict[str, Any]) -> None:
    payload = block_actions("incident.acknowledge", value="inc-1") | change
    with pytest.raises(MalformedInteractionError):
        command_from_payload(payload)


def test_the_form_field_payload_is_decoded() -> None:
    payload = block_actions("incident.acknowledge", value="inc-1")
    assert interaction_payload(form_body(payload)) == payload


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload=",
        b"payload=not-json",
        form_body("[1, 2]"),
        form_body('"text"'),
        b"token=abc",  # no payload field
        form_body({"a": 1}) + b"&" + form_body({"b": 2}),  # two payload fields
        b"\xff\xfe\x00",  # not UTF-8
        b"&".join([b"f%d=1" % n for n in range(100)]),  # too many fields
        json.dumps(block_actions("incident.acknowledge", value="i")).encode(),  # JSON, not a form
    ],
)
def test_bodies_that_are_not_an_interaction_form_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedInteractionError):
        interaction_payload(body)


def test_ephemeral_replies_leave_the_original_message_alone() -> None:
    assert ephemeral("nope") == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "nope",
    }
