"""The fair queue seen from a real worker process: one racer's burst of uploads does not hold
up another racer's single upload."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.db import transaction
from league.models import EvaluationJob, JobStatus
from league.rules import submissions
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Database, Factory

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120.0  # how long one worker run may take before the test gives up (not a speed check)


def run_worker_once(db: Database, storage: Storage, tmp_path: Path) -> None:
    """``python -m league.processes.worker --once`` on the test database: one job claimed and
    raced by a real worker process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_")}
    env.update(DATABASE_URL=db.url, PADDOCK_STORAGE_DIR=str(storage.root),
               PADDOCK_INSTANCE_DIR=str(tmp_path / "instance"), SECRET_KEY="test")
    proc = subprocess.run([sys.executable, "-m", "league.processes.worker", "--once"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=WAIT_S, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_racers_single_upload_is_among_the_next_two_claimed(
        db: Database, session: Session, storage: Storage, make: Factory,
        tmp_path: Path) -> None:
    race = make.race(session)
    ann, bob = make.user(session, "ann"), make.user(session, "bob")
    burst = [submissions.submit_entry(session, storage, race, ann, make.policy(),
                                      now=make.now).jobs[0].id for _ in range(8)]
    single = submissions.submit_entry(session, storage, race, bob, make.policy(),
                                      now=make.now).jobs[0].id
    session.commit()
    session.close()
    for _ in range(2):
        run_worker_once(db, storage, tmp_path)
    with transaction(db.factory) as s:
        done = set(s.scalars(sa.select(EvaluationJob.id).where(
            EvaluationJob.status == JobStatus.SUCCEEDED)))
    assert single in done, f"bob's job {single} waited behind ann's: {sorted(done)}"
    assert done == {burst[0], single}  # ann's oldest went first, then bob took his turn
