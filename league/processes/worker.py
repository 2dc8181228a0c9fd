"""Local evaluation workers: claim a job, race it under a renewed lease, write the outcome.

A :class:`Worker` loops: recover expired leases, claim the oldest queued job, evaluate it
while a thread renews the lease every ``heartbeat_s`` (at most a third of the lease, so two
beats may fail before it runs out), then deliver the result or failure in one transaction.
When the lease is lost the race goes on and its result is still offered (the first result
of a job wins); when the job was meanwhile cancelled or finished elsewhere, the race is
abandoned. On SIGTERM or SIGINT the current race is cut short and the job handed back to the
queue without using up an attempt.

:func:`run_pool` is the ``local`` executor: ``n`` worker processes (``spawn``), restarted when
they die, stopped cleanly on SIGTERM or SIGINT. ``python -m league.processes.worker [--workers N]
[--once]`` runs it; ``paddock worker`` calls :func:`cmd_worker` with the same arguments.
"""

from __future__ import annotations

import argparse
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
from sqlalchemy.orm import Session, sessionmaker

from league.config import ConfigError, Settings
from league.db import make_engine, session_factory, transaction
from league.errors import NotFound
from league.models import FailureKind
from league.processes.evaluation import EvaluationAborted, Outcome, deliver, evaluate_job
from league.rules.jobs import FINAL, claim_job, get_job, heartbeat, reap_expired, release_job
from league.storage import Storage

log = logging.getLogger(__name__)

HEARTBEATS_PER_LEASE = 3  # a lease survives two failed heartbeats
POOL_TICK_S = 0.5  # how often the pool looks for dead workers
RESTART_DELAY_S = 1.0  # first wait before restarting a dead worker
MAX_RESTART_DELAY_S = 30.0  # a worker that keeps dying waits at most this long
STABLE_AFTER_S = 60.0  # a worker that lived this long restarts without backing off
SHUTDOWN_GRACE_S = 20.0  # stopping workers get this long (a policy may be loading) before kill
DELIVERY_TRIES = 3  # a result is written back this many times before the worker gives up
DELIVERY_BACKOFF_S = 0.5  # wait before the next try, times the tries so far
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def default_worker_id() -> str:
    """This process's worker id: ``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class LeaseKeeper:
    """Renews one job's lease from a thread while the job is being raced (used by the local
    workers and by the Ray executor's tasks)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, job_id: int,
                 owner: str) -> None:
        self.factory, self.settings, self.job_id, self.owner = factory, settings, job_id, owner
        self.every_s = min(settings.heartbeat_s, settings.lease_s / HEARTBEATS_PER_LEASE)
        self.lost = False  #: the lease is no longer ours
        self.abandoned = ""  #: why the race should stop: the job is final elsewhere
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self.every_s):
            try:
                with transaction(self.factory) as session:
                    if heartbeat(session, self.job_id, self.owner, self.settings.lease_s):
                        continue
                    job = get_job(session, self.job_id)
                    status, holder = job.status, job.lease_owner
            except sa.exc.OperationalError as err:  # the database blinked: beat again later
                log.warning("job %d: heartbeat failed, retrying: %s", self.job_id, err)
                continue
            except NotFound:
                self.lost, self.abandoned = True, "the job no longer exists"
                return
            self.lost = True
            if status in FINAL:
                self.abandoned = f"the job is already {status}"
            else:
                log.warning("job %d: lease lost (now %s); racing on, the first result wins",
                            self.job_id, f"held by {holder}" if holder else status)
            return


class Worker:
    """Claims and evaluates jobs one at a time under the id ``<hostname>-<pid>``."""

    def __init__(self, settings: Settings, worker_id: str | None = None, *,
                 engine: Engine | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.engine = engine or make_engine(settings.database_url)
        self.factory = session_factory(self.engine)
        self.storage = Storage(settings.storage_dir)

    def close(self) -> None:
        """Release the database connections."""
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
        """Claim one job and see it through; its id, or None when nothing was queued.

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
        try:
            self._see_through(job_id, stop_event or threading.Event())
        except NotFound as err:  # its race or entry was deleted meanwhile: nothing to record
            log.warning("worker %s: job %d is gone: %s", self.worker_id, job_id, err)
        return job_id

    def _see_through(self, job_id: int, stop: threading.Event) -> None:
        with LeaseKeeper(self.factory, self.settings, job_id, self.worker_id) as lease:
            try:
                outcome = evaluate_job(self.factory, self.storage, job_id, self.settings,
                                       should_stop=lambda: stop.is_set() or bool(lease.abandoned))
            except EvaluationAborted:
                self._aborted(job_id, lease)
                return
            except (sa.exc.SQLAlchemyError, NotFound):
                raise  # the database is unwell (the lease runs out, the job is retried)
            except Exception as err:  # a defect, not a property of the job: record it
                log.exception("worker %s: job %d crashed", self.worker_id, job_id)
                outcome = Outcome(job_id, failure=FailureKind.INFRASTRUCTURE,
                                  reason=f"the evaluation crashed: {type(err).__name__}: {err}")
            taken = self._deliver(outcome)
        what = f"failed ({outcome.failure}: {outcome.reason})" if outcome.failed else \
            f"succeeded ({(outcome.result or {}).get('status')})"
        log.info("worker %s: job %d %s%s", self.worker_id, job_id, what,
                 "" if taken else "; not recorded (already finished)")

    def _deliver(self, outcome: Outcome) -> bool:
        """Write the outcome back, trying again when the database reports a conflict
        (PostgreSQL found a deadlock, SQLite stayed locked)."""
        tries = 0
        while True:
            tries += 1
            try:
                with transaction(self.factory) as session:
                    return deliver(session, outcome, self.worker_id, self.storage)
            except sa.exc.OperationalError as err:
                if tries >= DELIVERY_TRIES:
                    raise
                log.warning("worker %s: job %d: delivery failed, trying again: %s",
                            self.worker_id, outcome.job_id, err)
                time.sleep(DELIVERY_BACKOFF_S * tries)

    def _aborted(self, job_id: int, lease: LeaseKeeper) -> None:
        if lease.abandoned:
            log.info("worker %s: job %d abandoned: %s", self.worker_id, job_id, lease.abandoned)
            return
        with transaction(self.factory) as session:
            released = release_job(session, job_id, self.worker_id, "its worker was stopped")
        log.info("worker %s: job %d %s", self.worker_id, job_id,
                 "handed back to the queue" if released else "was no longer ours")


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
    _configure_logging()
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


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(processName)s %(message)s")


# ----------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker command's options (``--workers N``, ``--once``)."""
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes (default: PADDOCK_WORKERS, else 2)")
    parser.add_argument("--once", action="store_true",
                        help="in this process, evaluate at most one queued job, then exit")


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
    _configure_logging()
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
