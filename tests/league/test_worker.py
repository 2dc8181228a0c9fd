"""Workers: evaluations end to end, and fault tests with real worker processes.

The first half runs a :class:`~league.processes.worker.Worker` in the test process: results,
failures and their reasons, heats, stopping and abandoning. (Crashes, deleted jobs and
delivery conflicts are tested through the worker and the Ray task alike, in
``test_ray_executor.py``: they share one fault boundary.) The second half starts real
processes (``python -m league.processes.worker``) against the test database and kills, races and
duplicates them.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator import replay
from evaluator.actions import ActionSpec
from evaluator.metadata import ModelMetadata
from evaluator.observation import OBS_DIM
from evaluator.onnx_io import mlp_policy
from evaluator.race import run_race
from evaluator.validate import validate_policy
from league.config import Settings
from league.db import transaction
from league.models import (
    Entry,
    EvaluationJob,
    FailureKind,
    Heat,
    JobKind,
    JobStatus,
    Race,
    Replay,
    Result,
    User,
)
from league.processes.evaluation import deliver, evaluate_job
from league.processes.worker import Worker
from league.rules import headtohead, jobs, submissions
from league.rules.races import race_config
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Database, Factory

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LONG_RACE = {"laps": 12, "trials": 1, "time_cap": 3600.0}  # ~9,000 steps at SLOW_SPEED
SLOW_SPEED = 0.5
WAIT_S = 120.0  # how long a test waits for a process before giving up (not a speed check)
T = TypeVar("T")


def nan_policy() -> bytes:
    """A policy that passes validation and answers every observation with NaN."""
    meta = ModelMetadata(ActionSpec.continuous(speed=(1.0, 1.0)), name="broken")
    weights = np.zeros((2, OBS_DIM), dtype=np.float32)
    return mlp_policy([(weights, np.full(2, np.nan, dtype=np.float32))],
                      meta).SerializeToString()


def settings_for(db: Database, storage: Storage, **kw: Any) -> Settings:
    """Settings pointing at the test database and storage."""
    return Settings(database_url=db.url, storage_dir=storage.root, secret_key="test", **kw)


def enter(session: Session, storage: Storage, make: Factory, race: Race, racer: User,
          data: bytes | None = None) -> Entry:
    """Submit ``data`` (a good policy by default) to ``race``."""
    return submissions.submit_entry(session, storage, race, racer, data or make.policy(),
                                    now=make.now)


def run_one(db: Database, storage: Storage, **kw: Any) -> int | None:
    """One job through a worker in this process."""
    worker = Worker(settings_for(db, storage, **kw), "test-worker")
    try:
        return worker.run_once()
    finally:
        worker.close()


def read(db: Database, query: Callable[[Session], T]) -> T:
    """Run ``query`` in its own short transaction."""
    with transaction(db.factory) as s:
        return query(s)


def job_of(db: Database, job_id: int) -> EvaluationJob:
    """The job as committed now (attributes loaded)."""
    return read(db, lambda s: jobs.get_job(s, job_id))


def results_of(db: Database, job_id: int) -> list[Result]:
    """Every result row of a job."""
    return read(db, lambda s: list(s.scalars(sa.select(Result).where(Result.job_id == job_id))))


def wait_for(check: Callable[[], T | None], what: str, logs: Callable[[], str] = str) -> T:
    """Poll ``check`` until it returns something; fail (with the logs) after ``WAIT_S``."""
    deadline = time.monotonic() + WAIT_S
    while (value := check()) is None or value is False:
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}\n{logs()}")
        time.sleep(0.05)
    return value


def running_owner(db: Database, job_id: int) -> str | None:
    """Who holds a running job's lease, if it is running."""
    job = job_of(db, job_id)
    return job.lease_owner if job.status == JobStatus.RUNNING else None


def final_job(db: Database, job_id: int) -> EvaluationJob | None:
    """The job, once it is succeeded, failed or cancelled."""
    job = job_of(db, job_id)
    return job if job.status in jobs.FINAL else None


def events(job: EvaluationJob) -> list[str]:
    """The job's log lines without their timestamps."""
    return [line.split(" ", 1)[1] for line in job.log.splitlines()]


# --------------------------------------------------------------------- in-process evaluations
def test_an_entry_gets_the_result_it_would_get_at_home(db: Database, session: Session,
                                                       storage: Storage, make: Factory) -> None:
    race = make.race(session, trials=2)
    data = make.policy()
    entry = enter(session, storage, make, race, make.user(session), data)
    session.commit()
    config = race_config(race)
    session.close()
    job_id = run_one(db, storage)
    home = run_race(config, [validate_policy(data)], record=False).to_dict()
    job = job_of(db, job_id or 0)
    assert job.status == JobStatus.SUCCEEDED, job.log
    (result,) = results_of(db, job.id)
    assert (result.entry_id, result.status, result.data) == (entry.id, "finished", home)
    assert result.ranking_time_s == home["ranking_time_s"] and result.ranking_laps == 1
    assert events(job)[-1].startswith("succeeded: finished (result from test-worker); raced in")
    replays = read(db, lambda s: list(s.scalars(
        sa.select(Replay).where(Replay.job_id == job.id).order_by(Replay.trial))))
    assert [r.trial for r in replays] == [1, 2]
    for r in replays:
        decoded = replay.decode(storage.get("replays", r.sha256))
        assert decoded.meta["trial"] == r.trial and decoded.meta["job"] == job.id
        assert decoded.cars[0].policy_sha256 == hashlib.sha256(data).hexdigest()


def test_a_policy_error_is_a_result_not_a_failure(db: Database, session: Session,
                                                  storage: Storage, make: Factory) -> None:
    race = make.race(session)
    enter(session, storage, make, race, make.user(session), nan_policy())
    session.commit()
    session.close()
    job = job_of(db, run_one(db, storage) or 0)
    assert (job.status, job.failure_kind) == (JobStatus.SUCCEEDED, None)
    (result,) = results_of(db, job.id)
    assert result.status == "policy_error" and result.ranking_time_s is None
    assert "non-finite" in result.data["error"]


def _track_changed(session: Session, storage: Storage, entry: Entry) -> None:
    entry.race.track_digest = "0" * 64


def _model_lost(session: Session, storage: Storage, entry: Entry) -> None:
    storage.path("models", entry.model.sha256).unlink()


def _rules_tightened(session: Session, storage: Storage, entry: Entry) -> None:
    entry.model.model_metadata = {"action_space_type": "continuous", "action_space": {
        "steering_angle": {"low": -30, "high": 30}, "speed": {"low": 0.5, "high": 99}}}


@pytest.mark.parametrize("damage, kind, reason", [
    (_track_changed, FailureKind.INFRASTRUCTURE,
     r"^track 'oval' has changed since race \d+ was created \(geometry [0-9a-f]{12}, the "
     r"race's 000000000000\); results on it would not be comparable$"),
    (_model_lost, FailureKind.INFRASTRUCTURE,
     r"^entry \d+: model [0-9a-f]{12} is missing from storage$"),
    (_rules_tightened, FailureKind.VALIDATION,
     r"^entry \d+: the stored model no longer passes validation: metadata: speed 99"),
], ids=["track changed", "model lost", "metadata refused"])
def test_a_job_that_cannot_race_fails_with_its_reason(
        db: Database, session: Session, storage: Storage, make: Factory,
        damage: Callable[[Session, Storage, Entry], None], kind: FailureKind,
        reason: str) -> None:
    entry = enter(session, storage, make, make.race(session), make.user(session))
    damage(session, storage, entry)
    session.commit()
    session.close()
    job = job_of(db, run_one(db, storage) or 0)
    assert (job.status, job.failure_kind) == (JobStatus.FAILED, kind)
    assert re.match(reason, job.failure_reason), job.failure_reason
    assert events(job)[-1] == f"failed ({kind}): {job.failure_reason}"
    assert results_of(db, job.id) == []


def _heat_job(session: Session, storage: Storage, make: Factory) -> tuple[int, int]:
    """A head-to-head race with two entries and one queued heat job; (heat id, job id)."""
    race = make.race(session, format="head-to-head", heats_per_round=1)
    entries = [enter(session, storage, make, race, make.user(session, name), make.policy(v))
               for name, v in (("ann", 2.0), ("bob", 1.5))]
    assert all(not e.jobs for e in entries)  # head-to-head entries race only in heats
    heat = Heat(race_id=race.id, round_no=1, seed=7, entry_ids=[e.id for e in entries])
    session.add(heat)
    session.flush()
    job = EvaluationJob(kind=JobKind.HEAT, heat_id=heat.id, queued_at=make.now)
    session.add(job)
    session.commit()
    return heat.id, job.id


def test_a_heat_is_raced_head_to_head_and_recorded_once(db: Database, session: Session,
                                                        storage: Storage, make: Factory,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    heat_id, job_id = _heat_job(session, storage, make)
    session.close()
    recorded: list[int] = []
    real = headtohead.record_heat

    def spy(s: Session, heat: Heat, result: dict[str, object], now: Any = None) -> None:
        recorded.append(heat.id)
        real(s, heat, result, now)

    monkeypatch.setattr(headtohead, "record_heat", spy)
    assert run_one(db, storage) == job_id
    settings = settings_for(db, storage)
    again = evaluate_job(db.factory, storage, job_id, settings)  # a second delivery
    assert not read(db, lambda s: deliver(s, again, "another-worker", storage))
    assert recorded == [heat_id]
    job = job_of(db, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.log
    (result,) = results_of(db, job_id)
    assert result.entry_id is None and result.data["format"] == "head-to-head"
    assert len(result.data["cars"]) == 2 and sorted(result.data["positions"]) == [0, 1]
    heat = read(db, lambda s: s.get(Heat, heat_id))
    assert heat is not None and heat.rated_at is not None
    assert sorted(heat.positions or []) == sorted(heat.entry_ids)
    trials = read(db, lambda s: list(s.scalars(sa.select(Replay.trial)
                                               .where(Replay.job_id == job_id))))
    assert sorted(trials) == [1, 2]  # one round: each car starts once from each slot


def test_a_heat_fails_clearly_without_head_to_head_support(
        db: Database, session: Session, storage: Storage, make: Factory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, job_id = _heat_job(session, storage, make)
    session.close()
    monkeypatch.setitem(sys.modules, "league.rules.headtohead", None)
    run_one(db, storage)
    job = job_of(db, job_id)
    assert (job.status, job.failure_kind) == (JobStatus.FAILED, FailureKind.INFRASTRUCTURE)
    assert job.failure_reason.startswith("head-to-head heats cannot be recorded here: ")


def _long_job(session: Session, storage: Storage, make: Factory) -> int:
    race = make.race(session, **LONG_RACE)
    entry = enter(session, storage, make, race, make.user(session), make.policy(SLOW_SPEED))
    job_id = entry.jobs[0].id
    session.commit()
    session.close()
    return job_id


def _in_thread(db: Database, storage: Storage, stop: threading.Event,
               **kw: Any) -> threading.Thread:
    worker = Worker(settings_for(db, storage, **kw), "test-worker")

    def work() -> None:
        try:
            worker.run_once(stop)
        finally:
            worker.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_a_stopped_worker_hands_its_job_back(db: Database, session: Session, storage: Storage,
                                             make: Factory) -> None:
    job_id = _long_job(session, storage, make)
    stop = threading.Event()
    thread = _in_thread(db, storage, stop)
    wait_for(lambda: running_owner(db, job_id), "the job to be claimed")
    stop.set()
    thread.join()
    job = job_of(db, job_id)
    assert (job.status, job.attempts, job.lease_owner) == (JobStatus.QUEUED, 0, None)
    assert events(job)[-1] == ("released by test-worker: its worker was stopped; queued again "
                               "(the attempt does not count)")
    assert results_of(db, job_id) == []


def test_a_job_cancelled_mid_race_is_abandoned(db: Database, session: Session,
                                               storage: Storage, make: Factory) -> None:
    job_id = _long_job(session, storage, make)
    thread = _in_thread(db, storage, threading.Event(), heartbeat_s=0.05)
    wait_for(lambda: running_owner(db, job_id), "the job to be claimed")
    assert read(db, lambda s: jobs.cancel_job(s, job_id, "entry disqualified"))
    thread.join()
    job = job_of(db, job_id)
    assert job.status == JobStatus.CANCELLED
    assert events(job)[-1] == "cancelled: entry disqualified"
    assert results_of(db, job_id) == []


# -------------------------------------------------------------------------- real processes
class Processes:
    """Worker processes started by a test (each in its own session), killed at teardown."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.dir = tmp_path
        self.env = env
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``python <args>`` with the test's environment; stderr goes to ``<name>.log``."""
        with open(self.dir / f"{name}.log", "wb") as err:
            proc = subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, env=self.env,
                                    stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        self.started[name] = proc
        return proc

    def logs(self) -> str:
        """Every process's log, for failure messages."""
        return "\n".join(f"--- {name}\n{(self.dir / f'{name}.log').read_text(errors='replace')}"
                         for name in self.started)

    def finish(self, name: str) -> tuple[int, str]:
        """Wait for a process; its exit status and stdout."""
        try:
            out, _ = self.started[name].communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} did not exit\n{self.logs()}")
        return self.started[name].returncode, out.decode()

    def stop_pool(self) -> None:
        """SIGTERM the pool: it exits with status 0 and leaves no worker behind."""
        self.started["pool"].send_signal(signal.SIGTERM)
        assert self.finish("pool")[0] == 0, self.logs()
        workers = re.findall(r"started \(pid (\d+)\)", (self.dir / "pool.log").read_text())
        assert workers, self.logs()
        for pid in workers:  # each was stopped and reaped by the pool
            with pytest.raises(ProcessLookupError):
                os.kill(int(pid), 0)

    def kill_all(self) -> None:
        """Kill what is left, whole process groups."""
        for proc in self.started.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def procs(db: Database, storage: Storage, tmp_path: Path) -> Iterator[Processes]:
    """Starts worker processes on the test database, with a 1.5 s lease."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_")}
    env.update(DATABASE_URL=db.url, PADDOCK_STORAGE_DIR=str(storage.root),
               PADDOCK_INSTANCE_DIR=str(tmp_path / "instance"), SECRET_KEY="test",
               PADDOCK_LEASE_S="1.5")
    processes = Processes(tmp_path, env)
    try:
        yield processes
    finally:
        processes.kill_all()


def test_a_worker_process_evaluates_a_submitted_entry(db: Database, session: Session,
                                                      storage: Storage, make: Factory,
                                                      procs: Processes) -> None:
    entry = enter(session, storage, make, make.race(session), make.user(session))
    job_id = entry.jobs[0].id
    session.commit()
    session.close()
    procs.start("worker", "-m", "league.processes.worker", "--once")
    assert procs.finish("worker")[0] == 0, procs.logs()
    job = job_of(db, job_id)
    assert job.status == JobStatus.SUCCEEDED, procs.logs()
    (result,) = results_of(db, job.id)
    assert (result.entry_id, result.status) == (entry.id, "finished")


def test_a_killed_workers_job_is_finished_once_by_another(db: Database, session: Session,
                                                          storage: Storage, make: Factory,
                                                          procs: Processes) -> None:
    job_id = _long_job(session, storage, make)
    procs.start("pool", "-m", "league.processes.worker", "--workers", "2")
    owner = wait_for(lambda: running_owner(db, job_id), "the job to be claimed", procs.logs)
    os.kill(int(owner.rsplit("-", 1)[1]), signal.SIGKILL)
    job = wait_for(lambda: final_job(db, job_id), "the job to finish", procs.logs)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2), job.log
    log = events(job)
    claims = [line.split(" claimed by ")[1].split(" ")[0] for line in log if "claimed" in line]
    assert claims[0] == owner and claims[1] != owner
    assert f"attempt 1 lost: {owner} stopped renewing its lease" in log[1]
    assert log[-1].startswith("succeeded: ") and f"(result from {claims[1]})" in log[-1]
    assert len(results_of(db, job_id)) == 1

    def restarted() -> bool:
        pool_log = (procs.dir / "pool.log").read_text()
        return "exited with -9" in pool_log and pool_log.count("started (pid") == 3

    wait_for(restarted, "the pool to restart the dead worker", procs.logs)
    procs.stop_pool()


def test_two_workers_share_a_queue_without_doubling(db: Database, session: Session,
                                                    storage: Storage, make: Factory,
                                                    procs: Processes) -> None:
    race = make.race(session)
    racer = make.user(session)
    job_ids = [enter(session, storage, make, race, racer).jobs[0].id for _ in range(6)]
    session.commit()
    session.close()
    procs.start("pool", "-m", "league.processes.worker", "--workers", "2")
    finished = [wait_for(lambda j=j: final_job(db, j), "every job to finish", procs.logs)
                for j in job_ids]
    procs.stop_pool()
    for job in finished:
        assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1), job.log
        assert sum("claimed by" in line for line in events(job)) == 1, job.log
    counted = read(db, lambda s: list(s.scalars(sa.select(Result.job_id).order_by(Result.job_id))))
    assert counted == sorted(job_ids)


DELIVER = """
import sys
from league.config import Settings
from league.db import transaction
from league.processes.evaluation import deliver, evaluate_job
from league.processes.worker import Worker

worker = Worker(Settings.from_env(), sys.argv[1])
outcome = evaluate_job(worker.factory, worker.storage, int(sys.argv[2]), worker.settings)
with transaction(worker.factory) as session:
    print(deliver(session, outcome, worker.worker_id, worker.storage))
"""


def test_the_same_job_delivered_by_two_processes_is_recorded_once(
        db: Database, session: Session, storage: Storage, make: Factory,
        procs: Processes) -> None:
    entry = enter(session, storage, make, make.race(session, trials=2), make.user(session))
    job = jobs.claim_job(session, "twin-a", 60.0)
    assert job is not None and job.entry_id == entry.id
    session.commit()
    session.close()
    for name in ("twin-a", "twin-b"):
        procs.start(name, "-c", DELIVER, name, str(job.id))
    answers = []
    for name in ("twin-a", "twin-b"):
        status, out = procs.finish(name)
        assert status == 0, procs.logs()
        answers.append(out.strip())
    assert sorted(answers) == ["False", "True"]
    assert len(results_of(db, job.id)) == 1
    done = job_of(db, job.id)
    assert done.status == JobStatus.SUCCEEDED
    assert sum(line.startswith("succeeded") for line in events(done)) == 1
    replays = read(db, lambda s: s.scalar(sa.select(sa.func.count(Replay.id))
                                          .where(Replay.job_id == job.id)))
    assert replays == 2
