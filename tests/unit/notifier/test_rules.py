"""The transition table and the event version (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

from spendwatch.common.events.incident import Transition
from spendwatch.notifier.rules import REACTIONS, is_stale, version
from tests.unit.notifier.builders import event, incident


def test_every_transition_has_a_reaction() -> None:
    assert set(REACTIONS) == set(get_args(Transition))


def test_what_re_notifies_and_what_only_edits() -> None:
    broadcast = {t for t, r in REACTIONS.items() if r.broadcast}
    mailed = {t for t, r in REACTIONS.items() if r.email}
    assert broadcast == {"escalated", "reopened"}
    assert mailed == {"opened", "escalated", "reopened"}
    assert not REACTIONS["updated"].reply  # a repeat edits the message, no new post
    assert not REACTIONS["resolved"].opens  # nobody needs a first message about a resolution
    assert REACTIONS["alerted"] == REACTIONS["alerted"].__class__(False, False, False, False, False)


def test_versions_sort_by_time_then_transition_row() -> None:
    inc = incident()
    at = datetime(2026, 11, 21, 10, tzinfo=UTC)
    # Explicit rows: the builder numbers events from a counter shared across tests.
    early = event("opened", inc, at=at).model_copy(update={"event_id": f"{inc.incident_id}:1"})
    same_time = [
        event("acknowledged", inc, at=at).model_copy(update={"event_id": f"{inc.incident_id}:{n}"})
        for n in (9, 10, 100)
    ]
    later = event("resolved", inc, at=at + timedelta(microseconds=1))
    keys = [version(e) for e in (early, *same_time, later)]
    assert keys == sorted(keys)
    assert version(same_time[0]) < version(same_time[1])  # 9 < 10 despite the digits


def test_stale_events() -> None:
    now = datetime(2026, 11, 21, 10, tzinfo=UTC)
    old = event("opened", incident(), at=now - timedelta(hours=25))
    assert is_stale(old, now, timedelta(hours=24))
    assert not is_stale(old, now, None)
    assert not is_stale(event("opened", incident(), at=now), now, timedelta(hours=24))
