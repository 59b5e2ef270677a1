"""A clock the test moves: what services take as `clock=` instead of the real time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class Clock:
    """`clock()` is `clock.now`; set `now` to move time."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now
