"""The fair queue seen from a real worker process: one racer's burst of uploads does not hold
up another racer's single upload."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.db import transaction
from league.models import EvaluationJob, JobStatus
from league.rules import submissions
from league.storage import Storage
from tests.support.workers import run_worker_once

if TYPE_CHECKING:
    from conftest import Database, Factory

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
