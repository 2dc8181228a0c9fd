"""The Ray executor: one fault boundary with the local workers, and a local Ray cluster.

The first half runs the same faults (a crash, a conflict while delivering, a job deleted or
cancelled mid-race) through a local :class:`~league.processes.worker.Worker` and through the
Ray task's body, :func:`~league.processes.ray_executor.run_job`, called as a plain function, and
expects the same line and the same job log from both: the two executors must not drift apart
again. It needs no Ray.

The second half runs against a local Ray started here: evaluations arrive once, however often
they are delivered, and a lost task is recovered through the database. It is skipped when Ray
(the optional ``ray`` extra) is not installed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from league.config import Settings
from league.db import transaction
from league.models import Entry, EvaluationJob, FailureKind, JobStatus, Race, Result
from league.processes import evaluation, ray_executor, runner
from league.processes.worker import Worker
from league.rules import jobs, submissions
from league.rules.leaderboard import race_leaderboard
from league.storage import Storage

try:
    import ray
except ImportError:  # the optional ``ray`` extra: the tests on a cluster are skipped
    ray = None

if TYPE_CHECKING:
    from conftest import Database, Factory

CLUSTER_CPUS = 2
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # the minimum is 75 MB; the tasks return one line
DEADLINE_S = 120.0  # the first task of a Ray worker imports the simulator
OWNER = "test-executor"  # both executors claim under this id, so their job logs compare
CRASH = "the evaluation crashed: RuntimeError: simulated defect"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance of two CPUs for the tests on a cluster (skipped without Ray)."""
    pytest.importorskip("ray")
    ray.init(num_cpus=CLUSTER_CPUS, include_dashboard=False,
             object_store_memory=OBJECT_STORE_BYTES)
    try:
        yield
    finally:
        ray_executor.reset()
        ray.shutdown()


def _settings(db: Database, storage: Storage, lease_s: float = 30.0,
              heartbeat_s: float = 1.0) -> Settings:
    return Settings(database_url=db.url, storage_dir=storage.root, secret_key="test",
                    executor="ray", lease_s=lease_s, heartbeat_s=heartbeat_s)


def _submit(session: Session, storage: Storage, make: Factory, count: int = 1,
            speed: float = 2.0, **race: object) -> list[Entry]:
    race_ = make.race(session, **race)
    entries = [submissions.submit_entry(session, storage, race_, make.user(session, f"r{i}"),
                                        make.policy(speed), now=make.now) for i in range(count)]
    session.commit()
    return entries


def _drain(dispatcher: ray_executor.RayDispatcher, factory: sessionmaker[Session]) -> None:
    """Dispatch until no job is queued or running and no task is in flight."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        dispatcher.dispatch(factory)
        with factory() as session:
            pending = session.scalar(sa.select(sa.func.count(EvaluationJob.id)).where(
                EvaluationJob.status.in_((JobStatus.QUEUED, JobStatus.RUNNING))))
        if not pending and not dispatcher.in_flight:
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs still pending after {DEADLINE_S:.0f} s")


def _results(factory: sessionmaker[Session]) -> list[tuple[int | None, int]]:
    """(entry id, job id) of every result."""
    with factory() as session:
        return [(e, j) for e, j in session.execute(
            sa.select(Result.entry_id, Result.job_id).order_by(Result.id))]


def _job(factory: sessionmaker[Session]) -> EvaluationJob:
    """The one job (read in a transaction of its own: on SQLite a reader holds the lock)."""
    with factory() as session:
        return session.scalars(sa.select(EvaluationJob)).one()


def _events(factory: sessionmaker[Session], job_id: int) -> list[str]:
    """The job's log lines without their timestamps (none when the job is gone)."""
    with factory() as session:
        job = session.get(EvaluationJob, job_id)
        return [] if job is None else [line.split(" ", 1)[1] for line in job.log.splitlines()]


# ------------------------------------------------------------ one fault boundary, two executors
Executor = Callable[[Settings], tuple[int, str]]


@pytest.fixture(params=["local worker", "ray task"])
def executor(request: pytest.FixtureRequest, db: Database, caplog: pytest.LogCaptureFixture,
             monkeypatch: pytest.MonkeyPatch) -> Executor:
    """Claims the oldest queued job under ``OWNER`` and runs it as one executor does: a
    :class:`Worker`, or the Ray task's body called as a plain function (no Ray needed).
    Returns (job id, the line saying what happened)."""
    if request.param == "local worker":
        caplog.set_level(logging.INFO, logger="league.processes.worker")

        def through_worker(settings: Settings) -> tuple[int, str]:
            worker = Worker(settings, OWNER)
            try:
                job_id = worker.run_once()
            finally:
                worker.close()
            assert job_id is not None
            prefix = f"worker {OWNER}: "
            (line,) = [r.getMessage().removeprefix(prefix) for r in caplog.records
                       if r.getMessage().startswith(f"{prefix}job {job_id}: ")]
            return job_id, line

        return through_worker

    monkeypatch.setattr(ray_executor, "_database", lambda _url: db.factory)

    def through_ray_task(settings: Settings) -> tuple[int, str]:
        with transaction(db.factory) as session:  # what the dispatcher does before submitting
            job = jobs.claim_job(session, OWNER, settings.lease_s)
            assert job is not None
            job_id = job.id
        return job_id, ray_executor.run_job(ray_executor.TaskSettings.of(settings), job_id,
                                            OWNER)

    return through_ray_task


def _crash(*_args: Any, **_kw: Any) -> None:
    raise RuntimeError("simulated defect")


def _conflict() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("UPDATE evaluation_jobs", {}, Exception("database is locked"))


def test_a_crash_is_recorded_once_as_an_infrastructure_failure(
        executor: Executor, db: Database, session: Session, storage: Storage, make: Factory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _submit(session, storage, make)
    monkeypatch.setattr(evaluation, "run_tracks", _crash)
    job_id, line = executor(_settings(db, storage))
    assert line == f"job {job_id}: failed (infrastructure: {CRASH})"
    job = _job(db.factory)
    assert (job.status, job.failure_kind, job.failure_reason) == (
        JobStatus.FAILED, FailureKind.INFRASTRUCTURE, CRASH)
    assert _events(db.factory, job_id)[1:] == [f"failed (infrastructure): {CRASH}"]
    assert _results(db.factory) == []


def test_a_delivery_conflict_is_tried_again(executor: Executor, db: Database, session: Session,
                                            storage: Storage, make: Factory,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _submit(session, storage, make)
    monkeypatch.setattr(evaluation, "run_tracks", _crash)
    monkeypatch.setattr(runner, "DELIVERY_BACKOFF_S", 0.0)
    real, tries = evaluation.fail_job, []

    def locked_once(*args: Any, **kw: Any) -> bool:
        tries.append(1)
        if len(tries) == 1:
            raise _conflict()
        return real(*args, **kw)

    monkeypatch.setattr(evaluation, "fail_job", locked_once)
    job_id, line = executor(_settings(db, storage))
    assert len(tries) == 2
    assert line == f"job {job_id}: failed (infrastructure: {CRASH})"
    assert _job(db.factory).status == JobStatus.FAILED
    assert _events(db.factory, job_id)[1:] == [f"failed (infrastructure): {CRASH}"]


def test_a_delivery_that_keeps_failing_leaves_the_job_to_the_reaper(
        executor: Executor, db: Database, session: Session, storage: Storage, make: Factory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _submit(session, storage, make)
    monkeypatch.setattr(evaluation, "run_tracks", _crash)
    monkeypatch.setattr(runner, "DELIVERY_BACKOFF_S", 0.0)
    tries = []

    def always_locked(*_args: Any, **_kw: Any) -> bool:
        tries.append(1)
        raise _conflict()

    monkeypatch.setattr(evaluation, "fail_job", always_locked)
    with pytest.raises(sa.exc.OperationalError):
        executor(_settings(db, storage))
    assert len(tries) == runner.DELIVERY_TRIES
    job = _job(db.factory)  # still running: it neither looks finished nor failed
    assert (job.status, job.lease_owner, job.failure_kind) == (JobStatus.RUNNING, OWNER, None)
    assert _results(db.factory) == []


def test_a_job_deleted_mid_race_ends_with_nothing_recorded(
        executor: Executor, db: Database, session: Session, storage: Storage, make: Factory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _submit(session, storage, make)

    def delete_then_crash(*_args: Any, **_kw: Any) -> None:
        with transaction(db.factory) as s:
            s.execute(sa.delete(EvaluationJob))
        raise RuntimeError("simulated defect")

    monkeypatch.setattr(evaluation, "run_tracks", delete_then_crash)
    job_id, line = executor(_settings(db, storage))
    assert line == f"job {job_id}: gone, nothing recorded (no evaluation job {job_id})"
    with db.factory() as s:
        assert s.scalar(sa.select(sa.func.count(EvaluationJob.id))) == 0
    assert _results(db.factory) == []


def test_a_job_cancelled_mid_race_is_abandoned(executor: Executor, db: Database,
                                               session: Session, storage: Storage,
                                               make: Factory,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _submit(session, storage, make)

    def cancel_then_race_on(*_args: Any, progress: Callable[[int, int], None],
                            **_kw: Any) -> None:
        with transaction(db.factory) as s:
            assert jobs.cancel_job(s, s.scalars(sa.select(EvaluationJob.id)).one(),
                                   "entry disqualified")
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:  # until the lease keeper sees the cancellation
            progress(0, 1)
            time.sleep(0.01)
        raise AssertionError("the race was never stopped")

    monkeypatch.setattr(evaluation, "run_tracks", cancel_then_race_on)
    job_id, line = executor(_settings(db, storage, heartbeat_s=0.05))
    assert line == f"job {job_id}: abandoned (the job is already cancelled)"
    job = _job(db.factory)
    assert (job.status, job.failure_kind) == (JobStatus.CANCELLED, None)
    assert _events(db.factory, job_id)[1:] == ["cancelled: entry disqualified"]
    assert _results(db.factory) == []


def test_a_retried_task_of_a_final_job_races_nothing(db: Database, session: Session,
                                                     storage: Storage, make: Factory,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _submit(session, storage, make)
    settings = _settings(db, storage)
    with transaction(db.factory) as s:
        job = jobs.claim_job(s, OWNER, settings.lease_s)
        assert job is not None and jobs.cancel_job(s, job.id, "entry disqualified")
    monkeypatch.setattr(ray_executor, "_database", lambda _url: db.factory)
    monkeypatch.setattr(evaluation, "run_tracks", _crash)  # recorded if it were raced
    line = ray_executor.run_job(ray_executor.TaskSettings.of(settings), job.id, OWNER)
    assert line == f"job {job.id}: already cancelled, nothing to do"
    assert _events(db.factory, job.id)[-1] == "cancelled: entry disqualified"


# ------------------------------------------------------------------------ on a local Ray cluster
def test_a_submitted_entry_is_evaluated_once(local_ray: None, db: Database, session: Session,
                                             storage: Storage, make: Factory) -> None:
    (entry,) = _submit(session, storage, make)
    settings = _settings(db, storage)
    dispatcher = ray_executor.RayDispatcher(settings)
    _drain(dispatcher, db.factory)
    job = _job(db.factory)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert f"claimed by {dispatcher.owner}" in job.log
    assert _results(db.factory) == [(entry.id, job.id)]
    with db.factory() as s:
        (row,) = race_leaderboard(s, s.get_one(Race, entry.race_id))
    assert row.entry_id == entry.id and row.time_s is not None and row.rank == 1


def test_module_dispatch_keeps_one_dispatcher(local_ray: None, db: Database, session: Session,
                                              storage: Storage, make: Factory) -> None:
    (entry,) = _submit(session, storage, make)
    settings = _settings(db, storage)
    assert ray_executor.dispatch(settings, db.factory) == 1
    assert ray_executor.dispatch(settings, db.factory) == 0  # nothing left to claim
    _drain(ray_executor._dispatchers[(db.url, "")], db.factory)
    assert [e for e, _ in _results(db.factory)] == [entry.id]


def test_tasks_in_flight_are_bounded_by_the_cluster_cpus(local_ray: None, db: Database,
                                                         session: Session, storage: Storage,
                                                         make: Factory) -> None:
    entries = _submit(session, storage, make, count=5)
    dispatcher = ray_executor.RayDispatcher(_settings(db, storage))
    assert dispatcher.capacity() == CLUSTER_CPUS
    assert dispatcher.dispatch(db.factory) == CLUSTER_CPUS
    assert len(dispatcher.in_flight) == CLUSTER_CPUS
    assert dispatcher.dispatch(db.factory) <= CLUSTER_CPUS - len(dispatcher.in_flight)
    _drain(dispatcher, db.factory)
    assert sorted(e for e, _ in _results(db.factory)) == sorted(e.id for e in entries)


def test_a_job_delivered_twice_yields_one_result(local_ray: None, db: Database,
                                                 session: Session, storage: Storage,
                                                 make: Factory) -> None:
    (entry,) = _submit(session, storage, make)
    settings = _settings(db, storage)
    owner = ray_executor.dispatcher_id()
    job = jobs.claim_job(session, owner, settings.lease_s)
    assert job is not None
    session.commit()
    # What a retry after a lost reply looks like: the same job runs twice, at the same time.
    task = ray.remote(ray_executor.run_job)
    lines = ray.get([task.remote(settings, job.id, owner) for _ in range(2)])
    recorded = [line for line in lines if "succeeded (" in line and "not recorded" not in line]
    assert len(recorded) == 1, lines
    assert _results(db.factory) == [(entry.id, job.id)]
    late = ray.get(task.remote(settings, job.id, owner))
    assert late == f"job {job.id}: already succeeded, nothing to do"
    assert _results(db.factory) == [(entry.id, job.id)]


def test_a_lost_task_is_queued_again_by_the_reaper(local_ray: None, db: Database,
                                                   session: Session, storage: Storage,
                                                   make: Factory) -> None:
    # Three trials of ten slow simulated minutes keep the task busy for a second or two.
    (entry,) = _submit(session, storage, make, speed=0.5, laps=20, trials=3, time_cap=600)
    dispatcher = ray_executor.RayDispatcher(_settings(db, storage, lease_s=2.0))
    assert dispatcher.dispatch(db.factory) == 1
    ((job_id, ref),) = dispatcher.in_flight.items()
    time.sleep(0.5)  # let the task start: a task cancelled while Ray places it may still run
    ray.cancel(ref, force=True)  # kills the worker process, as a lost node would
    with pytest.raises(ray.exceptions.RayError):
        ray.get(ref, timeout=DEADLINE_S)
    deadline = time.monotonic() + DEADLINE_S
    reaped: list[int] = []
    while not reaped and time.monotonic() < deadline:
        time.sleep(0.5)
        with db.factory.begin() as s:  # the scheduler's reap-leases job
            reaped = jobs.reap_expired(s)
    assert reaped == [job_id]
    _drain(dispatcher, db.factory)
    job = _job(db.factory)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert "stopped renewing its lease" in job.log
    assert _results(db.factory) == [(entry.id, job_id)]


def test_tasks_get_no_secret_and_never_busy_wait(db: Database, storage: Storage) -> None:
    task = ray_executor.TaskSettings.of(_settings(db, storage))
    assert task.secret_key == "" and task.database_url == db.url
    assert (task.sandbox().spin_s, task.sandbox().child_spin_s) == (0.0, 0.0)
