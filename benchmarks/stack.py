"""What the benchmarks run on: servers started from pip packages in a temporary directory, and
the real services as child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg

from spendwatch.common.db import migrate
from spendwatch.common.localstack import LocalNats, LocalPostgres, free_port


@dataclass
class Stack:
    """nats-server and PostgreSQL started by the benchmark, with a migrated database."""

    workdir: Path
    durable: bool
    nats: LocalNats = field(init=False)
    postgres: LocalPostgres = field(init=False)

    def __post_init__(self) -> None:
        self.nats = LocalNats(self.workdir / "nats", port=free_port())
        self.postgres = LocalPostgres(self.workdir / "pg", port=free_port(), durable=self.durable)

    @property
    def dsn(self) -> str:
        """URL of the benchmark database."""
        return self.postgres.url("spendwatch")

    async def start(self) -> str:
        """Start both servers, create and migrate the database; returns the schema flavour."""
        self.nats.start()
        self.postgres.start()
        conn = await asyncpg.connect(self.postgres.url())
        try:
            await conn.execute("CREATE DATABASE spendwatch")
        finally:
            await conn.close()
        report = await migrate(self.dsn)
        return report.flavour

    def postmaster_pid(self) -> int | None:
        """PostgreSQL's main process, from its pid file."""
        try:
            pid_file = self.postgres.data_dir / "pgdata" / "postmaster.pid"
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop both servers."""
        self.nats.stop()
        self.postgres.stop()


class ServiceProcess:
    """A real service (`python -m spendwatch.<name>`) as a child process, logging to a file."""

    def __init__(self, stack: Stack, name: str, env: dict[str, str] | None = None) -> None:
        self._stack = stack
        self.name = name
        self._env = env or {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_path = stack.workdir / f"{name}.log"

    def start(self) -> None:
        """Spawn it; its cwd is the temp dir so no developer `.env` leaks in."""
        env = (
            os.environ
            | {
                "DATABASE_URL": self._stack.dsn,
                "NATS_URL": self._stack.nats.url,
                "METRICS_PORT": "0",
                "LOG_LEVEL": "WARNING",
                "TEAM_TIMEZONE": "UTC",
            }
            | self._env
        )
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", f"spendwatch.{self.name}"],
            env=env,
            cwd=self._stack.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int | None:
        """Its process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def assert_alive(self) -> None:
        """Raise with the log's tail if the process has exited."""
        if self._proc is not None and self._proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self._proc.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it hangs."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log:
            self._log.close()
            self._log = None

    def warnings(self) -> list[str]:
        """Lines it logged (it runs at LOG_LEVEL=WARNING, so any line is worth a look)."""
        if not self.log_path.exists():
            return []
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if line]
