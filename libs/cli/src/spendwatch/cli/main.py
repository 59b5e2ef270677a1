"""The `spendwatch` command: dev, migrate, run <service>, collect --once, detect --once, token."""

from __future__ import annotations

import asyncio
import runpy
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from spendwatch.cli.collect import PROVIDERS, collect_once, summary_table
from spendwatch.cli.console import fail, out, settings_problem
from spendwatch.cli.detect import detect_once, outcome_table
from spendwatch.cli.dev import DevOptions, run_dev
from spendwatch.cli.migrations import run_migrations, summary
from spendwatch.cli.report import render, team_report
from spendwatch.cli.services import SERVICES, is_runnable
from spendwatch.cli.tokens import (
    create_token,
    created_panel,
    list_tokens,
    revoke_token,
    tokens_table,
)
from spendwatch.collector.settings import CollectorSettings
from spendwatch.common.errors import SpendwatchError
from spendwatch.common.logging import configure_logging
from spendwatch.common.settings import BaseServiceSettings, MigrateSettings
from spendwatch.detector.settings import DetectorSettings

app = typer.Typer(
    name="spendwatch",
    help="Self-hosted monitor for AI coding assistant spend.",
    no_args_is_help=True,
    add_completion=False,
    # Settings hold secrets; a pretty traceback with locals would print them.
    pretty_exceptions_show_locals=False,
)

token_app = typer.Typer(help="API tokens (stored hashed; a token is shown only when created).")
app.add_typer(token_app, name="token")


S = TypeVar("S", bound=BaseServiceSettings)
T = TypeVar("T")


def _one_shot_settings(kind: type[S]) -> S:
    """The settings of a one-shot command (a clear exit if invalid); logs quiet below warnings,
    because the command's own output says what happened."""
    try:
        settings = kind()
    except ValidationError as exc:
        fail(settings_problem(exc))
    configure_logging("WARNING")
    return settings


def _run(work: Coroutine[Any, Any, T], what: str) -> T:
    """Run a one-shot command's work; our errors end it with `<what> failed: ...`."""
    try:
        return asyncio.run(work)
    except SpendwatchError as exc:
        fail(f"{what} failed: {exc}")


@app.command()
def migrate() -> None:
    """Apply pending database migrations to DATABASE_URL (safe to run twice)."""
    try:
        settings = MigrateSettings()
    except ValidationError as exc:
        fail(settings_problem(exc))
    configure_logging(settings.log_level)
    try:
        report = asyncio.run(run_migrations(settings.database_url.get_secret_value(), settings))
    except SpendwatchError as exc:
        fail(f"migrate failed: {exc}")
    out.print(summary(report))


@app.command()
def run(
    service: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")],
) -> None:
    """Run one service in this process until SIGINT or SIGTERM."""
    if service not in SERVICES:
        fail(f"unknown service {service!r}; services are: {', '.join(SERVICES)}")
    if not is_runnable(service):
        fail(f"service {service!r} is not built yet (no module spendwatch.{service}.__main__)")
    # The service sees itself as `python -m spendwatch.<service>`, not our `run <service>` args.
    sys.argv = [sys.argv[0]]
    runpy.run_module(f"spendwatch.{service}", run_name="__main__", alter_sys=True)


@app.command()
def dev(
    data_dir: Annotated[
        Path, typer.Option(help="where nats-server and PostgreSQL keep their data between runs")
    ] = Path(".spendwatch"),
    nats_port: Annotated[int, typer.Option(help="port of the local nats-server")] = 4222,
    pg_port: Annotated[int, typer.Option(help="port of the local PostgreSQL")] = 5432,
    metrics_port: Annotated[
        int, typer.Option(help="/metrics port of the first service, the next ones count up; 0: off")
    ] = 9101,
    demo: Annotated[
        bool, typer.Option(help="feed the collector from a simulated Cursor team (no key needed)")
    ] = False,
    demo_port: Annotated[int, typer.Option(help="port of the simulated Cursor API")] = 8765,
) -> None:
    """Run the whole stack locally: nats-server, PostgreSQL, migrations and every service.

    Set NATS_URL or DATABASE_URL to use servers you already run instead. Ctrl-C stops it all.
    """
    try:
        code = run_dev(
            DevOptions(
                data_dir=data_dir,
                nats_port=nats_port,
                pg_port=pg_port,
                metrics_port=metrics_port,
                demo=demo,
                demo_port=demo_port,
            )
        )
    except ValidationError as exc:
        fail(settings_problem(exc))
    except SpendwatchError as exc:
        fail(f"spendwatch dev: {exc}")
    raise typer.Exit(code)


@app.command()
def collect(
    once: Annotated[bool, typer.Option("--once", help="run one pass and exit")] = False,
    provider: Annotated[str, typer.Option(help="which provider (cursor)")] = "cursor",
    since: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="read events from (UTC)"),
    ] = None,
) -> None:
    """Collect provider usage into the bus (`--once`: one pass with a summary table)."""
    if not once:
        fail("only `collect --once` runs from the CLI; the collector service polls on a schedule")
    if provider not in PROVIDERS:
        fail(f"unknown provider {provider!r}; providers are: {', '.join(PROVIDERS)}")
    settings = _one_shot_settings(CollectorSettings)
    start = since.replace(tzinfo=UTC) if since else None
    summary = _run(collect_once(settings, since=start), "collect")
    out.print(summary_table(summary))
    if summary.health != "ok":
        raise typer.Exit(1)


@app.command()
def detect(
    once: Annotated[bool, typer.Option("--once", help="evaluate now and exit")] = False,
    days: Annotated[int, typer.Option(min=0, max=90, help="days back to evaluate")] = 2,
) -> None:
    """Run the detectors over stored usage (`--once`: the last DAYS days and the billing cycle)."""
    if not once:
        fail("only `detect --once` runs from the CLI; the detector service runs continuously")
    settings = _one_shot_settings(DetectorSettings)
    outcomes = _run(detect_once(settings, days=days), "detect")
    out.print(outcome_table(outcomes))


@app.command()
def report(
    days: Annotated[int, typer.Option(min=1, max=366, help="days back, today included")] = 7,
) -> None:
    """What the Team overview shows: top spenders, spend by model, open incidents, MTT figures."""
    settings = _one_shot_settings(MigrateSettings)
    built = _run(team_report(settings, days=days), "report")
    out.print(render(built))


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="a unique name; commands record api:<name>")],
    admin: Annotated[
        bool, typer.Option("--admin", help="may change incidents, not only read")
    ] = False,
) -> None:
    """Create an API token in DATABASE_URL and print it once."""
    url = _one_shot_settings(MigrateSettings).database_url.get_secret_value()
    created = _run(create_token(url, name=name, admin=admin), "token create")
    out.print(created_panel(created))


@token_app.command("list")
def token_list() -> None:
    """List the API tokens: name, role, when created, last used, revoked (never the token)."""
    url = _one_shot_settings(MigrateSettings).database_url.get_secret_value()
    rows = _run(list_tokens(url), "token list")
    out.print(tokens_table(rows))


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Revoke a token: the API refuses it from now on (the row stays for the record)."""
    url = _one_shot_settings(MigrateSettings).database_url.get_secret_value()
    now = _run(revoke_token(url, name=name), "token revoke")
    out.print(f"revoked {name!r}" if now else f"{name!r} was already revoked")


if __name__ == "__main__":
    app()
