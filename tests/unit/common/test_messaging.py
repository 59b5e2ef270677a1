"""Subjects, stream definitions, DLQ reasons and retry delays."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from spendwatch.common.messaging import ALL_STREAMS, describe, subjects
from spendwatch.common.messaging.consumer import redelivery_delay


def test_subject_builders_follow_the_contract() -> None:
    assert subjects.usage_events("cursor") == "usage.events.v1.cursor"
    assert subjects.usage_snapshot("roster", "cursor") == "usage.snapshots.v1.roster.cursor"
    assert subjects.usage_committed("openai") == "usage.committed.v1.openai"
    assert subjects.anomalies_events("spend_spike") == "anomalies.events.v1.spend_spike"
    assert subjects.incidents_events("opened") == "incidents.events.v1.opened"
    assert subjects.dlq("usage.events.v1.cursor") == "dlq.usage.events.v1.cursor"
    assert subjects.durable("collector", "USAGE") == "collector-USAGE"


@pytest.mark.parametrize("bad", ["Cursor", "a.b", "", "x y", "*", ">"])
def test_subject_tokens_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="token"):
        subjects.usage_events(bad)


def test_unknown_snapshot_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="snapshot kind"):
        subjects.usage_snapshot("weekly", "cursor")


def test_every_subject_belongs_to_exactly_one_stream() -> None:
    examples = [
        subjects.usage_events("cursor"),
        subjects.usage_snapshot("daily", "cursor"),
        subjects.usage_committed("cursor"),
        subjects.anomalies_events("zscore"),
        subjects.incidents_events("resolved"),
        subjects.SETTINGS_UPDATED,
        subjects.dlq(subjects.usage_events("cursor")),
    ]

    def matches(pattern: str, subject: str) -> bool:
        p, s = pattern.split("."), subject.split(".")
        if p[-1] == ">":
            return len(s) >= len(p) and all(a in ("*", b) for a, b in zip(p[:-1], s, strict=False))
        return len(p) == len(s) and all(a in ("*", b) for a, b in zip(p, s, strict=True))

    for subject in examples:
        owners = [st.name for st in ALL_STREAMS if any(matches(p, subject) for p in st.subjects)]
        assert len(owners) == 1, (subject, owners)


def test_stream_limits_match_the_architecture() -> None:
    by_name = {s.name: s.config() for s in ALL_STREAMS}
    assert by_name["USAGE"].max_age == 7 * 86400
    assert by_name["ANOMALIES"].max_age == 30 * 86400
    assert by_name["DLQ"].max_age == 30 * 86400
    assert by_name["SETTINGS"].max_msgs_per_subject == 100


def test_describe_names_the_field_on_one_line() -> None:
    class Model(BaseModel):
        amount: int

    with pytest.raises(ValidationError) as info:
        Model.model_validate_json('{"amount": "x"}')
    reason = describe(info.value)
    assert reason.startswith("validation failed: amount:")
    assert "\n" not in reason
    assert len(describe(ValueError("y" * 5000))) <= 900


def test_redelivery_delay_grows_and_is_capped() -> None:
    assert [redelivery_delay(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert redelivery_delay(50) == 60
