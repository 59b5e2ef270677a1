"""`spendwatch collect --once`: one collection pass from the command line, with a summary."""

from __future__ import annotations

from datetime import datetime

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from spendwatch.cli.connect import bus_and_db
from spendwatch.cli.console import out
from spendwatch.collector.cursor_pass import PassSummary
from spendwatch.collector.poller import cursor_pass
from spendwatch.collector.settings import CollectorSettings

PROVIDERS = ("cursor",)


async def collect_once(settings: CollectorSettings, *, since: datetime | None) -> PassSummary:
    """Run one Cursor pass against the configured bus and database, showing progress."""
    async with bus_and_db(settings) as (js, pool):
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=out, transient=True) as progress:
            task = progress.add_task("cursor: usage events 0", total=None)
            seen = 0

            def advance(count: int) -> None:
                nonlocal seen
                seen += count
                progress.update(task, description=f"cursor: usage events {seen:,}")

            async with cursor_pass(settings, js=js, db=pool) as run:
                return await run.run(since=since, on_events=advance)


def summary_table(summary: PassSummary) -> Table:
    """The pass as a two-column table."""
    table = Table(title="cursor collection pass", show_header=False)
    window = (
        f"{summary.window_start:%Y-%m-%d %H:%M} → {summary.window_end:%Y-%m-%d %H:%M} UTC"
        if summary.window_start and summary.window_end
        else "-"
    )
    for label, value in (
        ("health", summary.health),
        ("members", f"{summary.members:,}"),
        ("usage events read", f"{summary.events:,}"),
        ("new events (not stored before)", f"{summary.new_events:,}"),
        ("invalid (sent to DLQ)", f"{summary.invalid:,}"),
        ("spend rows / daily rows", f"{summary.spend_rows:,} / {summary.daily_rows:,}"),
        ("events window", window),
        ("API requests used", f"{summary.requests:,}"),
        ("duration", f"{summary.duration_seconds:.1f} s"),
    ):
        table.add_row(label, value)
    for error in summary.errors:
        table.add_row("error", f"[red]{error}[/]")
    return table
