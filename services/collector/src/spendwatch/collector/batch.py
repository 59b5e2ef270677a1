"""Pure decisions of the sink: sort a fetched batch into events, snapshots and invalid messages."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from nats.aio.msg import Msg
from pydantic import TypeAdapter

from spendwatch.common.events import (
    DailyUsageSnapshotV1,
    RosterSnapshotV1,
    SpendSnapshotV1,
    UsageCommittedV1,
    UsageRecordedV1,
    UserDay,
)
from spendwatch.common.messaging import describe
from spendwatch.common.messaging.dlq import INVALID_PAYLOAD_ERRORS

Snapshot = DailyUsageSnapshotV1 | SpendSnapshotV1 | RosterSnapshotV1

_EVENT = TypeAdapter(UsageRecordedV1)
_SNAPSHOT_BY_KIND: dict[str, TypeAdapter[Any]] = {
    "daily": TypeAdapter(DailyUsageSnapshotV1),
    "spend": TypeAdapter(SpendSnapshotV1),
    "roster": TypeAdapter(RosterSnapshotV1),
}


@dataclass
class SortedBatch:
    """A batch split by what the sink does with each message."""

    events: list[UsageRecordedV1] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    invalid: list[tuple[Msg, str]] = field(default_factory=list)


def sort_batch(msgs: list[Msg]) -> SortedBatch:
    """Decode every message by its subject; invalid ones keep the reason for the DLQ."""
    out = SortedBatch()
    for msg in msgs:
        tokens = msg.subject.split(".")
        try:
            if tokens[:3] == ["usage", "events", "v1"] and len(tokens) == 4:
                event = _EVENT.validate_json(msg.data)
                if event.provider != tokens[3]:
                    out.invalid.append(
                        (msg, f"provider {event.provider!r} != subject {tokens[3]!r}")
                    )
                    continue
                out.events.append(event)
            elif tokens[:3] == ["usage", "snapshots", "v1"] and tokens[3] in _SNAPSHOT_BY_KIND:
                out.snapshots.append(_SNAPSHOT_BY_KIND[tokens[3]].validate_json(msg.data))
            else:
                out.invalid.append((msg, f"the sink does not handle subject {msg.subject}"))
        except INVALID_PAYLOAD_ERRORS as exc:
            out.invalid.append((msg, describe(exc)))
    return out


@dataclass(frozen=True, slots=True)
class TouchedKey:
    """A (provider, user, day) whose rollup changed, with the new rows that changed it."""

    provider: str
    user_email: str
    day: date
    earliest: datetime
    events: int
    cost_micros: int


def commit_notices(touched: list[TouchedKey], committed_at: datetime) -> list[UsageCommittedV1]:
    """One `usage.committed` notice per provider listing its touched (user, day) keys."""
    by_provider: dict[str, list[TouchedKey]] = defaultdict(list)
    for key in touched:
        by_provider[key.provider].append(key)
    return [
        UsageCommittedV1.model_validate(
            {
                "commit_id": str(uuid.uuid4()),
                "provider": provider,
                "keys": [
                    UserDay(user_email=k.user_email, day=k.day)
                    for k in sorted(keys, key=lambda k: (k.user_email, k.day))
                ],
                "earliest_occurred_at": min(k.earliest for k in keys),
                "new_events": sum(k.events for k in keys),
                "cost_micros": sum(k.cost_micros for k in keys),
                "committed_at": committed_at,
            }
        )
        for provider, keys in sorted(by_provider.items())
    ]
