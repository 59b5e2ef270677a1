"""The simulator's exceptions.

SpendwatchError                  (spendwatch.common.errors)
├── ConfigError                  team parameters out of range (developers, days, seed)
└── SimulatorError
    ├── InvalidSimRequestError   a side-endpoint request (late event, fault) is malformed
    │   └── DuplicateEventError  a late event would repeat an existing (user, timestamp)
    └── ScenarioError            a labelled scenario broke one of its own guarantees
"""

from __future__ import annotations

from spendwatch.common.errors import SpendwatchError


class SimulatorError(SpendwatchError):
    """Base of the simulator's own errors."""


class InvalidSimRequestError(SimulatorError):
    """A request to a `/_sim/` side endpoint is malformed; the server answers 400."""


class DuplicateEventError(InvalidSimRequestError):
    """A late event would share its user and timestamp with an existing event; answers 409."""


class ScenarioError(SimulatorError):
    """A labelled scenario broke one of its guarantees (a cap crossed outside an incident...)."""
