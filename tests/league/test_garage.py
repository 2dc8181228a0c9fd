"""The garage's queries: models and versions, entries with status and rank, analysis data."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator import replay, trace
from evaluator.telemetry import FLAG_DONE, FLAG_PENALTY
from league.errors import NotFound
from league.models import Entry, EvaluationJob, FailureKind, JobStatus, Replay
from league.processes.worker import Worker
from league.read import garage
from league.rules import submissions
from league.rules.leaderboard import entry_status
from league.storage import Storage
from tests.support.dbfixtures import Database, Factory
from tests.web.garage_support import settings_for

if TYPE_CHECKING:
    from league.models import Race, User


def _enter(session: Session, storage: Storage, make: Factory, race: Race, racer: User,
           speed: float = 2.0, name: str = "") -> Entry:
    return submissions.submit_entry(session, storage, race, racer, make.policy(speed),
                                    model_name=name, now=make.now)


def test_models_grouped_by_name_with_versions_and_entries(session: Session, storage: Storage,
                                                          make: Factory) -> None:
    race = make.race(session)
    ada, bob = make.user(session, "ada"), make.user(session, "bob")
    a1 = _enter(session, storage, make, race, ada, name="zeta")
    a2 = _enter(session, storage, make, race, ada, 1.5, name="alpha")
    a3 = _enter(session, storage, make, race, ada, 1.0, name="zeta")
    _enter(session, storage, make, race, bob, name="zeta")
    groups = garage.racer_models(session, ada)
    assert [g.name for g in groups] == ["alpha", "zeta"]
    zeta = groups[1]
    assert [(m.version, [e.id for e in es]) for m, es in zeta.versions] == [
        (2, [a3.id]), (1, [a1.id])]
    assert garage.model_versions(session, a1.model).versions == zeta.versions
    assert groups[0].versions[0][1] == [a2]
    assert garage.get_model(session, a1.model_id, ada) is a1.model
    for viewer in (bob, None):
        with pytest.raises(NotFound):
            garage.get_model(session, a1.model_id, viewer)


def test_entries_with_status_and_rank(session: Session, make: Factory) -> None:
    race = make.race(session, name="Cup")
    ada, bob = make.user(session, "ada"), make.user(session, "bob")
    slow, fast = make.entry(session, race, ada), make.entry(session, race, ada)
    make.result(session, slow, 40.0)
    make.result(session, fast, 30.0)
    make.result(session, make.entry(session, race, bob), 20.0)
    queued = make.entry(session, race, ada)
    session.add(EvaluationJob(entry_id=queued.id, status=JobStatus.QUEUED))
    session.flush()
    rows, total = garage.garage_entries(session, ada)
    assert total == 3
    by_id = {r.entry.id: r for r in rows}
    assert by_id[fast.id].rank == 2 and by_id[slow.id].rank is None  # the best entry counts
    assert by_id[queued.id].status.status == JobStatus.QUEUED
    assert by_id[fast.id].race.name == "Cup" and by_id[fast.id].league.id == race.league_id
    page, total = garage.garage_entries(session, ada, offset=1, limit=1)
    assert total == 3 and len(page) == 1


def test_final_statuses(session: Session, make: Factory) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.user(session, "ada"))
    assert garage.is_final(entry_status(session, entry))  # never queued
    job = EvaluationJob(entry_id=entry.id, status=JobStatus.QUEUED)
    session.add(job)
    session.flush()
    assert not garage.is_final(entry_status(session, entry))
    job.status, job.attempts = JobStatus.RUNNING, 2
    assert not garage.is_final(entry_status(session, entry))
    job.status, job.failure_kind = JobStatus.FAILED, FailureKind.TIMEOUT
    assert garage.is_final(entry_status(session, entry))
    done = make.entry(session, race, entry.racer)
    make.result(session, done, 62.5)
    assert garage.is_final(entry_status(session, done))


def test_entry_window(make: Factory, session: Session) -> None:
    race = make.race(session)
    assert garage.entry_closed_reason(race, race.opens_at) == ""
    assert garage.entry_closed_reason(race, race.closes_at) == "This race is closed."
    assert garage.entry_closed_reason(race, race.opens_at.replace(year=2000)).startswith(
        "This race opens at")


def test_analysis_and_trace_of_a_real_evaluation(db: Database, session: Session,
                                                 storage: Storage, make: Factory) -> None:
    race = make.race(session, trials=2, laps=2, off_track_penalty=2.0)
    entry = _enter(session, storage, make, race, make.user(session, "ada"), speed=3.6)
    session.commit()
    worker = Worker(settings_for(db, storage), "test-worker")
    try:
        job_id = worker.run_once()
    finally:
        worker.close()
    session.expire_all()
    job = session.get(EvaluationJob, job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.log
    evaluation = garage.latest_evaluation(session, entry)
    assert evaluation is not None and evaluation.job.id == job_id
    assert [t["trial"] for t in evaluation.trials] == sorted(evaluation.replays) == [1, 2]

    data = garage.job_analysis(session, storage, job)
    result = job.result.data
    assert data["job_id"] == job_id and data["ranked_trial"] == result["ranked_trial"]
    rows = {r.trial: r for r in session.scalars(sa.select(Replay).where(Replay.job_id == job_id))}
    for got in data["trials"]:
        rp = replay.decode(storage.get("replays", rows[got["trial"]].sha256))
        car = rp.cars[0]
        want = next(t for t in result["trials"] if t["trial"] == got["trial"])
        assert got["lap_times_s"] == want["lap_times_s"] and got["status"] == want["status"]
        frames = np.array(got["samples"]["frame"])
        driving = np.flatnonzero((car.flags & (FLAG_PENALTY | FLAG_DONE)) == 0)
        assert frames.tolist() == [f for f in driving.tolist() if f > 0]
        fx, fy = trace.front_point(car.x, car.y, car.yaw)
        np.testing.assert_allclose(got["samples"]["x"], fx[frames], atol=5e-4)
        np.testing.assert_allclose(got["samples"]["y"], fy[frames], atol=5e-4)
        np.testing.assert_allclose(got["samples"]["speed"], car.speed[frames], atol=5e-4)
        np.testing.assert_allclose(got["samples"]["steering_deg"],
                                   np.degrees(car.steering[frames]), atol=5e-4)
        np.testing.assert_allclose(got["samples"]["progress"], car.progress[frames], atol=5e-4)
        assert got["samples"]["lap"] == car.laps[frames].tolist()
        off = [i.frame for i in replay.incidents(rp) if i.kind == "off_track"]
        assert [o["frame"] for o in got["off_tracks"]] == off
        assert len(off) == want["off_track_count"] > 0  # too fast for the oval's turns
        for o in got["off_tracks"]:
            assert (o["x"], o["y"], o["lap"]) == (pytest.approx(fx[o["frame"]], abs=5e-4),
                                                  pytest.approx(fy[o["frame"]], abs=5e-4),
                                                  car.laps[o["frame"]])
    np.testing.assert_allclose(data["track"]["centerline"], rp.track.centerline, atol=5e-4)
    laps = [x for t in result["trials"] for x in t["lap_times_s"]]
    assert [lap["time_s"] for lap in data["laps"]] == laps
    assert data["lap_time_spread"]["min"] == min(laps)
    assert data["lap_time_spread"]["max"] == max(laps)

    text = garage.trace_csv(session, storage, job, 2)
    records = list(csv.DictReader(io.StringIO(text)))
    assert tuple(records[0]) == trace.TRACE_COLUMNS
    rp2 = replay.decode(storage.get("replays", rows[2].sha256))
    assert len(records) == rp2.frames - 1
    assert {r["episode"] for r in records} == {"2"}
    assert sum(r["episode_status"] == "lap_complete" for r in records) == 2
    with pytest.raises(NotFound):
        garage.trace_csv(session, storage, job, 3)
