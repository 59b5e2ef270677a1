"""Wire models: round trips, normalisation, and what they refuse."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from spendwatch.common.events import (
    AnomalyClearedV1,
    AnomalyDetectedV1,
    RosterSnapshotV1,
    SpendSnapshotV1,
    UsageCommittedV1,
    UsageRecordedV1,
)
from spendwatch.common.testing import sample_usage_events


def _event(**overrides: object) -> UsageRecordedV1:
    base: dict[str, object] = {
        "event_id": "cursor:1",
        "provider": "cursor",
        "occurred_at": "2026-11-21T10:00:00+01:00",
        "user_email": "  Alice@Example.COM ",
        "model": "claude-4.5-sonnet",
        "kind": "usage_based",
        "cost_micros": 213_623,
        "request_units": "1.4",
        "ingested_at": "2026-11-21T10:05:00Z",
    }
    return UsageRecordedV1.model_validate(base | overrides)


def test_usage_event_normalises_email_and_time_to_utc() -> None:
    event = _event()
    assert event.user_email == "alice@example.com"
    assert event.occurred_at == datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.request_units == Decimal("1.4")
    assert event.type == "usage.recorded.v1"


def test_usage_event_json_round_trip_is_exact() -> None:
    for event in sample_usage_events(50, seed=2):
        again = UsageRecordedV1.model_validate_json(event.model_dump_json())
        assert again == event


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_at", "2026-11-21T10:00:00"),  # naive: which timezone? refuse to guess
        ("cost_micros", 1.5),  # money is integer micro-dollars
        ("cost_micros", "lots"),
        ("user_email", "not-an-email"),
        ("provider", "bard"),
        ("input_tokens", -1),
        ("event_id", ""),
    ],
)
def test_usage_event_rejects_bad_fields(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        _event(**{field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_unknown_fields_are_ignored_so_v1_can_grow() -> None:
    payload = json.loads(_event().model_dump_json()) | {"added_in_v1_1": True}
    assert UsageRecordedV1.model_validate(payload) == _event()


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError):
        _event().cost_micros = 0  # type: ignore[misc]


def test_snapshot_and_commit_models_validate_nested_rows() -> None:
    spend = SpendSnapshotV1.model_validate(
        {
            "snapshot_id": "s1",
            "provider": "cursor",
            "captured_at": "2026-11-21T00:00:00Z",
            "cycle_start": "2026-11-01T00:00:00Z",
            "rows": [
                {"user_email": "A@x.io", "spend_micros": 24_500_000, "overall_spend_micros": 1}
            ],
        }
    )
    assert spend.rows[0].user_email == "a@x.io"
    roster = RosterSnapshotV1.model_validate(
        {
            "snapshot_id": "r1",
            "provider": "cursor",
            "captured_at": "2026-11-21T00:00:00Z",
            "groups": [{"group_id": "group_1", "name": "Platform", "member_emails": ["B@x.io"]}],
        }
    )
    assert roster.groups[0].member_emails == ["b@x.io"]
    commit = UsageCommittedV1.model_validate(
        {
            "commit_id": "c1",
            "provider": "cursor",
            "keys": [{"user_email": "a@x.io", "day": "2026-11-21"}],
            "earliest_occurred_at": datetime(2026, 11, 21, tzinfo=timezone(timedelta(hours=-8))),
            "new_events": 3,
            "cost_micros": 10,
            "committed_at": "2026-11-21T12:00:00Z",
        }
    )
    assert commit.keys[0].day == date(2026, 11, 21)
    assert commit.earliest_occurred_at.tzinfo == UTC


def test_anomaly_events_round_trip_with_exact_amounts() -> None:
    detected = AnomalyDetectedV1.model_validate(
        {
            "anomaly_id": "a1",
            "fingerprint": "alice@x.io:spend_spike:2026-11-21",
            "detector": "spend_spike",
            "severity": "warning",
            "subject": "alice@x.io",
            "metric": "daily_spend",
            "unit": "usd",
            "value": "214.12",
            "threshold": "255.00",
            "baseline": "51.00",
            "window_start": "2026-11-21T00:00:00Z",
            "window_end": "2026-11-22T00:00:00Z",
            "model": "claude-4.6-opus-max",
            "message": "Alice: daily spend spiked to $214 (4.2x her 7-day avg of $51)",
            "evidence_first_at": "2026-11-21T09:12:00Z",
            "detected_at": "2026-11-21T15:00:02Z",
        }
    )
    assert AnomalyDetectedV1.model_validate_json(detected.model_dump_json()) == detected
    assert detected.value == Decimal("214.12")
    cleared = AnomalyClearedV1.model_validate(
        detected.model_dump(exclude={"type", "severity", "evidence_first_at", "detected_at"})
        | {"cleared_at": "2026-11-22T00:00:05Z"}
    )
    assert cleared.fingerprint == detected.fingerprint
    with pytest.raises(ValidationError):
        AnomalyDetectedV1.model_validate(detected.model_dump() | {"detector": "Spend Spike"})
