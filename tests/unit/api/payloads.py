"""Slack interaction requests as Slack sends them, for the API's unit and integration tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from spendwatch.api.slack import SIGNATURE_HEADER, TIMESTAMP_HEADER

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # a test signing secret


def block_actions(
    action_id: str,
    *,
    value: str | None = None,
    selected: str | None = None,
    user: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `block_actions` payload with one action, shaped like Slack's."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": "incident-actions",
        "action_ts": "1700000000.000200",
    }
    if selected is not None:
        action |= {
            "type": "static_select",
            "selected_option": {
                "text": {"type": "plain_text", "text": "1 hour"},
                "value": selected,
            },
        }
    else:
        action |= {"type": "button", "text": {"type": "plain_text", "text": "Go"}}
        if value is not None:
            action["value"] = value
    return {
        "type": "block_actions",
        "user": user if user is not None else {"id": "U123ALICE", "username": "alice"},
        "api_app_id": "A0SPENDWATCH",
        "team": {"id": "T0TEAM", "domain": "example"},
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "channel": {"id": "C0ALERTS", "name": "spend-alerts"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [action],
    }


def form_body(payload: dict[str, Any] | str) -> bytes:
    """The URL-encoded form body Slack posts: one `payload` field holding JSON."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return urlencode({"payload": text}).encode()


def signed_headers(
    body: bytes, *, secret: str = SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack adds: the request timestamp and the `v0=` HMAC signature.

    Signed with slack_sdk's own code, not ours, so a mistake in ours cannot hide itself
    (slack_sdk only signs UTF-8 bodies; others are signed by hand, as Slack documents it).
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    try:
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    except UnicodeDecodeError:
        digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
        signature = "v0=" + digest.hexdigest()
    assert signature is not None
    return {
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
