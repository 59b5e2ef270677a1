"""Every subject, stream and durable name spendwatch uses; handlers never spell subjects."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"^[a-z0-9_-]+$")

USAGE_EVENTS_ALL = "usage.events.v1.*"
USAGE_SNAPSHOTS_ALL = "usage.snapshots.v1.>"
USAGE_COMMITTED_ALL = "usage.committed.v1.*"
ANOMALIES_ALL = "anomalies.events.v1.*"
INCIDENTS_ALL = "incidents.events.v1.*"
INCIDENT_COMMANDS_ALL = "incidents.commands.v1.*"
SETTINGS_UPDATED = "settings.events.v1.updated"
DLQ_ALL = "dlq.>"
DLQ_PREFIX = "dlq."

SNAPSHOT_KINDS = ("daily", "spend", "roster")


def token(value: str) -> str:
    """Check that `value` is one lower-case subject token."""
    if not _TOKEN.match(value):
        raise ValueError(f"not a lower-case subject token: {value!r}")
    return value


def usage_events(provider: str) -> str:
    """`usage.events.v1.<provider>`: one message per billable request."""
    return f"usage.events.v1.{token(provider)}"


def usage_snapshot(kind: str, provider: str) -> str:
    """`usage.snapshots.v1.<daily|spend|roster>.<provider>`."""
    if kind not in SNAPSHOT_KINDS:
        raise ValueError(f"unknown snapshot kind {kind!r}")
    return f"usage.snapshots.v1.{kind}.{token(provider)}"


def usage_committed(provider: str) -> str:
    """`usage.committed.v1.<provider>`: the sink made rows durable."""
    return f"usage.committed.v1.{token(provider)}"


def anomalies_events(detector: str) -> str:
    """`anomalies.events.v1.<detector>`."""
    return f"anomalies.events.v1.{token(detector)}"


def incidents_events(transition: str) -> str:
    """`incidents.events.v1.<transition>`."""
    return f"incidents.events.v1.{token(transition)}"


def incident_command(action: str) -> str:
    """`incidents.commands.v1.<action>`: request/reply to the incidents service."""
    return f"incidents.commands.v1.{token(action)}"


def dlq(subject: str) -> str:
    """`dlq.<original subject>`: where an invalid message on `subject` is parked."""
    return DLQ_PREFIX + subject


def durable(service: str, stream: str) -> str:
    """Durable consumer name: `<service>-<stream>`."""
    return f"{token(service)}-{stream}"
