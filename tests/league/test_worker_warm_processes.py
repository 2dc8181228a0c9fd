"""A real worker process keeps its policy processes warm across jobs
(:mod:`evaluator.policy_pool`): the second job of the same model reuses the first one's
process, says so in its log, and gets the result a fresh process gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.race import run_race
from evaluator.validate import validate_policy
from league.db import transaction
from league.models import EvaluationJob, JobStatus, Result
from league.rules import jobs, submissions
from league.rules.races import race_config
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Database, Factory

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120.0  # how long the test waits for the worker (not a speed check)


def test_a_worker_reuses_a_models_process_across_its_jobs(db: Database, session: Session,
                                                          storage: Storage, make: Factory,
                                                          tmp_path: Path) -> None:
    race = make.race(session)
    data = make.policy()
    entries = [submissions.submit_entry(session, storage, race, make.user(session, name), data,
                                        now=make.now) for name in ("ana", "bo")]
    job_ids = [e.jobs[0].id for e in entries]
    config = race_config(race)
    session.commit()
    session.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_")}
    env.update(DATABASE_URL=db.url, PADDOCK_STORAGE_DIR=str(storage.root),
               PADDOCK_INSTANCE_DIR=str(tmp_path / "instance"), SECRET_KEY="test")
    log_path = tmp_path / "pool.log"
    with open(log_path, "wb") as err:
        pool = subprocess.Popen([sys.executable, "-m", "league.processes.worker", "--workers",
                                 "1"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    try:
        finished = [_wait_final(db, job_id, log_path) for job_id in job_ids]
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(timeout=WAIT_S) == 0, log_path.read_text()
    finally:
        if pool.poll() is None:
            os.killpg(pool.pid, signal.SIGKILL)
            pool.wait()
    assert [job.status for job in finished] == [JobStatus.SUCCEEDED] * 2
    lines = [job.log.splitlines()[-1] for job in finished]
    warm = [line.split("; ")[-1] for line in lines]
    assert sorted(warm) == ["0 of 1 policy processes warm)",
                            "1 of 1 policy processes warm)"], lines
    with transaction(db.factory) as s:
        stored = [s.scalars(sa.select(Result).where(Result.job_id == j)).one().data
                  for j in job_ids]
    fresh = run_race(config, [validate_policy(data)]).to_dict()
    assert stored[1] == stored[0] == fresh


def _wait_final(db: Database, job_id: int, log_path: Path) -> EvaluationJob:
    deadline = time.monotonic() + WAIT_S
    while True:
        with transaction(db.factory) as s:
            job = jobs.get_job(s, job_id)
            if job.status in jobs.FINAL:
                return job
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
