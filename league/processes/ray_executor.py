"""The ``ray`` executor: every claimed evaluation job runs as one Ray task on a cluster.

The scheduler calls :func:`dispatch` every second (``PADDOCK_EXECUTOR=ray``). It claims queued
jobs under a lease owned by ``ray-dispatcher-<host>-<pid>`` and submits each as a task running
:func:`run_job`, never more at once than the cluster has CPUs. The task opens the database and
the storage itself and hands the job to :func:`league.processes.runner.run_claimed_job`, the
same fault boundary as the local workers: it renews the dispatcher's lease from a thread, races
the job, delivers the outcome (trying again on a database conflict), records a crash as an
``infrastructure`` failure, and ends quietly when the job was deleted meanwhile.

The database stays the source of truth; Ray only carries work. A task lost with its node stops
renewing its lease, and the scheduler's lease reaper queues the job again (a new attempt). Ray
retries a task whose worker died, and a retry may deliver a job whose result is already
written: harmless, because a job's result is keyed by its id and the first one wins (the runner
finds such a job final and does not race it again). A task that ends in an error after Ray's
retries is left to the reaper the same way.

Operators: every Ray node needs the same Paddock version installed (``pip install
'paddock[ray]'``), the database reachable at ``DATABASE_URL`` (so not a SQLite file, except on a
single machine) and ``PADDOCK_STORAGE_DIR`` at the same path on shared storage (NFS or
similar): tasks read models from it and write replays to it. Paddock does not copy files.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import os
import socket
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from evaluator.sandbox import SandboxOptions
from league.config import ConfigError, Settings
from league.db import make_engine, session_factory, transaction
from league.processes.runner import run_claimed_job
from league.rules.jobs import claim_job
from league.storage import Storage

log = logging.getLogger(__name__)

TASK_MAX_RETRIES = 2  # Ray re-runs a task whose worker or node died this many times
# Errors worth a retry of the whole task: the database was briefly unreachable or locked.
RETRY_EXCEPTIONS: list[type[BaseException]] = [sa.exc.OperationalError, sa.exc.InterfaceError]
TASK_CPUS = 1  # a time trial alternates between the simulator and its policy: one core


def _ray() -> Any:
    """The ``ray`` module: an optional extra, imported only when the ray executor is used.
    Typed as Any so that mypy checks this module alike with and without Ray installed."""
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise ConfigError("PADDOCK_EXECUTOR=ray needs Ray on this machine: pip install "
                          "'paddock[ray]'") from err


@dataclasses.dataclass(frozen=True)
class TaskSettings(Settings):
    """Settings as a task receives them: no secret key, and policy pipes that never busy-wait.

    Ray runs one task per CPU and a task runs two or more processes (the simulator and each
    policy), so a spinning process only takes the core another one needs: on 2 CPUs, time
    trials through Ray ran 2.8 times faster without it (25,000 instead of 8,800 an hour).
    """

    @classmethod
    def of(cls, settings: Settings) -> TaskSettings:
        """``settings`` for a task."""
        fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
        return cls(**{**fields, "secret_key": ""})

    def sandbox(self) -> SandboxOptions:
        """The sandbox options, without busy-waiting on either side of the pipes."""
        return dataclasses.replace(super().sandbox(), spin_s=0.0, child_spin_s=0.0)


def dispatcher_id() -> str:
    """The lease owner of this process's jobs: ``ray-dispatcher-<hostname>-<pid>``."""
    return f"ray-dispatcher-{socket.gethostname()}-{os.getpid()}"


# -------------------------------------------------------------------------- the dispatcher
class RayDispatcher:
    """Claims queued jobs and keeps at most one Ray task per cluster CPU in flight.

    Not thread-safe: the scheduler runs its ``dispatch`` job one at a time.
    """

    def __init__(self, settings: Settings, owner: str | None = None) -> None:
        self.settings = settings
        self.owner = owner or dispatcher_id()
        self._task_settings = TaskSettings.of(settings)
        self._in_flight: dict[int, Any] = {}  # job id -> the Ray ObjectRef of its task
        self._task: Any = None

    @property
    def in_flight(self) -> dict[int, Any]:
        """The jobs whose tasks were submitted and not yet seen to end (job id -> ObjectRef)."""
        return dict(self._in_flight)

    def dispatch(self, factory: sessionmaker[Session]) -> int:
        """Collect ended tasks, then claim and submit queued jobs up to the cluster's CPUs;
        returns how many jobs were handed to Ray."""
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.settings.ray_address or None)
            log.info("ray executor: connected to %s", self.settings.ray_address or "a new "
                     "local Ray instance")
        self._collect()
        room = self.capacity() - len(self._in_flight)
        if room <= 0:
            return 0
        with transaction(factory) as session:
            claimed = []
            for _ in range(room):
                job = claim_job(session, self.owner, self.settings.lease_s)
                if job is None:
                    break
                claimed.append(job.id)
        # Submitted only once the claims are committed, so a task never finds its job queued.
        task = self._remote()
        for job_id in claimed:
            self._in_flight[job_id] = task.options(name=f"paddock-job-{job_id}").remote(
                self._task_settings, job_id, self.owner)
        return len(claimed)

    def capacity(self) -> int:
        """How many tasks may be in flight: the cluster's CPUs (read each time: clusters
        grow and shrink)."""
        return max(1, int(_ray().cluster_resources().get("CPU", 0) // TASK_CPUS))

    def _remote(self) -> Any:
        if self._task is None:
            self._task = _ray().remote(num_cpus=TASK_CPUS, max_retries=TASK_MAX_RETRIES,
                                       retry_exceptions=RETRY_EXCEPTIONS)(run_job)
        return self._task

    def _collect(self) -> None:
        """Forget tasks that ended; log those that failed (their leases run out and the
        reaper queues the jobs again)."""
        if not self._in_flight:
            return
        ray = _ray()
        refs = {ref: job_id for job_id, ref in self._in_flight.items()}
        ended, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in ended:
            job_id = refs[ref]
            del self._in_flight[job_id]
            try:
                log.info("ray executor: %s", ray.get(ref))
            except ray.exceptions.RayError as err:
                log.warning("ray executor: the task of job %d failed; the job is queued again "
                            "when its lease runs out: %s", job_id, err)


_dispatchers: dict[tuple[str, str], RayDispatcher] = {}


def dispatch(settings: Settings, factory: sessionmaker[Session]) -> int:
    """Hand queued jobs to Ray (connecting on first use); returns how many were handed.

    One dispatcher per database and cluster lives as long as the process, so tasks in flight
    are remembered from one call to the next.
    """
    key = (settings.database_url, settings.ray_address)
    if key not in _dispatchers:
        _dispatchers[key] = RayDispatcher(settings)
    return _dispatchers[key].dispatch(factory)


def reset() -> None:
    """Forget every dispatcher and its tasks in flight (after ``ray.shutdown()``, in tests)."""
    _dispatchers.clear()


# ------------------------------------------------------------------------------- the task
@functools.lru_cache(maxsize=4)
def _database(url: str) -> sessionmaker[Session]:
    """One engine per database for the life of a Ray worker process (tasks reuse workers)."""
    return session_factory(make_engine(url))


def run_job(settings: Settings, job_id: int, owner: str) -> str:
    """The body of a Ray task: run one job claimed by ``owner`` through
    :func:`~league.processes.runner.run_claimed_job`; returns its line saying what happened.

    Since the runner is shared with the local workers, a task now also tries a delivery again
    when the database reports a conflict (before, the task failed and Ray retried it whole,
    racing the job again), and a job deleted meanwhile ends the task with a line instead of
    a ``NotFound`` error.
    """
    return run_claimed_job(_database(settings.database_url), Storage(settings.storage_dir),
                           settings, job_id, owner)
