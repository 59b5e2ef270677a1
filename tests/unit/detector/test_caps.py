"""Daily hard caps on requests and tokens."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from zoneinfo import ZoneInfo

from spendwatch.common.thresholds import StaticCaps
from spendwatch.detector.rules import daily_caps
from tests.unit.detector.test_rules import day

UTC_TZ = ZoneInfo("UTC")


def test_caps_are_off_by_default() -> None:
    heavy = dataclasses.replace(day("900"), requests=10_000, tokens=10**9)
    assert daily_caps(heavy, StaticCaps(), Decimal(3), UTC_TZ) == []


def test_requests_over_the_cap_warn_and_three_times_over_is_critical() -> None:
    caps = StaticCaps(user_daily_requests=200)
    at_cap = dataclasses.replace(day("10"), requests=200)
    assert daily_caps(at_cap, caps, Decimal(3), UTC_TZ) == []
    (warning,) = daily_caps(dataclasses.replace(at_cap, requests=201), caps, Decimal(3), UTC_TZ)
    assert (warning.detector, warning.metric, warning.unit) == (
        "requests_cap",
        "daily_requests",
        "requests",
    )
    assert (warning.value, warning.threshold, warning.severity) == (201, 200, "warning")
    assert warning.message == "Alice: 201 requests today, over the cap of 200"
    assert warning.fingerprint == "alice@x.com:requests_cap:2026-11-21"
    (critical,) = daily_caps(dataclasses.replace(at_cap, requests=601), caps, Decimal(3), UTC_TZ)
    assert critical.severity == "critical"


def test_tokens_and_requests_caps_are_separate_findings() -> None:
    caps = StaticCaps(user_daily_requests=100, user_daily_tokens=1_000_000)
    both = dataclasses.replace(day("10"), requests=150, tokens=2_500_000)
    found = daily_caps(both, caps, Decimal(3), UTC_TZ)
    assert {f.detector for f in found} == {"requests_cap", "tokens_cap"}
    assert len({f.fingerprint for f in found}) == 2
