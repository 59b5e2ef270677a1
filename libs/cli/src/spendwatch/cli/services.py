"""Which spendwatch services exist in this installation."""

from __future__ import annotations

import importlib.util

# Start order for `spendwatch dev`: producers before consumers, the API last.
SERVICES = ("collector", "detector", "incidents", "notifier", "api")


def is_runnable(name: str) -> bool:
    """True if `spendwatch.<name>` is a known service that has a `__main__` module."""
    if name not in SERVICES:
        return False
    try:
        return importlib.util.find_spec(f"spendwatch.{name}.__main__") is not None
    except ModuleNotFoundError:  # the service's package is not installed at all
        return False


def runnable_services() -> list[str]:
    """The services that can be started, in start order."""
    return [name for name in SERVICES if is_runnable(name)]
