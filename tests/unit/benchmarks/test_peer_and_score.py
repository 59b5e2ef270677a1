"""The peer's detection as documented (quirks included), its view of a scenario, and scoring."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from benchmarks.detect.peer import (
    CRITICAL,
    INFO,
    WARNING,
    DayUsage,
    PeerConfig,
    PeerData,
    PeerDetector,
    PeerFeed,
    detect,
    detect_cycle_outliers,
    detect_spend_spikes,
    detect_thresholds,
    detect_zscore,
    micros_to_cents,
    peer_data_from_events,
)
from benchmarks.detect.score import Alert, Report, score
from spendwatch.simulator.scenario import (
    Developer,
    LabelledIncident,
    Scenario,
    ScenarioEvent,
)

NOW = datetime(2026, 5, 20, 15, 0, tzinfo=UTC)
TODAY = NOW.date()
CYCLE = date(2026, 5, 11)
DEFAULTS = PeerConfig()


def usage(cents: int, requests: int = 10, model: str = "claude-4.5-sonnet") -> DayUsage:
    return DayUsage(spend_cents=cents, agent_requests=requests, most_used_model=model)


def crowd(n: int, cents: int, prefix: str = "u") -> dict[str, DayUsage]:
    return {f"{prefix}{i}@example.com": usage(cents) for i in range(n)}


def snapshot(
    daily: dict[date, dict[str, DayUsage]] | None = None,
    cycle: dict[str, int] | None = None,
    *,
    now: datetime = NOW,
    limited: int = 0,
) -> PeerData:
    return PeerData(
        now=now,
        cycle_start=CYCLE,
        daily=daily or {},
        cycle_spend_cents=cycle or {},
        limited_users_count=limited,
    )


# ---- layer 2: z-score -----------------------------------------------------------------------


def test_zscore_with_eight_users_reaches_sqrt_seven_and_fires() -> None:
    day = crowd(7, 1000) | {"big@example.com": usage(100_000)}
    (anomaly,) = detect_zscore(snapshot({TODAY: day}), DEFAULTS, NOW)
    values = [1000] * 7 + [100_000]
    mean = sum(values) / 8
    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / 8)  # population
    assert (100_000 - mean) / sigma == pytest.approx(math.sqrt(7))  # 2.6458, the ceiling
    assert anomaly.user_email == "big@example.com"
    assert (anomaly.type, anomaly.metric, anomaly.severity) == ("zscore", "spend", WARNING)
    assert anomaly.threshold == pytest.approx(mean + 2.5 * sigma)
    assert anomaly.diagnosis_delta == pytest.approx(100_000 - mean)
    assert "2.6\u03c3 above team mean" in anomaly.message


def test_zscore_with_seven_users_cannot_fire() -> None:
    day = crowd(6, 1000) | {"big@example.com": usage(10_000_000)}
    assert detect_zscore(snapshot({TODAY: day}), DEFAULTS, NOW) == []  # sqrt(6) = 2.449


def test_zscore_critical_needs_fifty_eight_spenders() -> None:
    for n, severity in ((57, WARNING), (58, CRITICAL)):
        day = crowd(n - 1, 1000) | {"big@example.com": usage(1_000_000)}
        (anomaly,) = detect_zscore(snapshot({TODAY: day}), DEFAULTS, NOW)
        assert anomaly.severity == severity, n  # sqrt(56) = 7.48, sqrt(57) = 7.55


def test_zscore_floors_and_small_populations() -> None:
    below_floor = crowd(7, 100) | {"big@example.com": usage(4999)}
    assert detect_zscore(snapshot({TODAY: below_floor}), DEFAULTS, NOW) == []
    four = crowd(3, 1000) | {"big@example.com": usage(100_000)}
    assert detect_zscore(snapshot({TODAY: four}), DEFAULTS, NOW) == []
    # zero spenders are not in the population: 4 spenders + 10 idle users is still too few
    idle = crowd(10, 0, "idle") | four
    assert detect_zscore(snapshot({TODAY: idle}), DEFAULTS, NOW) == []
    flat = crowd(8, 6000)
    assert detect_zscore(snapshot({TODAY: flat}), DEFAULTS, NOW) == []  # sigma = 0


def test_the_target_date_is_the_latest_date_with_spend() -> None:
    yesterday = TODAY - timedelta(days=1)
    day = crowd(7, 1000) | {"big@example.com": usage(100_000)}
    data = snapshot({yesterday: day, TODAY: {"a@example.com": usage(0)}})
    assert data.target_date == yesterday
    (anomaly,) = detect_zscore(data, DEFAULTS, NOW)
    assert anomaly.window_start == datetime(2026, 5, 19, tzinfo=UTC)


# ---- layer 3: spikes and cycle outliers --------------------------------------------------------


def history(
    days_back: dict[int, int], email: str = "a@example.com"
) -> dict[date, dict[str, DayUsage]]:
    return {
        TODAY - timedelta(days=back): {email: usage(cents)} for back, cents in days_back.items()
    }


def test_spike_baseline_averages_only_days_with_rows() -> None:
    daily = history({3: 1000, 5: 1000}) | {TODAY: {"a@example.com": usage(6000)}}
    (anomaly,) = detect_spend_spikes(snapshot(daily), DEFAULTS, NOW)
    # 6000 / 1000 = 6x, a warning; with the five missing days as zeros it would be 21x
    assert (anomaly.type, anomaly.metric, anomaly.severity) == ("trend", "spend", WARNING)
    assert anomaly.threshold == 5000
    assert anomaly.diagnosis_delta == 5000
    assert "6.0x their 7-day avg of $10.00" in anomaly.message


def test_spike_floors_lookback_and_critical() -> None:
    def run(days_back: dict[int, int], today: int) -> list[str]:
        daily = history(days_back) | {TODAY: {"a@example.com": usage(today)}}
        return [a.severity for a in detect_spend_spikes(snapshot(daily), DEFAULTS, NOW)]

    assert run({1: 500}, 4999) == []  # under $50 today
    assert run({1: 99}, 6000) == []  # baseline under $1
    assert run({}, 6000) == []  # no history
    assert run({7: 100_000, 1: 1000}, 6000) == []  # 7 days back is in the lookback
    assert run({8: 100_000, 1: 1000}, 6000) == [WARNING]  # 8 days back is not: 6x
    assert run({2: 300}, 5000) == [CRITICAL]  # 16.7x > 15x
    assert run({2: 1000}, 5000) == []  # exactly 5x does not fire


def test_cycle_outlier_uses_the_upper_median() -> None:
    spends = [1000, 1000, 1000, 2500, 2500, 20_000]  # upper median 2500: 8x; the mean of the
    cycle = {f"u{i}@example.com": s for i, s in enumerate(spends)}  # middle pair would give 11x
    assert detect_cycle_outliers(snapshot(cycle=cycle), DEFAULTS, NOW) == []
    cycle["u5@example.com"] = 25_100  # 10.04x
    (anomaly,) = detect_cycle_outliers(snapshot(cycle=cycle), DEFAULTS, NOW)
    assert (anomaly.user_email, anomaly.severity) == ("u5@example.com", WARNING)
    assert anomaly.threshold == 25_000
    cycle["u5@example.com"] = 75_100  # 30.04x
    assert detect_cycle_outliers(snapshot(cycle=cycle), DEFAULTS, NOW)[0].severity == CRITICAL


def test_cycle_outlier_needs_five_spenders_and_a_ten_dollar_median() -> None:
    four = {f"u{i}@example.com": 1000 for i in range(3)} | {"big@example.com": 1_000_000}
    assert (
        detect_cycle_outliers(snapshot(cycle=four | {"idle@example.com": 0}), DEFAULTS, NOW) == []
    )
    cheap = {f"u{i}@example.com": 999 for i in range(5)} | {"big@example.com": 1_000_000}
    assert detect_cycle_outliers(snapshot(cycle=cheap), DEFAULTS, NOW) == []


# ---- layer 1: thresholds --------------------------------------------------------------------


def test_cycle_spend_cap_strictly_above_and_critical_above_twice() -> None:
    config = PeerConfig(max_spend_cents_per_cycle=100_000)
    cycle = {"at@example.com": 100_000, "over@example.com": 100_001, "way@example.com": 200_001}
    found = {
        a.user_email: a.severity for a in detect_thresholds(snapshot(cycle=cycle), config, NOW)
    }
    assert found == {"over@example.com": WARNING, "way@example.com": CRITICAL}
    assert detect_thresholds(snapshot(cycle=cycle), DEFAULTS, NOW) == []  # 0 = off


def test_request_cap_reads_today_utc_not_the_target_date() -> None:
    config = PeerConfig(max_requests_per_day=100)
    yesterday = TODAY - timedelta(days=1)
    daily = {
        yesterday: {"old@example.com": usage(5000, requests=500)},
        TODAY: {
            "a@example.com": usage(0, requests=101, model="auto"),
            "b@example.com": usage(0, requests=201),
            "c@example.com": usage(0, requests=100),
        },
    }
    found = detect_thresholds(snapshot(daily), config, NOW)
    assert [(a.user_email, a.severity) for a in found] == [
        ("a@example.com", WARNING),
        ("b@example.com", CRITICAL),
    ]
    assert found[0].message == "101 agent requests today exceeds limit of 100 (model: auto)"
    assert found[0].diagnosis_model == "auto"
    just_after_midnight = datetime(2026, 5, 21, 0, 5, tzinfo=UTC)
    data = snapshot(daily, now=just_after_midnight)
    assert detect_thresholds(data, config, just_after_midnight) == []


def test_team_budget_at_or_above_and_critical_from_ten_percent_more() -> None:
    config = PeerConfig(team_budget_dollars=1000)
    for spends, severity in (
        ([50_000, 49_999], None),
        ([50_000, 50_000], WARNING),
        ([110_000], CRITICAL),
    ):
        cycle = {f"u{i}@example.com": s for i, s in enumerate(spends)}
        found = detect_thresholds(snapshot(cycle=cycle), config, NOW)
        assert [a.severity for a in found] == ([severity] if severity else [])
        for a in found:
            assert (a.user_email, a.metric, a.threshold) == ("team", "team_budget", 100_000)
            assert a.value == sum(spends)


def test_limited_users_and_plan_exhaustion() -> None:
    (limited,) = detect_thresholds(snapshot(limited=3), DEFAULTS, NOW)
    assert (limited.user_email, limited.metric, limited.severity) == (
        "team",
        "users_limited",
        WARNING,
    )
    daily = {
        CYCLE + timedelta(days=2): {"a@example.com": DayUsage(900, 10, "auto", 4)},
        CYCLE + timedelta(days=3): {"a@example.com": DayUsage(900, 10, "auto", 6)},
    }
    assert detect_thresholds(snapshot(daily), DEFAULTS, NOW) == []  # info anomalies are off
    (info,) = detect_thresholds(snapshot(daily), PeerConfig(enable_info_anomalies=True), NOW)
    assert (info.metric, info.severity, info.value) == ("plan_exhausted", INFO, 10)
    assert "day 3 of cycle (2026-05-13). 10 extra requests" in info.message


# ---- orchestration: dedup, auto-resolve, no escalation ----------------------------------------


def spike_and_outlier(now: datetime, today_cents: int) -> PeerData:
    """`big` spikes today and is a cycle outlier: both are `big:trend:spend`."""
    today = now.date()
    daily = {
        today - timedelta(days=1): {"big@example.com": usage(1000)},
        today: {"big@example.com": usage(today_cents)},
    }
    cycle = {f"u{i}@example.com": 2000 for i in range(5)} | {"big@example.com": 60_000}
    return snapshot(daily, cycle, now=now)


def test_same_key_twice_in_one_run_is_inserted_twice() -> None:
    detector = PeerDetector(DEFAULTS)
    new = detector.run(NOW, spike_and_outlier(NOW, 6000))
    assert [a.rule for a in new] == ["spike", "cycle_outlier"]
    assert {a.key for a in new} == {"big@example.com:trend:spend"}
    assert len(detector.open_anomalies) == 2
    assert detector.run(NOW + timedelta(hours=1), spike_and_outlier(NOW, 6000)) == []


def test_an_open_cycle_outlier_hides_a_new_spike() -> None:
    detector = PeerDetector(DEFAULTS)
    quiet = spike_and_outlier(NOW, 1000)  # only the cycle outlier
    assert [a.rule for a in detector.run(NOW, quiet)] == ["cycle_outlier"]
    later = NOW + timedelta(days=1)
    assert detector.run(later, spike_and_outlier(later, 20_000)) == []  # the spike: suppressed
    assert len(detector.open_anomalies) == 1


def test_auto_resolve_then_alert_again() -> None:
    config = PeerConfig(max_requests_per_day=100)
    detector = PeerDetector(config)
    busy = snapshot({TODAY: {"a@example.com": usage(0, requests=150)}})
    assert len(detector.run(NOW, busy)) == 1
    tomorrow = NOW + timedelta(days=1)
    calm = snapshot({TODAY: {"a@example.com": usage(0, requests=150)}}, now=tomorrow)
    assert detector.run(tomorrow, calm) == []  # a new UTC day: not produced, so resolved
    assert detector.open_anomalies == []
    assert [when for _, when in detector.resolved] == [tomorrow]
    again = snapshot({tomorrow.date(): {"a@example.com": usage(0, requests=150)}}, now=tomorrow)
    assert len(detector.run(tomorrow + timedelta(hours=1), again)) == 1


def test_no_escalation_from_warning_to_critical() -> None:
    config = PeerConfig(max_requests_per_day=100)
    detector = PeerDetector(config)
    (first,) = detector.run(NOW, snapshot({TODAY: {"a@example.com": usage(0, requests=150)}}))
    assert first.severity == WARNING
    worse = snapshot({TODAY: {"a@example.com": usage(0, requests=900)}})
    assert detector.run(NOW + timedelta(hours=1), worse) == []
    assert [a.severity for a in detector.open_anomalies] == [WARNING]


def test_config_from_scenario_settings() -> None:  # also what PeerDetector(settings) does
    settings = {
        "static_caps": {
            "user_daily_requests": 590,
            "user_daily_tokens": 460_000_000,
            "user_cycle_spend_usd": "2000",
            "team_cycle_budget_usd": "101000",
        }
    }
    config = PeerConfig.from_detection_settings(settings)
    assert config.max_spend_cents_per_cycle == 200_000
    assert config.max_requests_per_day == 590
    assert config.team_budget_dollars == 101_000
    assert (config.zscore_multiplier, config.spend_spike_multiplier) == (2.5, 5.0)
    assert (config.cycle_outlier_multiplier, config.enable_info_anomalies) == (10.0, False)
    assert PeerDetector(settings).config == config


def test_anomalies_become_alerts() -> None:
    (anomaly,) = detect(snapshot(limited=1), DEFAULTS, NOW)
    alert = anomaly.to_alert()
    assert alert == Alert(
        subject="team",
        detector="users_limited",
        severity=WARNING,
        at=NOW,
        window_start=datetime(2026, 5, 11, tzinfo=UTC),
        window_end=NOW,
        fingerprint="team:threshold:users_limited",
    )


# ---- the peer's view of scenario events ---------------------------------------------------------


def event(
    at: datetime, email: str, micros: int, model: str = "gpt-5.2", kind: str = "included"
) -> ScenarioEvent:
    return ScenarioEvent(
        occurred_at=at,
        user_email=email,
        model=model,
        kind=kind,
        cost_micros=micros,
        input_tokens=1,
        output_tokens=1,
        cache_read_tokens=0,
        cache_write_tokens=0,
        request_units=Decimal(1),
        is_headless=False,
        max_mode=False,
        event_id=f"{email}-{at.timestamp()}",
    )


def make_events() -> list[ScenarioEvent]:
    base = datetime(2026, 5, 9, 9, tzinfo=UTC)
    events = []
    for d in range(4):
        for h in range(6):
            at = base + timedelta(days=d, hours=h)
            events.append(event(at, "a@example.com", 1_234_567, "auto" if h < 4 else "gpt-5.2"))
            events.append(event(at, "b@example.com", 5_000, kind="usage_based"))
    return sorted(events, key=lambda e: e.occurred_at)


def test_feed_matches_the_one_off_view() -> None:
    events = make_events()
    feed = PeerFeed(events)
    moment = datetime(2026, 5, 9, tzinfo=UTC)
    while moment < datetime(2026, 5, 13, tzinfo=UTC):
        cycle = CYCLE if moment.date() >= CYCLE else date(2026, 4, 11)
        assert feed.snapshot(moment, cycle) == peer_data_from_events(events, moment, cycle)
        moment += timedelta(hours=5)
    with pytest.raises(ValueError, match="forward"):
        feed.snapshot(moment - timedelta(hours=6), CYCLE)
    known = PeerFeed(events, cycle_starts=[date(2026, 4, 11), CYCLE])
    at = datetime(2026, 5, 12, 11, tzinfo=UTC)
    assert known.snapshot(at) == peer_data_from_events(events, at, CYCLE)
    with pytest.raises(ValueError, match="cycle"):
        PeerFeed(events, cycle_starts=[CYCLE]).snapshot(datetime(2026, 5, 1, tzinfo=UTC))


def test_the_view_holds_exact_cents_models_and_the_cycle() -> None:
    events = make_events()
    at = datetime(2026, 5, 12, 11, tzinfo=UTC)  # an event at exactly `now` counts
    data = peer_data_from_events(events, at, CYCLE)
    a = data.daily[date(2026, 5, 10)]["a@example.com"]
    assert a == DayUsage(spend_cents=741, agent_requests=6, most_used_model="auto")
    assert data.daily[date(2026, 5, 12)]["a@example.com"].agent_requests == 3
    assert data.daily[date(2026, 5, 12)]["b@example.com"].usage_based_requests == 3
    assert data.cycle_spend_cents["a@example.com"] == micros_to_cents(9 * 1_234_567)
    assert data.cycle_requests["b@example.com"] == 9
    assert data.target_date == date(2026, 5, 12)
    assert micros_to_cents(5_000) == 0  # half-even
    assert micros_to_cents(15_000) == 2
    assert micros_to_cents(25_000) == 2


# ---- scoring ----------------------------------------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)


def tiny_scenario() -> Scenario:
    developers = [
        Developer("a@example.com", "A", START - timedelta(days=100), None, 0, "regular"),
        Developer("b@example.com", "B", START + timedelta(days=5), None, 0, "new_hire"),
    ]
    incidents = [
        LabelledIncident(
            "i1",
            "spend_spike",
            "a@example.com",
            START + timedelta(days=2),
            START + timedelta(days=2, hours=8),
            ("spend_spike",),
            "",
        ),
        LabelledIncident(
            "i2",
            "runaway_agent",
            "b@example.com",
            START + timedelta(days=6),
            START + timedelta(days=6, hours=3),
            ("runaway",),
            "",
        ),
        LabelledIncident(
            "i3",
            "team_budget",
            "team",
            START + timedelta(days=8),
            START + timedelta(days=10),
            ("team_budget",),
            "",
        ),
    ]
    return Scenario(
        seed=0,
        start=START,
        end=START + timedelta(days=10),
        timezone="UTC",
        developers=developers,
        cycle_starts=[date(2025, 12, 15)],
        incidents=incidents,
        detection_settings={},
        events=[],
    )


def alert(subject: str, detector: str, at: datetime, severity: str = WARNING) -> Alert:
    return Alert(subject, detector, severity, at, at, at, f"{subject}:{detector}")


def tiny_alerts(s: Scenario) -> list[Alert]:
    i1, i2, i3 = s.incidents
    minute = timedelta(minutes=1)
    return [
        alert("a@example.com", "spend_spike", i1.onset + 30 * minute),  # true, i1 at 30 min
        alert("a@example.com", "zscore", i1.onset + 120 * minute),  # true, not expected
        alert("A@example.com", "spend_spike", i1.end + timedelta(hours=23)),  # true: grace
        alert("a@example.com", "spend_spike", i1.end + timedelta(hours=25)),  # false: too late
        alert("a@example.com", "spend_spike", i1.onset - minute),  # false: too early
        alert("b@example.com", "runaway", i2.onset + 5 * minute, INFO),  # ignored
        alert("b@example.com", "zscore", i2.onset + 90 * minute),  # true: i2 at 90 min
        alert("team", "team_budget", i3.onset + 10 * minute, CRITICAL),  # true: i3 at 10 min
        alert("c@example.com", "spend_spike", i1.onset),  # false: nobody's incident
    ]


def test_alerts_are_classified_and_incidents_timed() -> None:
    s = tiny_scenario()
    report = score(s, tiny_alerts(s))
    assert (report.incidents, report.detected, report.recall) == (3, 3, 1.0)
    assert (report.alerts, report.true_alerts, report.false_alerts) == (8, 5, 3)
    assert s.developer_days() == 15
    assert report.false_per_100_developer_days == pytest.approx(20.0)
    assert report.median_delay_minutes == 30
    assert report.p95_delay_minutes == 90  # nearest rank of three
    delays = {o.incident.incident_id: o.delay for o in report.outcomes}
    assert delays == {
        "i1": timedelta(minutes=30),
        "i2": timedelta(minutes=90),
        "i3": timedelta(minutes=10),
    }
    assert report.outcomes[0].detectors == ("spend_spike", "zscore")
    assert {a.at for a in report.false_alert_list} == {
        s.incidents[0].end + timedelta(hours=25),
        s.incidents[0].onset - timedelta(minutes=1),
        s.incidents[0].onset,
    }


def test_per_detector_recall_counts_only_its_own_alerts() -> None:
    s = tiny_scenario()
    rows = {d.detector: d for d in score(s, tiny_alerts(s)).by_detector}
    spike = rows["spend_spike"]
    assert (spike.alerts, spike.true_alerts, spike.false_alerts) == (5, 2, 3)
    assert (spike.expected, spike.detected, spike.recall) == (1, 1, 1.0)
    runaway = rows["runaway"]  # b's runaway was caught only by zscore (and an info alert)
    assert (runaway.alerts, runaway.expected, runaway.detected, runaway.recall) == (0, 1, 0, 0.0)
    zscore = rows["zscore"]
    assert (zscore.alerts, zscore.true_alerts, zscore.expected) == (2, 2, 0)
    assert rows["team_budget"].median_delay_minutes == 10
    kinds = {k.kind: k for k in score(s, tiny_alerts(s)).by_kind}
    assert kinds["runaway_agent"].median_delay_minutes == 90
    assert kinds["spend_spike"].recall == 1.0


def test_grace_decides_late_alerts() -> None:
    s = tiny_scenario()
    strict = score(s, tiny_alerts(s), grace=timedelta(0))
    assert (strict.true_alerts, strict.false_alerts) == (4, 4)
    nothing = score(s, [])
    assert (nothing.detected, nothing.recall, nothing.median_delay_minutes) == (0, 0.0, None)


def test_report_rows_and_json() -> None:
    s = tiny_scenario()
    report = score(s, tiny_alerts(s))
    rows = report.rows()
    assert all(len(row) == len(Report.COLUMNS) for row in rows)
    assert rows[0][:5] == ("all", "20.00 false / 100 dev-days", "3", "3", "100%")
    assert [r[1] for r in rows if r[0] == "kind"] == ["runaway_agent", "spend_spike", "team_budget"]
    document = json.loads(report.to_json())
    assert document["false_alerts"] == 3
    assert document["by_detector"][0]["detector"] == "runaway"
    assert document["incidents_detail"][0]["delay_minutes"] == 30
