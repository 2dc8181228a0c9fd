"""Helpers of the garage tests: open races, uploads through the form, real evaluations."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from league.config import Settings
from league.db import transaction
from league.models import League, Race, utcnow
from league.processes.evaluation import deliver, evaluate_job
from league.rules.jobs import claim_job
from league.storage import Storage
from tests.support.dbfixtures import Database, Factory

WORKER = "garage-test-worker"


def open_race(session: Session, make: Factory, league: League | None = None,
              **kw: Any) -> Race:
    """A race taking entries now (the factory's default window is a fixed date)."""
    now = utcnow()
    kw.setdefault("opens_at", now - dt.timedelta(days=1))
    kw.setdefault("closes_at", now + dt.timedelta(days=7))
    return make.race(session, league, **kw)


def upload(client: FlaskClient, race_id: int, data: bytes, *, metadata: bytes | None = None,
           name: str = "", filename: str = "model.onnx") -> TestResponse:
    """Post the upload form of a race."""
    form: dict[str, Any] = {"model": (io.BytesIO(data), filename), "name": name}
    if metadata is not None:
        form["metadata"] = (io.BytesIO(metadata), "model_metadata.json")
    return client.post(f"/garage/races/{race_id}/enter", data=form,
                       content_type="multipart/form-data")


def settings_for(db: Database, storage: Storage) -> Settings:
    """Worker settings on the test database and storage."""
    return Settings(database_url=db.url, storage_dir=storage.root, secret_key="test")


def claim(db: Database) -> int:
    """Claim the oldest queued job as the test worker; its id."""
    with transaction(db.factory) as s:
        job = claim_job(s, WORKER, lease_s=300.0)
        assert job is not None, "no queued job"
        return job.id


def race_claimed(db: Database, storage: Storage, job_id: int) -> None:
    """Evaluate a claimed job for real and deliver its outcome, as a worker does."""
    outcome = evaluate_job(db.factory, storage, job_id, settings_for(db, storage))
    assert not outcome.failed, outcome.reason
    with transaction(db.factory) as s:
        assert deliver(s, outcome, WORKER, storage)


def run_queued(db: Database, storage: Storage) -> int:
    """Claim, race and deliver the oldest queued job; its id."""
    job_id = claim(db)
    race_claimed(db, storage, job_id)
    return job_id
