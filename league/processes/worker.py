"""Local evaluation workers: claim a job, race it under a renewed lease, write the outcome.

A :class:`Worker` loops: recover expired leases, claim the oldest queued job, and hand it to
:func:`league.processes.runner.run_claimed_job`, the fault boundary the Ray executor's tasks
share. That keeps the lease, races the job, delivers the result or failure (trying again when
the database reports a conflict) and records a crash as an ``infrastructure`` failure; see its
module for every way a job can end. A worker passes its stop event along: on SIGTERM or SIGINT
the current race is cut short and the job handed back to the queue without using up an
attempt. A database error that outlasts the runner's retries ends the worker process (the pool
starts a new one) and the job's lease runs out, so the reaper queues it again.

A worker races its jobs in its own (long-lived) process and keeps a
:class:`~evaluator.policy_pool.PolicyPool` for its lifetime: a model's next time trial, and
every heat of a round robin, reuse its warm policy processes instead of starting new ones
(the job log's line says how many were warm).

:func:`run_pool` is the ``local`` executor: ``n`` worker processes (``spawn``), restarted when
they die, stopped cleanly on SIGTERM or SIGINT. ``python -m league.processes.worker [--workers N]
[--once] [--lenient-sandbox]`` runs it; ``paddock worker`` calls :func:`cmd_worker` with the
same arguments. Before either takes a job, :func:`check_sandbox` starts one policy process and
checks the layers it got: by default a worker without the sandbox's required layers refuses to
start, saying which are missing and what to install.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from types import FrameType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from evaluator.errors import PolicyFailed
from evaluator.policy_pool import PolicyPool
from evaluator.sandbox import STRICT_ENV, describe_missing, missing_required, probe_layers
from league.config import ConfigError, Settings, configure_logging
from league.db import make_engine, session_factory, transaction
from league.processes.runner import run_claimed_job
from league.rules.jobs import claim_job, reap_expired
from league.storage import Storage

log = logging.getLogger(__name__)

POOL_TICK_S = 0.5  # how often the pool looks for dead workers
RESTART_DELAY_S = 1.0  # first wait before restarting a dead worker
MAX_RESTART_DELAY_S = 30.0  # a worker that keeps dying waits at most this long
STABLE_AFTER_S = 60.0  # a worker that lived this long restarts without backing off
SHUTDOWN_GRACE_S = 20.0  # stopping workers get this long (a policy may be loading) before kill
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def default_worker_id() -> str:
    """This process's worker id: ``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """Claims and evaluates jobs one at a time under the id ``<hostname>-<pid>``."""

    def __init__(self, settings: Settings, worker_id: str | None = None, *,
                 engine: Engine | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.engine = engine or make_engine(settings.database_url)
        self.factory = session_factory(self.engine)
        self.storage = Storage(settings.storage_dir)
        #: warm policy processes kept across this worker's jobs (:mod:`evaluator.policy_pool`)
        self.pool = PolicyPool()

    def close(self) -> None:
        """Stop the warm policy processes and release the database connections."""
        self.pool.close()
        self.engine.dispose()

    def run(self, stop_event: threading.Event, *, parent_pid: int | None = None) -> None:
        """Work until ``stop_event`` is set (or, in a pool, until the pool process is gone)."""
        log.info("worker %s: started", self.worker_id)
        while not stop_event.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("worker %s: its pool is gone, stopping", self.worker_id)
                break
            if self.run_once(stop_event) is None:
                stop_event.wait(self.settings.poll_s)
        log.info("worker %s: stopped", self.worker_id)

    def run_once(self, stop_event: threading.Event | None = None) -> int | None:
        """Claim one job and see it through (:func:`~league.processes.runner.run_claimed_job`);
        its id, or None when nothing was queued.

        Expired leases are reaped first, so workers recover lost jobs even without the
        scheduler (both call the same :func:`~league.rules.jobs.reap_expired`).
        """
        with transaction(self.factory) as session:
            reaped = reap_expired(session)
            job = claim_job(session, self.worker_id, self.settings.lease_s)
            job_id = None if job is None else job.id
        if reaped:
            log.info("worker %s: reaped expired leases of jobs %s", self.worker_id, reaped)
        if job_id is None:
            return None
        log.info("worker %s: job %d claimed", self.worker_id, job_id)
        line = run_claimed_job(self.factory, self.storage, self.settings, job_id,
                               self.worker_id, stop=stop_event, pool=self.pool)
        log.info("worker %s: %s", self.worker_id, line)
        return job_id


# ---------------------------------------------------------------------------------- pool
@dataclass
class _Slot:
    """One place in the pool and the process filling it."""

    index: int
    process: SpawnProcess | None = None
    started: float = 0.0
    delay: float = RESTART_DELAY_S  #: wait before the next restart
    restart_at: float = 0.0

    def tend(self, ctx: SpawnContext, settings: Settings, now: float) -> None:
        """Start the process, or note its death and restart it after a back-off."""
        proc = self.process
        if proc is not None and proc.exitcode is None:
            return
        if proc is not None:
            lived = now - self.started
            if lived >= STABLE_AFTER_S:
                self.delay = RESTART_DELAY_S
            self.restart_at = now + self.delay
            self.process = None
            log.warning("pool: worker %d (pid %s) exited with %s after %.0f s; restarting in "
                        "%.0f s", self.index, proc.pid, proc.exitcode, lived, self.delay)
            self.delay = min(self.delay * 2, MAX_RESTART_DELAY_S)
        if now < self.restart_at:
            return
        self.process = ctx.Process(target=_pool_child, args=(settings, os.getpid()),
                                   name=f"paddock-worker-{self.index}")
        self.process.start()
        self.started = now
        log.info("pool: worker %d started (pid %s)", self.index, self.process.pid)


def run_pool(settings: Settings, n: int, *, stop_event: threading.Event | None = None) -> None:
    """Run ``n`` worker processes until SIGTERM or SIGINT (or ``stop_event``).

    A worker that dies is restarted, after a back-off that doubles while it keeps dying
    young. Stopping sends SIGTERM to every worker (each hands its job back) and kills those
    still running after ``SHUTDOWN_GRACE_S``.
    """
    if n < 1:
        raise ValueError(f"a pool needs at least one worker, got {n}")
    stop = stop_event or threading.Event()
    previous = _on_stop_signals(stop)
    ctx = multiprocessing.get_context("spawn")
    slots = [_Slot(i) for i in range(n)]
    log.info("pool: %d worker(s) on %s", n, sa.make_url(settings.database_url)
             .render_as_string(hide_password=True))
    try:
        while not stop.is_set():
            now = time.monotonic()
            for slot in slots:
                slot.tend(ctx, settings, now)
            stop.wait(POOL_TICK_S)
    finally:
        _stop_all([s.process for s in slots if s.process is not None])
        _restore(previous)
    log.info("pool: stopped")


def _stop_all(procs: list[SpawnProcess]) -> None:
    for proc in procs:
        if proc.exitcode is None:
            proc.terminate()
    deadline = time.monotonic() + SHUTDOWN_GRACE_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.exitcode is None:
            log.warning("pool: worker pid %s did not stop in %.0f s; killing it", proc.pid,
                        SHUTDOWN_GRACE_S)
            proc.kill()
            proc.join()


def _pool_child(settings: Settings, parent_pid: int) -> None:
    """The body of one pool process."""
    configure_logging()
    stop = threading.Event()
    _on_stop_signals(stop)
    worker = Worker(settings)
    try:
        worker.run(stop, parent_pid=parent_pid)
    finally:
        worker.close()


def _on_stop_signals(stop: threading.Event) -> dict[int, Any]:
    """Make SIGTERM and SIGINT set ``stop`` (main thread only); returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


# ----------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker command's options (``--workers N``, ``--once``, ``--lenient-sandbox``)."""
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes (default: PADDOCK_WORKERS, else 2)")
    parser.add_argument("--once", action="store_true",
                        help="in this process, evaluate at most one queued job, then exit")
    parser.add_argument("--lenient-sandbox", action="store_true",
                        help="evaluate even where the sandbox lacks required layers (a "
                             "laptop, the demo); the default refuses to start")


def check_sandbox(settings: Settings) -> str:
    """Start a policy process the way evaluations will and check its layers; returns why the
    worker must not start ("" when it may).

    A strict worker (the default) needs seccomp plus Landlock or bubblewrap's namespaces, and
    the other required layers (:func:`evaluator.sandbox.missing_required`); a lenient one
    starts without them and logs what is missing.
    """
    try:
        missing = missing_required(probe_layers(settings.sandbox()))
        problem = f"sandbox layers missing: {describe_missing(missing)}" if missing else ""
    except PolicyFailed as err:
        problem = f"no policy process could start here: {err.reason}"
    if problem and not settings.sandbox_strict:
        log.warning("%s; evaluating without them (lenient sandbox)", problem)
        return ""
    if problem:
        return (f"refusing to start: {problem}. --lenient-sandbox or {STRICT_ENV}=0 "
                "evaluates without them, for trying things out only")
    return ""


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the workers as the parsed arguments say; returns the exit status."""
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"paddock worker: {err}", file=sys.stderr)
        return 2
    workers = getattr(args, "workers", None) or settings.workers
    if workers < 1:
        print(f"paddock worker: --workers must be at least 1, got {workers}", file=sys.stderr)
        return 2
    # The sandbox's busy-wait rule (Settings.sandbox) counts the workers actually started.
    settings = dataclasses.replace(settings, workers=workers)
    if getattr(args, "lenient_sandbox", False):
        settings = dataclasses.replace(settings, sandbox_strict=False)
    configure_logging()
    refusal = check_sandbox(settings)
    if refusal:
        print(f"paddock worker: {refusal}", file=sys.stderr)
        return 1
    if not getattr(args, "once", False):
        run_pool(settings, workers)
        return 0
    stop = threading.Event()
    previous = _on_stop_signals(stop)
    worker = Worker(settings)
    try:
        job_id = worker.run_once(stop)
    finally:
        worker.close()
        _restore(previous)
    if job_id is None:
        log.info("worker %s: nothing queued", worker.worker_id)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m league.processes.worker [--workers N] [--once]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="paddock worker",
                                     description="Run the league's local evaluation workers.")
    add_arguments(parser)
    return cmd_worker(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
