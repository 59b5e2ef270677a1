"""Composition root of `python -m spendwatch.simulator`: arguments -> logging -> team -> server."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from datetime import UTC, date, datetime

from spendwatch.common.errors import ConfigError
from spendwatch.common.logging import configure_logging, get_logger
from spendwatch.simulator.server import DEFAULT_ADMIN_KEY, run_simulator
from spendwatch.simulator.team import MAX_DAYS, MAX_DEVELOPERS, SimulatedTeam

log = get_logger("spendwatch.simulator")


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of the simulator."""
    parser = argparse.ArgumentParser(
        prog="python -m spendwatch.simulator",
        description="Serve a simulated Cursor team on Cursor's Admin API (see the module doc).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--developers", type=int, default=60, help=f"1..{MAX_DEVELOPERS}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=30, help=f"history length, 1..{MAX_DAYS}")
    parser.add_argument("--now", type=_moment, default=None, help="simulated now (ISO-8601)")
    parser.add_argument("--cycle-start", type=date.fromisoformat, default=None)
    parser.add_argument("--admin-key", default=DEFAULT_ADMIN_KEY)
    parser.add_argument("--rate-limit", type=int, default=20, help="admin requests per minute")
    parser.add_argument("--no-anomalies", action="store_true", help="a quiet team")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(team: SimulatedTeam, args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with run_simulator(
        team,
        host=args.host,
        port=args.port,
        admin_key=args.admin_key,
        rate_limit_per_minute=args.rate_limit,
    ) as url:
        # `service.ready` is what `spendwatch dev` waits for from every process it runs.
        log.info(
            "service.ready",
            service="simulator",
            url=url,
            developers=team.developers,
            days=team.days,
            seed=team.seed,
            anomalies=len(team.anomalies),
        )
        await stop.wait()
    log.info("simulator.stopped")


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the team, then serve it."""
    args = parse_args(argv)
    configure_logging(args.log_level.upper())
    try:
        team = SimulatedTeam(
            seed=args.seed,
            developers=args.developers,
            days=args.days,
            now=args.now,
            cycle_start=args.cycle_start,
            anomalies=not args.no_anomalies,
        )
    except ConfigError as exc:
        raise SystemExit(f"simulator: {exc}") from exc
    log.info(
        "simulator.generated",
        developers=team.developers,
        events=team.count_events(team.window_start_ms, team.now_ms),
        seconds=round(team.generation_seconds, 2),
    )
    asyncio.run(serve(team, args))
