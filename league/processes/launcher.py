"""``paddock demo``: the whole league on one machine, as one process tree.

Checks that the port is free (a second ``make run`` says so before it prints anything else),
migrates the database, seeds the demo league once, then starts the website (gunicorn), the
scheduler and the local workers as child processes and watches them. Where the sandbox lacks
a layer a league's worker requires (no bubblewrap and no Landlock, say), the demo's workers
run with ``--lenient-sandbox`` and the command says so. Ctrl-C (SIGINT) or
SIGTERM stops them all: each gets SIGTERM and ``STOP_GRACE_S`` to finish, then SIGKILL. If one
of them dies on its own, the others are stopped too and the command fails, saying which.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from evaluator.errors import PolicyFailed
from evaluator.sandbox import describe_missing, missing_required, probe_layers
from league.config import Settings
from league.db import make_engine, session_factory, transaction, upgrade_database
from league.processes import demo
from league.storage import Storage

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
WEB_WORKERS = 2
READY_TIMEOUT_S = 60.0  # the website must answer within this long of starting
STOP_GRACE_S = 10.0
POLL_S = 0.2


@dataclass
class Child:
    """A supervised child process."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None


def child_commands(host: str, port: int, workers: int, *,
                   lenient_sandbox: bool = False) -> list[Child]:
    """The website, the scheduler and the workers, as commands of this Python."""
    py = sys.executable
    worker = [py, "-m", "league.cli", "worker", "--workers", str(workers)]
    if lenient_sandbox:
        worker.append("--lenient-sandbox")
    return [
        Child("web", [py, "-m", "gunicorn", "--bind", f"{host}:{port}",
                      "--workers", str(WEB_WORKERS), "--graceful-timeout", "5",
                      "--no-control-socket",
                      "web:create_app()"]),
        Child("scheduler", [py, "-m", "league.cli", "scheduler"]),
        Child("workers", worker),
    ]


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of the children: the same settings, as absolute values, so every
    process uses the same database, storage and secret whatever its working directory."""
    env = dict(os.environ)
    env.update(DATABASE_URL=settings.database_url, PADDOCK_STORAGE_DIR=str(settings.storage_dir),
               SECRET_KEY=settings.secret_key, PYTHONUNBUFFERED="1")
    return env


def prepare(settings: Settings) -> bool:
    """Migrate the database and seed the demo; returns whether it was seeded just now."""
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            return demo.seed_demo(session, Storage(settings.storage_dir)) is not None
    finally:
        engine.dispose()


def sandbox_shortfall(settings: Settings) -> str:
    """What this machine's sandbox lacks for a strict worker ("" when nothing): the demo then
    runs its workers lenient, where a league's workers would refuse to start."""
    try:
        missing = missing_required(probe_layers(settings.sandbox()))
    except PolicyFailed as err:
        return f"no policy process could start ({err.reason})"
    return describe_missing(missing)


def wait_until_up(url: str, children: Sequence[Child], timeout_s: float) -> None:
    """Return once ``url`` answers; raise RuntimeError if a child dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_alive(children)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(POLL_S)
    raise RuntimeError(f"the website did not answer at {url} within {timeout_s:.0f} s")


def _check_alive(children: Sequence[Child]) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is not None:
            raise RuntimeError(f"the {child.name} process exited with status "
                               f"{child.process.returncode}")


def stop_all(children: Sequence[Child], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every running child, then SIGKILL those still running after ``grace_s``."""
    running = [c.process for c in children if c.process and c.process.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (a second ``make run``, say).

    The probe binds the way gunicorn does (``SO_REUSEADDR``), so a port whose last
    connections are only closing (TIME_WAIT, after an earlier run stopped) counts as free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def banner(url: str, seeded: bool) -> str:
    """What the command prints once the website is up."""
    lines = ["", f"Paddock is running at {url}", ""]
    lines.append("Demo logins (for trying things out; change or delete them on a real site):")
    for login in demo.demo_logins():
        lines.append(f"  {login.role:<10} {login.name} / {login.password}")
    lines.append("")
    lines.append("The demo league was seeded just now: the bots' evaluations are running."
                 if seeded else "Using the existing database (the demo league was seeded before).")
    lines.append("Press Ctrl-C to stop everything.")
    return "\n".join(lines)


def run(host: str, port: int, workers: int | None = None) -> int:
    """Prepare, start and supervise the process tree until a stop signal; returns the status."""
    if port_taken(host, port):
        print(f"paddock demo: port {port} on {host} is taken (is Paddock already running? "
              f"choose another port: make run PORT={port + 1})", file=sys.stderr)
        return 1
    settings = Settings.from_env()
    seeded = prepare(settings)
    shortfall = sandbox_shortfall(settings)
    if shortfall:
        print(f"paddock demo: the sandbox here lacks {shortfall}; the demo's workers run "
              "without it (--lenient-sandbox), which a league's workers refuse to do",
              file=sys.stderr, flush=True)
    children = child_commands(host, port, workers or settings.workers,
                              lenient_sandbox=bool(shortfall))
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    env = child_environment(settings)
    status = 0
    try:
        for child in children:
            child.process = subprocess.Popen(child.argv, env=env)
        url = f"http://{host}:{port}/"
        wait_until_up(url + "healthz", children, READY_TIMEOUT_S)
        print(banner(url, seeded), flush=True)
        while not stop.wait(POLL_S):
            _check_alive(children)
    except RuntimeError as err:
        print(f"paddock demo: {err}; stopping", file=sys.stderr)
        status = 1
    finally:
        stop_all(children)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo league (``make run``)."""
    host = args.host or os.environ.get("HOST") or DEFAULT_HOST
    port = args.port or int(os.environ.get("PORT") or DEFAULT_PORT)
    return run(host, port, args.workers)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo command's options."""
    parser.add_argument("--host", help=f"address to serve on (HOST; default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port (PORT; default {DEFAULT_PORT})")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="evaluation worker processes (default: PADDOCK_WORKERS, else 2)")


