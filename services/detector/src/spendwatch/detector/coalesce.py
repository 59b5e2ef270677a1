"""Notices that arrive while an evaluation runs are evaluated together in the next one.

Under load the sink commits many small batches; evaluating each alone repeats the same reads.
Each notice's handler waits for the evaluation that covered it, so a notice is acked only after
its keys were evaluated, and a failed evaluation fails (and redelivers) every notice in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from spendwatch.common.events import UsageCommittedV1

Evaluate = Callable[[list[UsageCommittedV1]], Awaitable[Any]]


class Coalescer:
    """One evaluation at a time over everything submitted meanwhile."""

    def __init__(self, evaluate: Evaluate) -> None:
        self._evaluate = evaluate
        self._pending: list[tuple[UsageCommittedV1, asyncio.Future[None]]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, notice: UsageCommittedV1) -> None:
        """Return once an evaluation covering `notice` has finished; raise if it failed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((notice, done))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._evaluate([notice for notice, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for _, done in batch:
                    done.set_result(None)
