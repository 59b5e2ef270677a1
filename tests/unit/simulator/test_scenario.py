"""The labelled scenario: determinism, normal traffic, every incident kind, caps and labels."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from spendwatch.common.errors import ConfigError
from spendwatch.simulator.models import MODEL_INDEX
from spendwatch.simulator.scenario import (
    INCIDENT_KINDS,
    PERSONAS,
    TEAM,
    WARMUP_DAYS,
    LabelledIncident,
    Scenario,
    ScenarioEvent,
    build_scenario,
)

FAST = "claude-4.6-opus-max-thinking-fast"
NIGHT_HOURS = {22, 23, 0, 1, 2, 3, 4, 5}
SLACK = timedelta(days=1)  # an incident's last requests still count for that UTC day


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(seed=7, developers=40, days=45)


def caps(s: Scenario) -> dict[str, int | str]:
    return s.detection_settings["static_caps"]


def windows(s: Scenario) -> dict[str, list[LabelledIncident]]:
    by_subject: dict[str, list[LabelledIncident]] = defaultdict(list)
    for incident in s.incidents:
        by_subject[incident.subject].append(incident)
    return by_subject


def inside(s: Scenario, email: str, moment: datetime) -> bool:
    return any(i.onset <= moment <= i.end + SLACK for i in windows(s)[email])


def in_window(s: Scenario, incident: LabelledIncident) -> list[ScenarioEvent]:
    return [
        e
        for e in s.events
        if e.user_email == incident.subject and incident.onset <= e.occurred_at <= incident.end
    ]


def local(s: Scenario, email: str, moment: datetime) -> datetime:
    offset = next(d.utc_offset_hours for d in s.developers if d.email == email)
    return moment + timedelta(hours=offset)


def test_the_same_seed_builds_the_same_scenario(scenario: Scenario) -> None:
    again = build_scenario(seed=7, developers=40, days=45)
    assert again.events == scenario.events
    assert again.incidents == scenario.incidents
    assert again.developers == scenario.developers
    assert again.detection_settings == scenario.detection_settings
    other = build_scenario(seed=8, developers=40, days=45)
    assert other.events[:100] != scenario.events[:100]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError):
        build_scenario(developers=5)
    with pytest.raises(ConfigError):
        build_scenario(days=10)
    with pytest.raises(ConfigError):
        build_scenario(end=datetime(2026, 1, 1))  # naive


def test_events_are_sorted_unique_and_well_formed(scenario: Scenario) -> None:
    events = scenario.events
    assert len(events) > 50_000
    assert all(a.occurred_at <= b.occurred_at for a, b in pairwise(events))
    assert len({e.event_id for e in events}) == len(events)
    assert len({(e.user_email, e.occurred_at) for e in events}) == len(events)
    emails = {d.email for d in scenario.developers}
    for e in events[::97]:
        assert e.occurred_at.tzinfo is UTC
        assert scenario.start <= e.occurred_at < scenario.end
        assert e.user_email == e.user_email.lower()
        assert e.user_email in emails
        assert e.model in MODEL_INDEX
        assert e.kind in ("included", "usage_based")
        assert isinstance(e.cost_micros, int)
        assert e.cost_micros > 0
        assert isinstance(e.request_units, Decimal)
        assert e.request_units > 0
        assert min(e.input_tokens, e.output_tokens, e.cache_read_tokens) >= 0
        assert e.max_mode == ("max" in e.model)


def test_normal_traffic_looks_like_a_team(scenario: Scenario) -> None:
    per_day: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for e in scenario.events:
        cell = per_day[e.user_email, e.occurred_at.date()]
        cell[0] += 1
        cell[1] += e.cost_micros
    spend = sorted(v[1] for v in per_day.values())
    requests = sorted(v[0] for v in per_day.values())
    median_spend = spend[len(spend) // 2] / 1_000_000
    assert 10 <= median_spend <= 25
    assert 20 <= requests[len(requests) // 2] <= 60
    personas = Counter(d.persona for d in scenario.developers)
    assert set(personas) == set(PERSONAS)
    weekend = sum(v[0] for (_, day), v in per_day.items() if day.weekday() >= 5)
    assert 0 < weekend < 0.1 * len(scenario.events)
    # offices on both sides of the Atlantic
    assert {d.utc_offset_hours >= 0 for d in scenario.developers} == {True, False}


def test_joiners_and_leavers_have_no_events_outside_their_time(scenario: Scenario) -> None:
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for e in scenario.events:
        first.setdefault(e.user_email, e.occurred_at)
        last[e.user_email] = e.occurred_at
    for dev in scenario.developers:
        if dev.email not in first:
            continue
        assert first[dev.email] >= dev.joined_at
        if dev.left_at is not None:
            assert last[dev.email] < dev.left_at
    hires = [d for d in scenario.developers if d.persona == "new_hire"]
    assert all(d.joined_at > scenario.start for d in hires)
    assert scenario.developer_days() < len(scenario.developers) * 45


def test_the_plan_runs_out_and_stays_out_within_a_cycle(scenario: Scenario) -> None:
    state: dict[tuple[str, date], str] = {}
    flipped = set()
    for e in scenario.events:
        key = (e.user_email, scenario.cycle_of(e.occurred_at)[0])
        if state.get(key) == "usage_based":
            assert e.kind == "usage_based", key
        if e.kind == "usage_based":
            flipped.add(e.user_email)
        state[key] = e.kind
    assert len(flipped) > len(scenario.developers) // 3
    assert len(scenario.cycle_starts) >= 2
    assert all(1 <= c.day <= 28 for c in scenario.cycle_starts)
    assert len({c.day for c in scenario.cycle_starts}) == 1


def test_every_kind_several_times_on_different_people(scenario: Scenario) -> None:
    kinds = Counter(i.kind for i in scenario.incidents)
    assert set(kinds) == set(INCIDENT_KINDS)
    assert len(kinds) >= 13
    for kind, count in kinds.items():
        subjects = {i.subject for i in scenario.incidents if i.kind == kind}
        if kind == "team_budget":
            assert count == 1
            assert subjects == {TEAM}
        else:
            assert count >= 4, kind
            assert len(subjects) == count, kind
    warm = scenario.start + timedelta(days=WARMUP_DAYS)
    for incident in scenario.incidents:
        assert warm <= incident.onset <= incident.end <= scenario.end
        assert incident.expected_detectors == INCIDENT_KINDS[incident.kind]
        assert incident.description
    assert len({i.incident_id for i in scenario.incidents}) == len(scenario.incidents)


def test_nobody_has_two_incidents_at_once(scenario: Scenario) -> None:
    for subject, incidents in windows(scenario).items():
        ordered = sorted(incidents, key=lambda i: i.onset)
        for a, b in pairwise(ordered):
            assert a.end < b.onset, subject


def test_caps_are_crossed_only_by_incidents(scenario: Scenario) -> None:
    requests_cap = int(caps(scenario)["user_daily_requests"])
    tokens_cap = int(caps(scenario)["user_daily_tokens"])
    user_cap = int(caps(scenario)["user_cycle_spend_usd"]) * 1_000_000
    days: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    cycles: dict[tuple[str, date], int] = defaultdict(int)
    crossings = []
    for e in scenario.events:
        day = days[e.user_email, e.occurred_at.date()]
        tokens = e.input_tokens + e.output_tokens + e.cache_read_tokens + e.cache_write_tokens
        if day[0] == requests_cap or day[1] <= tokens_cap < day[1] + tokens:
            crossings.append(e)
        day[0] += 1
        day[1] += tokens
        key = (e.user_email, scenario.cycle_of(e.occurred_at)[0])
        if cycles[key] <= user_cap < cycles[key] + e.cost_micros:
            crossings.append(e)
        cycles[key] += e.cost_micros
    assert crossings
    for e in crossings:
        assert inside(scenario, e.user_email, e.occurred_at), e
    quiet = {d.email for d in scenario.developers} - set(windows(scenario))
    for (email, _), (count, tokens) in days.items():
        if email in quiet:
            assert count <= requests_cap / 1.4
            assert tokens <= tokens_cap / 1.4


def test_the_team_budget_is_crossed_once_at_the_onset(scenario: Scenario) -> None:
    budget = int(caps(scenario)["team_cycle_budget_usd"]) * 1_000_000
    (incident,) = [i for i in scenario.incidents if i.kind == "team_budget"]
    totals: dict[date, int] = defaultdict(int)
    crossed = []
    for e in scenario.events:
        cycle = scenario.cycle_of(e.occurred_at)[0]
        if totals[cycle] < budget <= totals[cycle] + e.cost_micros:
            crossed.append(e.occurred_at)
        totals[cycle] += e.cost_micros
    assert crossed == [incident.onset]
    hot = scenario.cycle_of(incident.onset)[0]
    assert all(t <= 0.9 * budget for c, t in totals.items() if c != hot)


def test_the_user_cycle_cap_onset_is_the_crossing(scenario: Scenario) -> None:
    user_cap = int(caps(scenario)["user_cycle_spend_usd"]) * 1_000_000
    for incident in (i for i in scenario.incidents if i.kind == "user_cycle_cap"):
        first, _ = scenario.cycle_of(incident.onset)
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        spent = sum(
            e.cost_micros
            for e in scenario.events
            if e.user_email == incident.subject and start <= e.occurred_at <= incident.onset
        )
        last = next(
            e
            for e in scenario.events
            if e.user_email == incident.subject and e.occurred_at == incident.onset
        )
        assert spent > user_cap >= spent - last.cost_micros


def test_incidents_meet_their_documented_conditions(scenario: Scenario) -> None:
    requests_cap = int(caps(scenario)["user_daily_requests"])
    tokens_cap = int(caps(scenario)["user_daily_tokens"])
    for incident in scenario.incidents:
        events = in_window(scenario, incident)
        spend = sum(e.cost_micros for e in events) / 1_000_000
        match incident.kind:
            case "spend_spike":
                assert spend >= 60
            case "runaway_agent":
                loop = [e for e in events if e.is_headless]
                gaps = [(b.occurred_at - a.occurred_at).total_seconds() for a, b in pairwise(loop)]
                assert (
                    2 * 3600 * 0.95 <= (incident.end - incident.onset).total_seconds() <= 5 * 3600
                )
                assert sorted(gaps)[len(gaps) // 2] <= 8
                assert len({e.model for e in loop}) == 1
            case "short_burst":
                burst = [
                    e
                    for e in events
                    if e.model in ("claude-4.6-opus-max", "claude-4.6-opus-high-thinking")
                ]
                assert sum(e.cost_micros for e in burst) >= 25_000_000
                assert incident.end - incident.onset <= timedelta(minutes=30)
            case "model_switch":
                assert {e.model for e in events} == {FAST}
            case "weekend_burst":
                assert spend >= 60
                assert local(scenario, incident.subject, incident.onset).weekday() >= 5
            case "dormant_return":
                assert spend >= 150
                for moment in (incident.onset, incident.end):
                    assert local(scenario, incident.subject, moment).hour in NIGHT_HOURS
            case "request_flood":
                day = incident.onset.date()
                count = sum(
                    1
                    for e in scenario.events
                    if e.user_email == incident.subject and e.occurred_at.date() == day
                )
                assert count > requests_cap
                assert spend < 25
            case "token_flood":
                day = incident.onset.date()
                tokens = sum(
                    e.input_tokens + e.output_tokens + e.cache_read_tokens + e.cache_write_tokens
                    for e in scenario.events
                    if e.user_email == incident.subject and e.occurred_at.date() == day
                )
                assert tokens > tokens_cap
            case "context_bloat":
                assert spend >= 25
            case _:
                assert events or incident.subject == TEAM


def test_the_expensive_model_appears_only_in_model_switches(scenario: Scenario) -> None:
    switches = [i for i in scenario.incidents if i.kind == "model_switch"]
    fast = [e for e in scenario.events if e.model == FAST]
    assert fast
    for e in fast:
        assert any(
            i.subject == e.user_email and i.onset <= e.occurred_at <= i.end for i in switches
        )


def test_a_weekend_burst_comes_from_someone_who_never_works_weekends(
    scenario: Scenario,
) -> None:
    for incident in (i for i in scenario.incidents if i.kind == "weekend_burst"):
        weekend = [
            e
            for e in scenario.events
            if e.user_email == incident.subject
            and local(scenario, e.user_email, e.occurred_at).weekday() >= 5
        ]
        assert all(incident.onset <= e.occurred_at <= incident.end for e in weekend)


def test_detection_settings_hold_the_caps(scenario: Scenario) -> None:
    static = caps(scenario)
    assert set(static) == {
        "user_daily_requests",
        "user_daily_tokens",
        "user_cycle_spend_usd",
        "team_cycle_budget_usd",
    }
    assert isinstance(static["user_daily_requests"], int)
    assert isinstance(static["user_daily_tokens"], int)
    assert Decimal(str(static["user_cycle_spend_usd"])) > 0
    assert Decimal(str(static["team_cycle_budget_usd"])) > 0
