"""Runaway agents: trailing windows, usual peaks, bursts and headless runs.

Every expected number is worked out by hand from the spec in the comment next to it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from spendwatch.common.thresholds import Runaway
from spendwatch.detector.burst_rules import (
    Peaks,
    Request,
    WindowTotal,
    burst_holds,
    headless_run,
    runaway,
    trailing_windows,
    usual_peaks,
)
from spendwatch.detector.findings import Finding

DAY = date(2026, 11, 21)
T0 = datetime(2026, 11, 21, 9, tzinfo=UTC)
UTC_TZ = ZoneInfo("UTC")
CRITICAL = Decimal(3)
WINDOW = timedelta(minutes=15)
OPUS = "claude-4.6-opus-max"
SONNET = "claude-4.5-sonnet"
ALICE = "alice@x.com"

# p99 trusted (50 windows): limits 5 x $4 = $20, 5 x 100,000 = 500,000 tokens, max(5 x 12, 60) = 60
TRUSTED = Peaks(spend=Decimal(4), tokens=100_000, requests=12, windows=50)
# 49 windows: p99 not trusted: spend 5 x the $10 floor = $50, 60 requests, tokens not judged
UNTRUSTED = Peaks(spend=Decimal("0.50"), tokens=100, requests=2, windows=49)
NO_HISTORY = Peaks(Decimal(0), 0, 0, 0)


def req(
    offset: timedelta,
    spend: str | int = "0.01",
    tokens: int = 1000,
    *,
    headless: bool = False,
    model: str = OPUS,
) -> Request:
    return Request(
        at=T0 + offset, spend=Decimal(spend), tokens=tokens, headless=headless, model=model
    )


def every(
    n: int,
    step: timedelta,
    spend: str | int = "0.01",
    *,
    start: timedelta = timedelta(0),
    tokens: int = 1000,
    headless: bool = False,
    model: str = OPUS,
) -> list[Request]:
    return [req(start + i * step, spend, tokens, headless=headless, model=model) for i in range(n)]


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def run(
    requests: list[Request],
    peaks: Peaks = TRUSTED,
    s: Runaway | None = None,
    tz: ZoneInfo = UTC_TZ,
    since: datetime | None = None,
) -> Finding | None:
    return runaway(ALICE, DAY, requests, peaks, s or Runaway(), CRITICAL, tz, since=since)


# --- trailing windows --------------------------------------------------------------------------


def test_trailing_windows_two_pointer_sums() -> None:
    requests = [
        req(minutes(0), "1", 10, model=SONNET),
        req(minutes(5), "2", 20, model=OPUS),
        req(minutes(10), "3", 30, model=SONNET),
        req(minutes(15), "4", 40, model=OPUS),  # exactly 15 min after the first: drops it
        req(minutes(30), "5", 50, model=OPUS),  # exactly 15 min after the 4th: alone
    ]
    totals = trailing_windows(requests, WINDOW)
    assert [(t.first, t.end, t.spend, t.tokens, t.requests) for t in totals] == [
        (T0, T0, Decimal(1), 10, 1),
        (T0, T0 + minutes(5), Decimal(3), 30, 2),  # 1 + 2
        (T0, T0 + minutes(10), Decimal(6), 60, 3),  # 1 + 2 + 3
        (T0 + minutes(5), T0 + minutes(15), Decimal(9), 90, 3),  # 2 + 3 + 4
        (T0 + minutes(30), T0 + minutes(30), Decimal(5), 50, 1),
    ]
    # the most frequent model in each window
    assert [totals[i].top_model for i in (0, 2, 3, 4)] == [SONNET, SONNET, OPUS, OPUS]


def test_requests_just_under_a_window_apart_share_it() -> None:
    [_, second] = trailing_windows([req(seconds(0)), req(WINDOW - seconds(0.001))], WINDOW)
    assert second.requests == 2
    [_, apart] = trailing_windows([req(seconds(0)), req(WINDOW)], WINDOW)
    assert apart.requests == 1


def test_trailing_windows_of_nothing() -> None:
    assert trailing_windows([], WINDOW) == []


def test_trailing_window_total_record() -> None:
    [total] = trailing_windows([req(minutes(1), "0.25", 7)], WINDOW)
    assert total == WindowTotal(
        first=T0 + minutes(1),
        end=T0 + minutes(1),
        spend=Decimal("0.25"),
        tokens=7,
        requests=1,
        top_model=OPUS,
    )


# --- usual peaks -------------------------------------------------------------------------------


def spaced(values: list[int]) -> list[Request]:
    """One request per window (20 min apart): each window total is that request."""
    return [req(minutes(20 * i), v, tokens=10 * v) for i, v in enumerate(values)]


def test_usual_peaks_nearest_rank_p99_of_100_windows() -> None:
    # n = 100: rank ceil(0.99 x 100) = 99 -> the 99th smallest of $1..$100 is $99
    peaks = usual_peaks(spaced(list(range(1, 101))), WINDOW)
    assert peaks == Peaks(spend=Decimal(99), tokens=990, requests=1, windows=100)


def test_usual_peaks_nearest_rank_p99_of_101_and_50_windows() -> None:
    # n = 101: rank ceil(99.99) = 100 -> $100 of $1..$101
    assert usual_peaks(spaced(list(range(1, 102))), WINDOW).spend == Decimal(100)
    # n = 50: rank ceil(49.5) = 50 -> the largest
    assert usual_peaks(spaced(list(range(1, 51))), WINDOW).spend == Decimal(50)
    # n = 1: rank ceil(0.99) = 1 -> the only one
    assert usual_peaks(spaced([7]), WINDOW) == Peaks(Decimal(7), 70, 1, 1)


def test_usual_peaks_sorts_each_metric_on_its_own() -> None:
    # spend rises while tokens fall: the p99 of each is taken separately
    history = [req(minutes(20 * i), i + 1, tokens=1000 * (100 - i)) for i in range(100)]
    peaks = usual_peaks(history, WINDOW)
    # spend $1..$100 -> $99; tokens 1,000..100,000 -> 99,000
    assert (peaks.spend, peaks.tokens) == (Decimal(99), 99_000)


def test_usual_peaks_counts_requests_per_window() -> None:
    # 100 requests 5 min apart: windows hold 1, 2, then 3 requests (15 min apart drops out)
    peaks = usual_peaks(every(100, minutes(5)), WINDOW)
    assert (peaks.requests, peaks.windows) == (3, 100)
    # spend: $0.01, $0.02, then 98 windows of $0.03 -> the 99th smallest is $0.03
    assert peaks.spend == Decimal("0.03")


def test_usual_peaks_without_history() -> None:
    assert usual_peaks([], WINDOW) == NO_HISTORY


# --- bursts ------------------------------------------------------------------------------------


def test_burst_fires_only_above_five_times_the_p99() -> None:
    # 20 x $1 in 190 s = $20 = 5 x $4 (requests 20 < 60, tokens 20,000 < 500,000)
    at_limit = every(20, seconds(10), "1")
    assert run(at_limit) is None
    found = run([*at_limit, req(seconds(195), "0.01")])  # $20.01
    assert found is not None
    assert (found.metric, found.value, found.threshold, found.baseline) == (
        "window_spend",
        Decimal("20.01"),
        Decimal("20.00"),
        Decimal("4.00"),
    )
    assert found.severity == "warning"


def test_burst_warning_then_critical() -> None:
    # p99 $4, limit $20: critical when spend - 4 > 3 x (20 - 4) = 48, i.e. above $52
    fifty_two = every(26, seconds(10), "2")
    warn = run(fifty_two)
    crit = run([*fifty_two, req(seconds(265), "0.01")])
    assert warn is not None
    assert crit is not None
    assert (warn.severity, crit.severity) == ("warning", "critical")


def test_burst_finding_and_exact_message() -> None:
    # 30 x $0.70 = $21 in 290 s: 21 / 20 = 1.05 of the limit; 21 / 4 = 5.25 -> "5.3x"
    found = run(every(30, seconds(10), "0.70"))
    assert found == Finding(
        detector="runaway",
        subject=ALICE,
        metric="window_spend",
        unit="usd",
        value=Decimal("21.00"),
        threshold=Decimal("20.00"),
        baseline=Decimal("4.00"),
        window_start=datetime(2026, 11, 21, tzinfo=UTC),
        window_end=datetime(2026, 11, 22, tzinfo=UTC),
        window_key="2026-11-21",
        model=OPUS,
        message=(
            f"Alice: $21 in 15 minutes (5.3x their usual peak of $4.00), 30 requests, mostly {OPUS}"
        ),
        severity="warning",
        evidence_first_at=T0,  # the first request of the worst window
    )
    assert found.fingerprint == "alice@x.com:runaway:2026-11-21"


def test_burst_window_follows_the_team_timezone() -> None:
    found = run(every(30, seconds(10), "0.70"), tz=ZoneInfo("America/Los_Angeles"))
    assert found is not None
    # Nov 21 is PST (UTC-8): 08:00 UTC to 08:00 UTC
    assert (found.window_start, found.window_end) == (
        datetime(2026, 11, 21, 8, tzinfo=UTC),
        datetime(2026, 11, 22, 8, tzinfo=UTC),
    )


def test_untrusted_p99_needs_five_times_the_spend_floor() -> None:
    # 49 windows: the p99 is not trusted, the limit is 5 x the $10 floor = $50 (not 5 x $0.50)
    fifty = every(50, seconds(10), "1")  # 490 s, 50 requests < 60
    assert run(fifty, UNTRUSTED) is None
    found = run([*fifty, req(seconds(495), "0.01")], UNTRUSTED)
    assert found is not None
    assert (found.value, found.threshold, found.baseline) == (
        Decimal("50.01"),
        Decimal("50.00"),
        Decimal("0.50"),
    )
    # critical only above 0.50 + 3 x 49.50 = $149; the untrusted p99 is not quoted
    assert found.message.startswith(
        "Alice: $50 in 15 minutes (too little history for a usual peak), 51 requests"
    )
    assert found.severity == "warning"


def test_a_trusted_small_p99_is_floored_at_ten_dollars() -> None:
    # 50 windows, p99 $1: 5 x $1 = $5 < $10 floor
    small = Peaks(spend=Decimal(1), tokens=100_000, requests=12, windows=50)
    ten = every(10, seconds(10), "1")
    assert run(ten, small) is None
    found = run([*ten, req(seconds(95), "0.01")], small)
    assert found is not None
    assert (found.value, found.threshold) == (Decimal("10.01"), Decimal("10.00"))
    assert "(10.0x their usual peak of $1.00)" in found.message  # 10.01 / 1


def test_a_burst_needs_three_requests() -> None:
    # two $100 requests are far over the $20 limit but are not a runaway; a third makes one
    assert run([req(seconds(0), 100), req(seconds(10), 100)]) is None
    found = run([req(seconds(0), 100), req(seconds(10), 100), req(seconds(20), "0.01")])
    assert found is not None
    assert (found.value, found.evidence_first_at) == (Decimal("200.01"), T0)


def test_untrusted_p99_does_not_judge_tokens() -> None:
    # 5 x 10M tokens at $0.01: only the $50 and 60-request limits apply, neither is reached
    assert run(every(5, seconds(10), tokens=10_000_000), UNTRUSTED) is None


def test_requests_floor_without_history() -> None:
    # no history: limits $50 and 60 requests; 61 x $0.01 = $0.61 in 300 s
    assert run(every(60, seconds(5)), NO_HISTORY) is None
    found = run(every(61, seconds(5)), NO_HISTORY)
    assert found is not None
    assert (found.metric, found.unit, found.value, found.threshold, found.baseline) == (
        "window_requests",
        "requests",
        Decimal(61),
        Decimal(60),
        Decimal(0),
    )
    assert found.severity == "warning"
    assert found.message == (
        "Alice: 61 requests in 15 minutes (too little history for a usual peak), $0.61, "
        f"mostly {OPUS}"
    )


def test_requests_critical_without_history() -> None:
    # baseline 0, limit 60: critical when requests > 3 x 60 = 180 (181 x 4 s = 720 s < 15 min)
    warn = run(every(180, seconds(4)), NO_HISTORY)
    crit = run(every(181, seconds(4)), NO_HISTORY)
    assert warn is not None
    assert crit is not None
    assert (warn.severity, crit.severity) == ("warning", "critical")


def test_token_burst_message() -> None:
    # 6 x 100,000 = 600,000 > 500,000; 600,000 / 100,000 = 6.0x; $0.06 and 6 requests
    found = run(every(6, seconds(10), tokens=100_000))
    assert found is not None
    assert (found.metric, found.unit, found.value, found.threshold, found.baseline) == (
        "window_tokens",
        "tokens",
        Decimal(600_000),
        Decimal(500_000),
        Decimal(100_000),
    )
    # critical only above 100,000 + 3 x 400,000 = 1,300,000
    assert found.severity == "warning"
    assert found.message == (
        "Alice: 600,000 tokens in 15 minutes (6.0x their usual peak of 100,000), 6 requests, "
        f"$0.06, mostly {OPUS}"
    )


def test_the_metric_furthest_over_its_limit_is_reported() -> None:
    # 66 x $0.50: spend 33 / 20 = 1.65 beats requests 66 / 60 = 1.10
    spend_wins = run(every(66, seconds(10), "0.50"))
    # 90 x $0.25 in 890 s: spend 22.50 / 20 = 1.125 loses to requests 90 / 60 = 1.5
    requests_win = run(every(90, seconds(10), "0.25"))
    assert spend_wins is not None
    assert requests_win is not None
    assert (spend_wins.metric, requests_win.metric) == ("window_spend", "window_requests")


def test_the_worst_window_and_since() -> None:
    first = every(30, seconds(10), "1")  # $30, last at 09:04:50
    later = every(22, seconds(10), "1", start=timedelta(hours=2))  # $22, last at 11:03:30
    found = run([*first, *later])
    assert found is not None
    assert (found.value, found.evidence_first_at) == (Decimal("30.00"), T0)
    # only windows ending at `since` or later: the later burst; a window ending at it counts
    last = T0 + timedelta(hours=2) + seconds(210)
    since = run([*first, *later], since=last)
    assert since is not None
    assert (since.value, since.evidence_first_at) == (Decimal("22.00"), T0 + timedelta(hours=2))
    assert run([*first, *later], since=last + seconds(1)) is None


def test_multiplier_zero_turns_bursts_off_but_not_headless_runs() -> None:
    off = Runaway(p99_multiplier=Decimal(0))
    assert run(every(200, seconds(1), "5"), s=off) is None
    headless = every(13, minutes(15), headless=True)  # 09:00 -> 12:00
    found = run(headless, s=off)
    assert found is not None
    assert found.metric == "headless_hours"


def test_a_burst_wins_over_a_headless_run() -> None:
    burst = every(30, seconds(10), "0.70", start=timedelta(hours=4))
    found = run([*every(13, minutes(15), headless=True), *burst])
    assert found is not None
    assert found.metric == "window_spend"


# --- burst holds -------------------------------------------------------------------------------

AT = T0 + timedelta(hours=1)


def at(offset: timedelta, spend: str | int = "0.01", tokens: int = 1000) -> Request:
    return Request(at=AT + offset, spend=Decimal(spend), tokens=tokens, headless=False, model=OPUS)


def test_burst_holds_window_bounds() -> None:
    s = Runaway()
    # trusted p99: $20 limit; a request exactly 15 min before `at` is outside the window
    three = [at(-minutes(3), 1), at(-minutes(2), 1), at(-minutes(1), 1)]
    assert not burst_holds([at(-WINDOW, 30), *three], TRUSTED, s, AT)  # $3 inside
    assert burst_holds([at(-WINDOW + seconds(1), 30), *three], TRUSTED, s, AT)  # $33
    # a request at `at` is inside, one after it is not
    assert burst_holds([*three[1:], at(timedelta(0), 30)], TRUSTED, s, AT)
    assert not burst_holds([*three, at(seconds(1), 30)], TRUSTED, s, AT)


def test_burst_holds_limits() -> None:
    s = Runaway()
    # spend: $20 (= 5 x $4) holds no more, $20.01 does
    assert not burst_holds(
        [at(-minutes(3), 10), at(-minutes(2), 5), at(-minutes(1), 5)], TRUSTED, s, AT
    )
    assert burst_holds(
        [at(-minutes(3), 10), at(-minutes(2), 5), at(-minutes(1), "5.01")], TRUSTED, s, AT
    )
    # requests: the 60-request floor
    sixty = [at(-seconds(i)) for i in range(60)]
    assert not burst_holds(sixty, TRUSTED, s, AT)
    assert burst_holds([*sixty, at(-seconds(60))], TRUSTED, s, AT)
    # tokens: 500,000 (= 5 x 100,000) with a trusted p99; not judged at all without one
    tokens = [at(-minutes(3), tokens=200_000), at(-minutes(2), tokens=200_000)]
    assert not burst_holds([*tokens, at(-minutes(1), tokens=100_000)], TRUSTED, s, AT)
    assert burst_holds([*tokens, at(-minutes(1), tokens=100_001)], TRUSTED, s, AT)
    assert not burst_holds([*tokens, at(-minutes(1), tokens=10**9)], UNTRUSTED, s, AT)
    # without a trusted p99 the spend limit is 5 x $10 = $50
    assert not burst_holds(
        [at(-minutes(3), 30), at(-minutes(2), 10), at(-minutes(1), 10)], UNTRUSTED, s, AT
    )
    assert burst_holds(
        [at(-minutes(3), 30), at(-minutes(2), 10), at(-minutes(1), "10.01")], NO_HISTORY, s, AT
    )


def test_burst_holds_needs_three_requests() -> None:
    assert not burst_holds([at(-minutes(2), 1000), at(-minutes(1), 1000)], TRUSTED, Runaway(), AT)


def test_burst_holds_is_off_with_the_multiplier() -> None:
    off = Runaway(p99_multiplier=Decimal(0))
    burst = [at(-seconds(i), 1000) for i in range(100)]  # $100,000 and 100 requests
    assert burst_holds(burst, TRUSTED, Runaway(), AT)
    assert not burst_holds(burst, TRUSTED, off, AT)


# --- headless runs -----------------------------------------------------------------------------


def headless(
    requests: list[Request], s: Runaway | None = None, tz: ZoneInfo = UTC_TZ
) -> Finding | None:
    return headless_run(ALICE, DAY, requests, s or Runaway(), CRITICAL, tz)


def test_headless_run_of_three_hours_fires() -> None:
    # 13 requests 15 min apart (a 15-min gap is not a break): 09:00 -> 12:00 = 3.0 h
    three = every(13, minutes(15), "0.50", headless=True)
    assert headless(three[:-1]) is None  # 09:00 -> 11:45 = 2.75 h
    found = headless(three)
    assert found == Finding(
        detector="runaway",
        subject=ALICE,
        metric="headless_hours",
        unit="hours",
        value=Decimal("3.0"),
        threshold=Decimal(3),
        baseline=Decimal(0),
        window_start=datetime(2026, 11, 21, tzinfo=UTC),
        window_end=datetime(2026, 11, 22, tzinfo=UTC),
        window_key="2026-11-21",
        model=OPUS,
        # 13 x $0.50 = $6.50
        message=(
            "Alice: a headless agent has run for 3.0 hours without a break (since 09:00 UTC), "
            f"13 requests, $6.50 — mostly {OPUS}"
        ),
        severity="warning",
        evidence_first_at=T0,
    )
    assert run(three, NO_HISTORY) == found  # no burst: runaway reports the headless run


def test_a_gap_longer_than_the_window_breaks_the_run() -> None:
    # 09:00 -> 10:30 every 15 min, then 10:45:01 -> 12:00:01: 3 h + 1 s but a 15:01 gap
    before = every(7, minutes(15), headless=True)
    after = every(6, minutes(15), headless=True, start=minutes(105) + seconds(1))
    assert headless([*before, *after]) is None
    # a gap of exactly 15 min does not break it
    joined = every(6, minutes(15), headless=True, start=minutes(105))
    found = headless([*before, *joined])
    assert found is not None
    assert found.value == Decimal("3.0")


def test_interactive_requests_neither_break_nor_join_a_run() -> None:
    # headless every 15 min 09:00 -> 12:00 with 10:30 missing (a 30-min gap): an interactive
    # request at 10:30 does not bridge it
    gapped = [r for r in every(13, minutes(15), headless=True) if r.at != T0 + minutes(90)]
    assert headless([*gapped, req(minutes(90))]) is None
    # interactive requests inside a run are not counted in it
    inside = [req(minutes(20 + 30 * i)) for i in range(5)]
    found = headless(sorted([*every(13, minutes(15), headless=True), *inside], key=lambda r: r.at))
    assert found is not None
    assert ", 13 requests, " in found.message


@pytest.mark.parametrize("longest_first", [True, False])
def test_the_longest_run_is_reported(longest_first: bool) -> None:
    # a 3.5-hour run (15 requests) and a 1-hour run (5 requests), an hour apart
    # longest first: 09:00 -> 12:30, then 13:30 -> 14:30; else 09:00 -> 10:00, then 11:00 -> 14:30
    long_start, short_start = (
        (minutes(0), minutes(270)) if longest_first else (minutes(120), minutes(0))
    )
    long_run = every(15, minutes(15), headless=True, start=long_start, model=SONNET)
    short_run = every(5, minutes(15), headless=True, start=short_start)
    found = headless(sorted([*long_run, *short_run], key=lambda r: r.at))
    assert found is not None
    assert found.value == Decimal("3.5")
    assert found.evidence_first_at == T0 + long_start
    assert found.model == SONNET
    assert ", 15 requests, " in found.message


def test_the_longest_run_between_two_shorter_ones() -> None:
    short = every(5, minutes(15), headless=True)  # 09:00 -> 10:00
    middle = every(17, minutes(15), headless=True, start=minutes(90))  # 10:30 -> 14:30 (4 h)
    last = every(5, minutes(15), headless=True, start=minutes(360))  # 15:00 -> 16:00
    found = headless([*short, *middle, *last])
    assert found is not None
    assert (found.value, found.evidence_first_at) == (Decimal("4.0"), T0 + minutes(90))


def test_headless_run_warning_then_critical() -> None:
    # baseline 0, limit 3 h: critical above 3 x 3 = 9 h
    nine = every(37, minutes(15), headless=True)  # 36 x 15 min = 9 h
    warn = headless(nine)
    crit = headless([*nine, req(minutes(555), headless=True)])  # 9 h 15 min
    assert warn is not None
    assert crit is not None
    assert (warn.severity, crit.severity) == ("warning", "critical")


def test_headless_run_off_empty_or_single() -> None:
    assert headless(every(13, minutes(15), headless=True), Runaway(headless_hours=0)) is None
    assert headless([]) is None
    assert headless([req(minutes(0), headless=True)]) is None
    assert headless(every(13, minutes(15))) is None  # interactive only


@pytest.mark.parametrize(
    ("tz", "since", "window_start"),
    [
        # Nov 21: PST is UTC-8, IST is UTC+5:30
        ("America/Los_Angeles", "01:00 PST", datetime(2026, 11, 21, 8, tzinfo=UTC)),
        ("Asia/Kolkata", "14:30 IST", datetime(2026, 11, 20, 18, 30, tzinfo=UTC)),
    ],
)
def test_headless_run_in_the_team_timezone(tz: str, since: str, window_start: datetime) -> None:
    found = headless(every(13, minutes(15), headless=True), tz=ZoneInfo(tz))
    assert found is not None
    assert f"(since {since})" in found.message
    assert found.window_start == window_start
    assert found.window_end - found.window_start == timedelta(hours=24)
