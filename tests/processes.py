"""Real services as child processes for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys


class Service:
    """`python -m spendwatch.<name>` logging to a file; killed if the test did not stop it."""

    def __init__(self, name: str, env: dict[str, str], log: os.PathLike[str]) -> None:
        self._args = ([sys.executable, "-m", f"spendwatch.{name}"], env, log)

    def __enter__(self) -> subprocess.Popen[bytes]:
        args, env, log = self._args
        self._file = open(log, "wb")
        self._proc = subprocess.Popen(args, env=env, stdout=self._file, stderr=subprocess.STDOUT)
        return self._proc

    def __exit__(self, *_: object) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._file.close()
