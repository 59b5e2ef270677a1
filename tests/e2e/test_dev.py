"""`spendwatch dev` end to end: real nats-server, PostgreSQL and services, stopped by signals.

The command runs as a subprocess with DATABASE_URL and NATS_URL removed from its environment,
so it starts its own servers, exactly as on a developer's machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from spendwatch.cli.dev import Supervisor
from spendwatch.common.localstack import free_port, port_is_free

pytestmark = pytest.mark.e2e

READY = "spendwatch dev: ready"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
SERVICES = ("collector", "detector", "incidents", "notifier", "api")


def built_services() -> list[str]:
    """The services this checkout can run, found independently of the CLI's own discovery."""
    found = []
    for name in SERVICES:
        try:
            spec = importlib.util.find_spec(f"spendwatch.{name}.__main__")
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found.append(name)
    return found


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def metrics_ports() -> int:
    """The first of five free ports below the ephemeral range (dev counts up from it): ports
    from the OS's free-port call are ephemeral, and an outgoing connection of one service could
    take the next port before the service after it binds."""
    for base in range(random.randrange(20_000, 29_000, 10), 30_000, 10):
        if all(port_is_free(port) for port in range(base, base + 5)):
            return base
    raise RuntimeError("no five free ports in 20000-30000")


def dev_args(data_dir: Path, nats_port: int, pg_port: int, metrics_port: int = 0) -> list[str]:
    """`spendwatch dev` options for servers on the given ports, data under `data_dir`."""
    args = ["--data-dir", str(data_dir), "--nats-port", str(nats_port), "--pg-port", str(pg_port)]
    return [*args, "--metrics-port", str(metrics_port)] if metrics_port else args


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the fields after the last ")" do not.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class DevRun:
    """A running `spendwatch dev` whose stdout and stderr are collected line by line."""

    def __init__(self, cwd: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "NATS_URL"}}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spendwatch.cli", "dev", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._seen: set[int] = set()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> str:
        """The first output line containing `text`; fails with the output on timeout or exit."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines:
                    if text in line:
                        return line
                if self.proc.poll() is not None and not self._reader.is_alive():
                    code = self.proc.returncode
                    pytest.fail(f"exited with {code} before {text!r}:\n{self.output}")
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {text!r} within {timeout:.0f}s:\n{self.output}")
                self._changed.wait(min(left, 1.0))

    def descendants(self) -> set[int]:
        """Every process started by it, directly or not; remembered for `leftovers`."""
        pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
        parents = {pid: _parent_of(pid) for pid in pids}
        found: set[int] = set()
        frontier = {self.proc.pid}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
            found |= frontier
        self._seen |= found
        return found

    def leftovers(self) -> list[str]:
        """Processes it started that are still alive, as `pid name`."""
        return [f"{pid} {_name(pid)}" for pid in sorted(self._seen) if _alive(pid)]

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Send `signum` and wait for the exit code."""
        self.proc.send_signal(signum)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"did not stop within {STOP_TIMEOUT:.0f}s:\n{self.output}")
        self._reader.join(10)
        return code

    def kill(self) -> None:
        """Last-resort cleanup after a failed test: nothing may outlive it."""
        self.descendants()
        for pid in [self.proc.pid, *self._seen]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[type[DevRun]]:
    runs: list[DevRun] = []

    class TrackedDevRun(DevRun):
        def __init__(self, cwd: Path, *args: str) -> None:
            super().__init__(cwd, *args)
            runs.append(self)

    yield TrackedDevRun
    for run in runs:
        if run.proc.poll() is None:
            run.kill()


async def _write_marker(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE e2e_marker (note text PRIMARY KEY)")
        await conn.execute("INSERT INTO e2e_marker VALUES ('written by the first run')")
    finally:
        await conn.close()


async def _read_marker(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [row["note"] for row in await conn.fetch("SELECT note FROM e2e_marker")]
    finally:
        await conn.close()


def _postgres_url(ready_line: str) -> str:
    match = re.search(r"PostgreSQL (postgresql://\S+),", ready_line)
    assert match, ready_line
    return match[1]


@pytest.mark.timeout(400)
def test_dev_starts_stops_and_keeps_its_data(tmp_path: Path, start_dev: type[DevRun]) -> None:
    nats_port, pg_port = distinct_free_ports(2)
    metrics_port = metrics_ports()
    args = dev_args(tmp_path / "data", nats_port, pg_port, metrics_port)
    services = built_services()

    first = start_dev(tmp_path, *args)
    ready = first.wait_for(READY)
    assert f"NATS nats://127.0.0.1:{nats_port}" in ready
    assert ready.endswith(f"services: {', '.join(services) or 'none'}"), ready
    assert "applied 0001_schema" in first.output
    url = _postgres_url(ready)
    asyncio.run(_write_marker(url))
    names = {_name(pid) for pid in first.descendants()}
    assert {"nats-server", "postgres"} <= names, names

    assert first.stop(signal.SIGINT) == 0, first.output
    assert first.leftovers() == [], first.output
    assert port_is_free(nats_port)
    assert port_is_free(pg_port)
    assert not (tmp_path / "data/postgres/pgdata/postmaster.pid").exists(), "unclean shutdown"
    assert "Traceback" not in first.output.split(READY)[0]  # our own start-up said nothing odd

    second = start_dev(tmp_path, *args)
    ready = second.wait_for(READY)
    assert "up to date" in second.output
    assert "applied 0001" not in second.output
    assert asyncio.run(_read_marker(_postgres_url(ready))) == ["written by the first run"]
    second.descendants()

    assert second.stop(signal.SIGTERM) == 0, second.output
    assert second.leftovers() == [], second.output
    assert port_is_free(pg_port)


@pytest.mark.timeout(300)
def test_a_terminal_ctrl_c_stops_services_before_servers(tmp_path: Path) -> None:
    nats_port, pg_port = distinct_free_ports(2)
    metrics_port = metrics_ports()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "NATS_URL"}}
    log = tmp_path / "dev.log"
    with log.open("w") as sink:
        # A session of its own stands in for the terminal: Ctrl-C goes to its whole group.
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spendwatch.cli",
                "dev",
                *dev_args(tmp_path / "data", nats_port, pg_port, metrics_port),
            ],
            cwd=tmp_path,
            env=env | {"PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while READY not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(STOP_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text()
    assert code == 0, output
    assert "stopped with code" not in output, output
    assert "shutting down" not in output.split("stopping")[0], output  # no server left early


def test_dev_reports_a_taken_port_without_a_traceback(
    tmp_path: Path, start_dev: type[DevRun]
) -> None:
    nats_port, pg_port = distinct_free_ports(2)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", nats_port))
        taken.listen()
        run = start_dev(tmp_path, *dev_args(tmp_path / "data", nats_port, pg_port))
        code = run.proc.wait(STOP_TIMEOUT)
        run._reader.join(10)
    assert code != 0
    assert f"port {nats_port}" in run.output
    assert "Traceback" not in run.output
    assert port_is_free(pg_port)  # PostgreSQL was never started


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`spendwatch ARGS` in `cwd`, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "spendwatch.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _count_events(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM usage_events")
        return count
    finally:
        await conn.close()


@pytest.mark.timeout(300)
def test_demo_feeds_the_collector_from_the_simulator(
    tmp_path: Path, start_dev: type[DevRun]
) -> None:
    nats_port, pg_port, demo_port = distinct_free_ports(3)
    metrics_port = metrics_ports()
    run = start_dev(
        tmp_path,
        "--demo",
        "--demo-port",
        str(demo_port),
        *dev_args(tmp_path / "data", nats_port, pg_port, metrics_port),
    )
    ready = run.wait_for(READY)
    assert "services: simulator, collector" in ready, ready
    url = _postgres_url(ready)
    deadline = time.monotonic() + 120
    while asyncio.run(_count_events(url)) == 0:  # the first pass's pages land as they arrive
        assert time.monotonic() < deadline, run.output
        time.sleep(1)
    api = re.search(r"API (http://127\.0\.0\.1:\d+) ", run.output)
    assert api, run.output
    # The demo's API answers reads without a token (API_AUTH=off only for the local demo).
    assert httpx.get(f"{api[1]}/api/incidents", timeout=10).status_code == 200
    assert run.stop(signal.SIGINT) == 0, run.output
    assert run.leftovers() == [], run.output


def test_run_refuses_an_unknown_service(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "run", "nosuch")
    assert result.returncode == 1
    assert "unknown service 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr


def _fake_service(root: Path, name: str, body: str) -> dict[str, str]:
    """A `spendwatch.<name>` package under `root`, and the environment that finds it."""
    package = root / "spendwatch" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(body)
    return os.environ | {"PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}


async def test_a_service_that_dies_stops_dev_with_an_error(tmp_path: Path) -> None:
    env = _fake_service(tmp_path, "e2e_crasher", "print('service.ready')\nraise SystemExit(3)\n")
    supervisor = Supervisor(["e2e_crasher"], env)
    ready: list[bool] = []
    try:
        await supervisor.start(on_all_ready=lambda: ready.append(True))
        code = await asyncio.wait_for(supervisor.wait(asyncio.Event()), 30)
    finally:
        await supervisor.stop()
    assert code == 1
    assert ready == [True]


async def test_stopping_dev_terminates_its_services(tmp_path: Path) -> None:
    env = _fake_service(
        tmp_path, "e2e_sleeper", "import time\nprint('service.ready')\ntime.sleep(600)\n"
    )
    supervisor = Supervisor(["e2e_sleeper"], env)
    stop = asyncio.Event()
    ready = asyncio.Event()
    try:
        await supervisor.start(on_all_ready=ready.set)
        await asyncio.wait_for(ready.wait(), 30)
        stop.set()
        code = await asyncio.wait_for(supervisor.wait(stop), 30)
    finally:
        await asyncio.wait_for(supervisor.stop(), 30)
    assert code == 0
