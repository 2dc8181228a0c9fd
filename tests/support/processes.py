"""The league's real processes for end-to-end tests: scheduler, workers and gunicorn started on
one test database and storage, each logging to a file, waited on and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from league.db import upgrade_database
from league.storage import Storage

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 180.0  # how long one step may take before a test gives up (not a speed check)
T = TypeVar("T")


class Processes:
    """The processes of one test; each writes its output to ``<name>.log`` in ``dir``."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.dir, self.env = tmp_path, env
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.names: list[str] = []

    def start(self, name: str, *args: str) -> None:
        """``python args...`` from the project root, in a session of its own."""
        with (self.dir / f"{name}.log").open("wb") as log:
            self.running[name] = subprocess.Popen(
                [sys.executable, *args], cwd=ROOT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.names.append(name)

    def kill(self, name: str) -> None:
        """SIGKILL to the process and everything it started."""
        proc = self.running.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, name: str) -> int:
        """SIGTERM, then its exit status."""
        proc = self.running.pop(name)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=WAIT_S)

    def logs(self) -> str:
        """Every process's log, for a failure's report."""
        return "\n".join(f"--- {name}\n{(self.dir / f'{name}.log').read_text(errors='replace')}"
                         for name in self.names)

    def wait_for(self, condition: Callable[[], T], what: str) -> T:
        """The first true value of ``condition()``; the test fails, with the logs, when a
        process died or :data:`WAIT_S` passed first."""
        deadline = time.monotonic() + WAIT_S
        while True:
            found = condition()
            if found:
                return found
            dead = [n for n, p in self.running.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what} ({', '.join(dead) or 'timeout'})\n"
                            f"{self.logs()}")
            time.sleep(0.1)

    def kill_all(self) -> None:
        """Kill what still runs."""
        for name in list(self.running):
            if self.running[name].poll() is None:
                self.kill(name)
            else:
                self.running.pop(name)


def league_processes(url: str, tmp_path: Path) -> Iterator[tuple[str, Storage, Processes]]:
    """For a fixture: ``url`` migrated, storage, and the processes started on them with no
    operator setting from this environment (``PADDOCK_*``) but those; killed at the end."""
    upgrade_database(url)
    storage = Storage(tmp_path / "storage")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_")}
    env.update(DATABASE_URL=url, SECRET_KEY="test", PADDOCK_STORAGE_DIR=str(storage.root),
               PADDOCK_INSTANCE_DIR=str(tmp_path / "instance"))
    procs = Processes(tmp_path, env)
    try:
        yield url, storage, procs
    finally:
        procs.kill_all()
