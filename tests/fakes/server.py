"""What every fake third party shares: an aiohttp app on a free port of 127.0.0.1."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiohttp import web

from spendwatch.common.localstack import free_port


class LocalServer:
    """Subclasses add their routes in `routes`; `start`/`stop` or `async with`."""

    port: int = 0
    _runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        """Add the fake's routes."""
        raise NotImplementedError

    async def start(self) -> Self:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
