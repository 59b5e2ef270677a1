"""The sink's pure part: sorting a batch and building commit notices."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from nats.aio.msg import Msg

from spendwatch.collector.batch import TouchedKey, commit_notices, sort_batch
from spendwatch.common.events import SpendSnapshotV1
from spendwatch.common.testing import sample_usage_events


def _msg(subject: str, data: bytes) -> Msg:
    return Msg(_client=None, subject=subject, data=data)  # type: ignore[arg-type]


def test_sort_batch_splits_events_snapshots_and_invalid() -> None:
    (event,) = sample_usage_events(1)
    snapshot = SpendSnapshotV1(
        snapshot_id="s",
        provider="cursor",
        captured_at=datetime(2026, 11, 21, tzinfo=UTC),
        cycle_start=datetime(2026, 11, 1, tzinfo=UTC),
        rows=[],
    )
    wrong_provider = json.loads(event.model_dump_json()) | {"provider": "openai"}
    batch = sort_batch(
        [
            _msg("usage.events.v1.cursor", event.model_dump_json().encode()),
            _msg("usage.snapshots.v1.spend.cursor", snapshot.model_dump_json().encode()),
            _msg("usage.events.v1.cursor", json.dumps(wrong_provider).encode()),
            _msg("usage.events.v1.cursor", b"{"),
            _msg("usage.snapshots.v1.weekly.cursor", b"{}"),
        ]
    )
    assert batch.events == [event]
    assert batch.snapshots == [snapshot]
    reasons = [reason for _, reason in batch.invalid]
    assert len(reasons) == 3
    assert "provider 'openai' != subject 'cursor'" in reasons[0]
    assert "json" in reasons[1].lower()
    assert "does not handle" in reasons[2]


def test_commit_notices_one_per_provider_with_sorted_keys_and_sums() -> None:
    at = datetime(2026, 11, 21, 12, tzinfo=UTC)
    touched = [
        TouchedKey(
            "cursor", "b@x.io", date(2026, 11, 21), datetime(2026, 11, 21, 9, tzinfo=UTC), 2, 300
        ),
        TouchedKey(
            "cursor", "a@x.io", date(2026, 11, 20), datetime(2026, 11, 20, 8, tzinfo=UTC), 1, 50
        ),
        TouchedKey(
            "openai", "a@x.io", date(2026, 11, 21), datetime(2026, 11, 21, 7, tzinfo=UTC), 4, 7
        ),
    ]
    cursor, openai = commit_notices(touched, at)
    assert cursor.provider == "cursor"
    assert [(k.user_email, k.day) for k in cursor.keys] == [
        ("a@x.io", date(2026, 11, 20)),
        ("b@x.io", date(2026, 11, 21)),
    ]
    assert cursor.earliest_occurred_at == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert (cursor.new_events, cursor.cost_micros) == (3, 350)
    assert (openai.new_events, openai.cost_micros) == (4, 7)
    assert cursor.commit_id != openai.commit_id
    assert commit_notices([], at) == []
