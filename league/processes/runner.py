"""One claimed job's fault boundary, the same for every executor.

:func:`run_claimed_job` is what the local workers (:class:`league.processes.worker.Worker`) and
the Ray executor's tasks (:func:`league.processes.ray_executor.run_job`) call once a job has
been claimed under their lease. It keeps that lease with a :class:`LeaseKeeper`, races the job
with :func:`~league.processes.evaluation.evaluate_job` and writes the outcome with
:func:`~league.processes.evaluation.deliver`. A job ends here in one of these ways, each
recorded at most once:

1. It is already final (a retried Ray task whose result was written): nothing is raced.
2. The evaluation produced a result, or a failure of its own (``validation``,
   ``infrastructure``): the outcome is delivered.
3. The evaluation crashed (a defect, not a property of the job): an ``infrastructure``
   failure naming the exception is delivered, so a failed race never looks finished.
4. The race was cut short because the job is final elsewhere (cancelled, or finished by
   another holder of the job): abandoned, nothing is written.
5. The race was cut short because the executor is stopping: the job goes back to the queue
   without using up an attempt.
6. The job was deleted meanwhile (:class:`~league.errors.NotFound`): nothing is left to record.
7. The race ran past its wall-clock limit (:func:`evaluator.sandbox.evaluation_limit_s`, or
   ``PADDOCK_EVALUATION_TIMEOUT_S``): it is stopped at its next step and a ``time_budget``
   failure naming the limit is delivered (as for a policy past its inference budget). A race
   that does not even reach its next step (it hangs) stops having its lease renewed a lease
   later, so the reaper hands the job on.

A delivery is tried ``DELIVERY_TRIES`` times while the database reports a conflict. Database
errors while racing, and a delivery that keeps failing, propagate to the executor: its process
or task ends, the lease runs out and the reaper queues the job again (a new attempt).
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from evaluator.errors import PaddockError
from evaluator.policy_pool import PolicyPool
from evaluator.race_settings import Format, RaceConfig
from evaluator.sandbox import EvaluationTimedOut, WallClock, evaluation_limit_s
from league.config import Settings
from league.db import READ_ONLY, transaction
from league.errors import NotFound
from league.models import EvaluationJob, FailureKind, Race
from league.processes.evaluation import EvaluationAborted, Outcome, deliver, evaluate_job
from league.rules.jobs import FINAL, get_job, heartbeat, release_job
from league.rules.races import race_config
from league.storage import Storage

log = logging.getLogger(__name__)

HEARTBEATS_PER_LEASE = 3  # a lease survives two failed heartbeats
DELIVERY_TRIES = 3  # an outcome is written back this many times before the runner gives up
DELIVERY_BACKOFF_S = 0.5  # wait before the next try, times the tries so far


class LeaseKeeper:
    """Renews one job's lease from a thread while the job is being raced.

    It beats every ``heartbeat_s``, at most a third of the lease, so two beats may fail before
    the lease runs out. When the lease is lost the race goes on and its result is still
    offered (the first result of a job wins); when the job was meanwhile cancelled, finished
    elsewhere or deleted, :attr:`abandoned` says why and the race should stop.
    """

    def __init__(self, factory: sessionmaker[Session], settings: Settings, job_id: int,
                 owner: str, clock: WallClock | None = None) -> None:
        self.factory, self.settings, self.job_id, self.owner = factory, settings, job_id, owner
        self.clock = clock
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
            if self._hung():
                return
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

    def _hung(self) -> bool:
        """Whether the race is a lease past its wall-clock limit: it has not reached a step
        since, so it hangs, and the lease is left to run out for the reaper to hand on."""
        clock = self.clock
        if clock is None or time.monotonic() < clock.deadline + self.settings.lease_s:
            return False
        log.error("job %d: %.0f s past its wall-clock limit and still running; no longer "
                  "renewing its lease", self.job_id, time.monotonic() - clock.deadline)
        self.lost = True
        return True


def run_claimed_job(factory: sessionmaker[Session], storage: Storage, settings: Settings,
                    job_id: int, owner: str, *, stop: threading.Event | None = None,
                    pool: PolicyPool | None = None) -> str:
    """Race a job ``owner`` has claimed and record how it ended; returns one line saying what
    happened (``job <id>: ...``).

    ``stop`` cuts the race short and hands the job back to the queue (a stopping worker).
    ``pool``: the caller's warm policy processes (:mod:`evaluator.policy_pool`), if it keeps
    any.
    """
    try:
        with transaction(factory) as session:
            session.connection(execution_options={READ_ONLY: True})
            job = get_job(session, job_id)
            status, limit_s = job.status, wall_clock_limit(session, job, settings)
        if status in FINAL:
            return f"job {job_id}: already {status}, nothing to do"
        return _race(factory, storage, settings, job_id, owner, stop or threading.Event(),
                     WallClock(limit_s), pool)
    except NotFound as err:  # the job (or what it races) was deleted: nothing left to record
        log.warning("%s: job %d is gone: %s", owner, job_id, err)
        return f"job {job_id}: gone, nothing recorded ({err})"


def wall_clock_limit(session: Session, job: EvaluationJob, settings: Settings) -> float:
    """The wall-clock limit of racing ``job`` (:func:`evaluator.sandbox.evaluation_limit_s`
    for what it races, or ``PADDOCK_EVALUATION_TIMEOUT_S``)."""
    options = settings.sandbox()
    try:
        if job.heat is not None:  # raced as evaluation._heat_plan sets it up
            race = session.get(Race, job.heat.race_id)
            if race is not None:
                config = race_config(race).with_(format=Format.HEAD_TO_HEAD,
                                                 trials=race.heats_per_round)
                return evaluation_limit_s(config, len(job.heat.entry_ids), options)
        elif job.entry is not None:
            return evaluation_limit_s(race_config(job.entry.race), 1, options)
    except PaddockError:
        pass  # the evaluation refuses these settings itself, with the reason
    return evaluation_limit_s(RaceConfig(), 1, options)


def _race(factory: sessionmaker[Session], storage: Storage, settings: Settings, job_id: int,
          owner: str, stop: threading.Event, clock: WallClock,
          pool: PolicyPool | None = None) -> str:
    with LeaseKeeper(factory, settings, job_id, owner, clock) as lease:

        def should_stop() -> bool:
            clock.check()
            return stop.is_set() or bool(lease.abandoned)

        try:
            outcome = evaluate_job(factory, storage, job_id, settings, should_stop=should_stop,
                                   pool=pool)
        except EvaluationAborted:
            return _aborted(factory, job_id, owner, lease)
        except EvaluationTimedOut as err:
            log.warning("%s: job %d: %s", owner, job_id, err)
            outcome = Outcome(job_id, failure=FailureKind.TIME_BUDGET, reason=str(err))
        except (sa.exc.SQLAlchemyError, NotFound):
            raise  # the database is unwell (the lease runs out), or the job is gone
        except Exception as err:  # a defect, not a property of the job: record it
            log.exception("%s: job %d crashed", owner, job_id)
            outcome = Outcome(job_id, failure=FailureKind.INFRASTRUCTURE,
                              reason=f"the evaluation crashed: {type(err).__name__}: {err}")
        taken = deliver_with_retry(factory, storage, outcome, owner)
    what = f"failed ({outcome.failure}: {outcome.reason})" if outcome.failed else \
        f"succeeded ({(outcome.result or {}).get('status')})"
    return f"job {job_id}: {what}{'' if taken else '; not recorded (already finished)'}"


def deliver_with_retry(factory: sessionmaker[Session], storage: Storage, outcome: Outcome,
                       owner: str) -> bool:
    """Write an outcome back, trying again when the database reports a conflict (PostgreSQL
    found a deadlock, SQLite stayed locked); False when it changed nothing.

    Each try is its own transaction and :func:`~league.processes.evaluation.deliver` is keyed
    by the job, so a try that did commit after all is not recorded twice.
    """
    tries = 0
    while True:
        tries += 1
        try:
            with transaction(factory) as session:
                return deliver(session, outcome, owner, storage)
        except sa.exc.OperationalError as err:
            if tries >= DELIVERY_TRIES:
                raise
            log.warning("%s: job %d: delivery failed, trying again: %s", owner,
                        outcome.job_id, err)
            time.sleep(DELIVERY_BACKOFF_S * tries)


def _aborted(factory: sessionmaker[Session], job_id: int, owner: str,
             lease: LeaseKeeper) -> str:
    """The race was cut short: abandon a job that is final elsewhere, else hand it back."""
    if lease.abandoned:
        return f"job {job_id}: abandoned ({lease.abandoned})"
    with transaction(factory) as session:
        released = release_job(session, job_id, owner, "its worker was stopped")
    return f"job {job_id}: {'handed back to the queue' if released else 'was no longer ours'}"
