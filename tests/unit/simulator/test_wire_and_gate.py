"""Cents on the wire, error bodies, the rate limiter and the fault queue."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from spendwatch.simulator import wire
from spendwatch.simulator.server import Fault, SimulatorState, make_app
from spendwatch.simulator.team import SimulatedTeam


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def team() -> SimulatedTeam:
    return SimulatedTeam(seed=2, developers=3, days=2, anomalies=False)


def test_cents_survive_json_exactly() -> None:
    rng = random.Random(5)
    for micros in [0, 1, 9_999, 10_000, 373_300, *(rng.randrange(10**12) for _ in range(5000))]:
        text = json.dumps({"c": wire.cents(micros)})
        assert json.loads(text, parse_float=Decimal)["c"] * 10_000 == micros
    assert wire.cents(80_000) == 8
    assert isinstance(wire.cents(80_000), int)
    assert wire.cents(Decimal("123456.75")) == 12.345675
    assert json.dumps(wire.cents(Decimal("999999999999.99"))) == "99999999.999999"


def test_whole_cents_round_half_even() -> None:
    assert [wire.whole_cents(m) for m in (5_000, 15_000, 25_000, 25_001, 0)] == [0, 2, 2, 3, 0]


def test_error_bodies_are_cursors() -> None:
    assert wire.error(401) == {"error": "Unauthorized", "message": "Invalid API key"}
    assert wire.error(429) == {
        "error": "Too Many Requests",
        "message": "Rate limit exceeded. Please try again later.",
    }
    assert wire.error(400) == {"error": "Bad Request", "message": "Some users are not in the team"}
    assert wire.error(403)["message"] == "Enterprise access required"
    assert wire.error(404) == {"error": "Not Found", "message": "Resource not found"}
    assert wire.error(500)["error"] == "Internal Server Error"


def test_rate_limit_is_a_rolling_minute(team: SimulatedTeam) -> None:
    clock = FakeClock()
    state = SimulatorState(team, "k", 20, clock)
    for _ in range(20):
        assert state.admit("k") is None
        clock.now += 1
    assert state.admit("k") == 40  # the first request leaves the window at t+60
    clock.now += 39.5
    assert state.admit("k") == 1
    clock.now += 0.5
    assert state.admit("k") is None
    assert state.admit("k") == 1
    assert state.admit("other key") is None


def test_faults_match_endpoint_and_run_out(team: SimulatedTeam) -> None:
    state = SimulatorState(team, "k", 20)
    any_endpoint = Fault("429", 1)
    state.faults += [Fault("500", 2, endpoint="spend"), any_endpoint]
    assert state.take_fault("members") is any_endpoint
    assert state.take_fault("members") is None  # the 429 is used up
    assert [state.take_fault("spend") is not None for _ in range(3)] == [True, True, False]
    assert state.faults == []


def test_make_app_refuses_a_zero_limit(team: SimulatedTeam) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        make_app(team, admin_key="k", rate_limit_per_minute=0)
