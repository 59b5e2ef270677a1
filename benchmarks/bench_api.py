"""API benchmark: REST and Grafana read latency on 500 developers x 90 days (~13 M events).

On a nats-server and a PostgreSQL it starts itself in a temporary directory:

1. **Load, through the product's own write path.** The real collector (`python -m
   spendwatch.collector`, no provider key, so it only sinks) runs as a child process while one
   `CursorPass` collects a `SimulatedTeam` (members, spend, groups, daily usage and every usage
   event) from the Cursor simulator. The simulator's developers make ~16 requests a day; the
   issue's load is ~290, so every event is then inserted `--copies - 1` more times, a few
   seconds apart with its own event id, through the sink's `insert_usage_events` (the same
   COPY, `ON CONFLICT DO NOTHING` and rollup SQL), on two connections. Then `VACUUM ANALYZE`.
2. **REST.** The real API (`python -m spendwatch.api`) as a child process; each endpoint is
   called `--requests` times one after another over one keep-alive connection (after 10
   warm-up calls), each drilldown for a different developer. Latency is measured by the client.
3. **Grafana.** Every SQL target of every provisioned dashboard, with Grafana's macros expanded
   for the last 30 days and the variables set to "All" groups / the top spender, run 5 times
   on its own connection; the median per panel, slowest first.

Usage: .venv/bin/python -m benchmarks.bench_api [--developers 500] [--days 90] [--copies 19]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import uvloop
from rich.console import Console
from rich.table import Table

from benchmarks.stack import ServiceProcess, Stack
from spendwatch.collector import repository
from spendwatch.collector.cursor import normalise
from spendwatch.collector.cursor.client import CursorAdminClient
from spendwatch.collector.cursor_pass import CursorPass
from spendwatch.collector.sink import SINK_DURABLE, sink_consumer
from spendwatch.common.db import create_pool
from spendwatch.common.events import UsageRecordedV1
from spendwatch.common.localstack import free_port
from spendwatch.common.messaging import ensure_consumer, ensure_streams
from spendwatch.common.messaging.streams import USAGE
from spendwatch.simulator import DEFAULT_ADMIN_KEY, SimulatedTeam, run_simulator
from spendwatch.simulator.wire import usage_event
from tests.grafana_sql import dashboards, expand, panels, sql_targets

RESULTS = Path(__file__).parent / "results"
PROVIDER_KEYS = ("CURSOR_ADMIN_API_KEY", "ANTHROPIC_ADMIN_API_KEY", "OPENAI_ADMIN_API_KEY")
TOKEN = "bench-api-admin-token"
TARGET_P95_MS = 100.0
BATCH = 20_000
WARM_UP = 10
PANEL_RUNS = 5

console = Console(width=None if sys.stdout.isatty() else 120)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--developers", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--copies", type=int, default=19, help="times each simulated event counts")
    parser.add_argument("--requests", type=int, default=300, help="timed calls per endpoint")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def collect(stack: Stack, team: SimulatedTeam, days: int) -> float:
    """One Cursor pass into the real sink; seconds until the sink has stored everything."""
    nc = await nats.connect(stack.nats.url, max_reconnect_attempts=0)
    js = nc.jetstream()
    await ensure_streams(js)
    await ensure_consumer(js, sink_consumer())
    pool = await create_pool(stack.dsn, min_size=1, max_size=2)
    sink = ServiceProcess(stack, "collector")
    sink.start()
    started = time.perf_counter()
    try:
        async with (
            run_simulator(team, rate_limit_per_minute=1_000_000) as url,
            CursorAdminClient(
                api_key=DEFAULT_ADMIN_KEY, base_url=url, requests_per_minute=1_000_000
            ) as client,
        ):
            cursor_pass = CursorPass(
                client=client, js=js, db=pool, backfill=timedelta(days=days + 1)
            )
            summary = await cursor_pass.run()
        console.print(f"  collected {summary.events:,} events in {summary.requests} requests")
        while True:
            sink.assert_alive()
            info = await js.consumer_info(USAGE.name, SINK_DURABLE)
            if (info.num_pending, info.num_ack_pending) == (0, 0):
                break
            await asyncio.sleep(0.2)
        return time.perf_counter() - started
    finally:
        sink.stop()
        await pool.close()
        await nc.drain()


def base_events(team: SimulatedTeam) -> list[UsageRecordedV1]:
    """The simulated events as the collector normalises them."""
    now = datetime.now(UTC)
    return [
        normalise.usage_event(usage_event(team, row), account="", ingested_at=now)
        for row in team.iter_events(team.window_start_ms, team.now_ms)
    ]


def copies(events: list[UsageRecordedV1], count: int) -> Iterator[list[UsageRecordedV1]]:
    """Batches of copy k = 1..count-1 of every event: its own id, k x 3 s later."""
    for k in range(1, count):
        shift = timedelta(seconds=3 * k)
        for low in range(0, len(events), BATCH):
            yield [
                e.model_copy(
                    update={"event_id": f"{e.event_id}~{k}", "occurred_at": e.occurred_at + shift}
                )
                for e in events[low : low + BATCH]
            ]


async def amplify(dsn: str, events: list[UsageRecordedV1], count: int, timezone: str) -> int:
    """Insert the copies through the sink's SQL on two connections; rows inserted."""
    batches = copies(events, count)
    inserted = 0

    async def worker() -> None:
        nonlocal inserted
        conn = await asyncpg.connect(dsn)
        try:
            await repository.prepare_stage(conn)
            for batch in batches:  # a shared iterator: each batch goes to one worker
                async with conn.transaction():
                    await repository.insert_usage_events(conn, events=batch, timezone=timezone)
                inserted += len(batch)
                if inserted % 1_000_000 < BATCH:
                    console.print(f"  {inserted:,} copies inserted")
        finally:
            await conn.close()

    await asyncio.gather(worker(), worker())
    return inserted


async def time_endpoints(base_url: str, emails: list[str], requests: int) -> dict[str, Any]:
    """p50/p95/p99/max of each endpoint, one call after another."""
    rng = random.Random(1)
    endpoints: dict[str, Any] = {
        "GET /api/stats?days=30": lambda: "/api/stats?days=30",
        "GET /api/users/{email}?days=30": lambda: f"/api/users/{rng.choice(emails)}?days=30",
        "GET /api/analytics?days=30": lambda: "/api/analytics?days=30",
        "GET /api/model-costs?days=30": lambda: "/api/model-costs?days=30",
        "GET /api/team-spend": lambda: "/api/team-spend",
        "GET /api/groups": lambda: "/api/groups",
        "GET /api/anomalies?days=30": lambda: "/api/anomalies?days=30",
        "GET /api/incidents": lambda: "/api/incidents",
        "GET /api/stats?days=90": lambda: "/api/stats?days=90",
    }
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        for name, path in endpoints.items():
            statuses: dict[int, int] = {}
            samples: list[float] = []
            for i in range(WARM_UP + requests):
                began = time.perf_counter()
                response = await http.get(path())
                elapsed = (time.perf_counter() - began) * 1000
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if i >= WARM_UP:
                    samples.append(elapsed)
            out[name] = {
                "statuses": statuses,
                "p50_ms": round(percentile(samples, 50), 1),
                "p95_ms": round(percentile(samples, 95), 1),
                "p99_ms": round(percentile(samples, 99), 1),
                "max_ms": round(max(samples), 1),
                "bytes": len(response.content),
            }
    return out


async def time_panels(dsn: str, top_spender: str) -> list[dict[str, Any]]:
    """Median run time of every dashboard SQL target over the last 30 days, slowest first."""
    end = datetime.now(UTC)
    start = end - timedelta(days=30)
    variables = {"group": "'__all'", "user": top_spender}
    conn = await asyncpg.connect(dsn)
    out = []
    try:
        for dashboard in dashboards():
            for panel in panels(dashboard["panels"]):
                for sql in sql_targets(panel):
                    query = expand(sql, variables, start=start, end=end)
                    runs = []
                    for _ in range(PANEL_RUNS):
                        began = time.perf_counter()
                        rows = await conn.fetch(query)
                        runs.append((time.perf_counter() - began) * 1000)
                    out.append(
                        {
                            "dashboard": dashboard["uid"],
                            "panel": panel["title"],
                            "median_ms": round(statistics.median(runs), 1),
                            "rows": len(rows),
                        }
                    )
    finally:
        await conn.close()
    return sorted(out, key=lambda p: -p["median_ms"])


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Load, then measure the API and the panels."""
    for key in PROVIDER_KEYS:  # the collector must only sink, never poll a real provider
        os.environ.pop(key, None)
    stack = Stack(workdir, durable=False)
    flavour = await stack.start()
    api: ServiceProcess | None = None
    try:
        began = time.perf_counter()
        team = SimulatedTeam(seed=args.seed, developers=args.developers, days=args.days)
        with console.status("collecting the simulated team through the real sink"):
            collect_s = await collect(stack, team, args.days)
        with console.status("normalising the events"):
            events = base_events(team)
        with console.status(f"inserting {args.copies - 1} more copies of each event"):
            mark = time.perf_counter()
            await amplify(stack.dsn, events, args.copies, "UTC")
            amplify_s = time.perf_counter() - mark
        conn = await asyncpg.connect(stack.dsn)
        try:
            with console.status("VACUUM ANALYZE"):
                await conn.execute("VACUUM ANALYZE")
            stored, rollup_rows = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM usage_events),"
                " (SELECT count(*) FROM usage_daily_user_model)"
            )
            spenders = await conn.fetch(
                "SELECT user_email FROM usage_daily_user_model GROUP BY 1"
                " ORDER BY sum(cost_micros) DESC"
            )
        finally:
            await conn.close()
        load_s = time.perf_counter() - began
        console.print(f"loaded {stored:,} events ({rollup_rows:,} rollup rows) in {load_s:.0f} s")
        port = free_port()
        api = ServiceProcess(
            stack, "api", {"API_LISTEN": f"127.0.0.1:{port}", "API_ADMIN_TOKEN": TOKEN}
        )
        api.start()
        base_url = f"http://127.0.0.1:{port}"
        await wait_ready(base_url, api)
        emails = [r["user_email"] for r in spenders]
        with console.status("timing the REST endpoints"):
            rest = await time_endpoints(base_url, emails, args.requests)
        with console.status("timing the Grafana panels"):
            grafana = await time_panels(stack.dsn, emails[0])
        return {
            "flavour": flavour,
            "developers": args.developers,
            "days": args.days,
            "events": stored,
            "rollup_rows": rollup_rows,
            "collect_s": round(collect_s, 1),
            "amplify_s": round(amplify_s, 1),
            "load_s": round(load_s, 1),
            "rest": rest,
            "grafana": grafana,
        }
    finally:
        if api is not None:
            api.stop()
        stack.stop()


async def wait_ready(base_url: str, api: ServiceProcess) -> None:
    """Until the API's /readyz answers 200."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(300):
            api.assert_alive()
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("the API did not become ready")


def report(result: dict[str, Any]) -> bool:
    """Print the tables; True if both headline endpoints meet the target."""
    table = Table(
        title=f"REST API, {result['events']:,} events, {result['developers']} developers x"
        f" {result['days']} days (target p95 < {TARGET_P95_MS:.0f} ms)"
    )
    for column in ("endpoint", "statuses", "p50 ms", "p95 ms", "p99 ms", "max ms", "bytes"):
        table.add_column(column, justify="left" if column in ("endpoint", "statuses") else "right")
    for name, r in result["rest"].items():
        table.add_row(
            name,
            " ".join(f"{s}x{n}" for s, n in r["statuses"].items()),
            *(f"{r[k]:,}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "bytes")),
        )
    console.print(table)
    panels_table = Table(title="Grafana panels, last 30 days (median of 5 runs), slowest 10")
    for column in ("dashboard", "panel", "median ms", "rows"):
        panels_table.add_column(column, justify="right" if "ms" in column else "left")
    for p in result["grafana"][:10]:
        panels_table.add_row(p["dashboard"], p["panel"], f"{p['median_ms']:,}", str(p["rows"]))
    console.print(panels_table)
    headline = [result["rest"][k] for k in list(result["rest"])[:2]]
    return all(r["p95_ms"] < TARGET_P95_MS and set(r["statuses"]) == {200} for r in headline)


def main() -> None:
    args = parse_args()
    uvloop.install()
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    try:
        result = asyncio.run(bench(args, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    ok = report(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"api-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"args": vars(args), "result": result}, indent=1))
    console.print(f"results: {out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
