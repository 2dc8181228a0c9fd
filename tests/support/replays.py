"""Real replays for the website's tests: recorded races of built-in drivers, stored as the
league stores an evaluation's replays (bytes in storage, a ``Replay`` row per trial or heat).

The races come from the ``record_race`` fixture (tests/conftest.py), so they are genuine
simulator runs encoded by ``evaluator.replay``; only the job around them is made by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

import league.models as m
from evaluator import replay
from evaluator.drivers import Driver, PurePursuitDriver
from evaluator.track_library import load_track
from league.storage import Storage

STEPS_PER_LAP_CAP = 900  # 60 s of simulated time per lap at most


def incident_drivers(record_race: Any) -> list[Driver]:
    """Three cars that make things happen: a slow one, a fast one that runs into it, and
    one that swerves off the track every few seconds (collisions, off-tracks, overtakes)."""
    return [PurePursuitDriver(1.5), PurePursuitDriver(3.5, follow=False), record_race.Swerver()]


def field_drivers(cars: int) -> list[Driver]:
    """``cars`` clean line-followers at different speeds, on alternate sides of the line."""
    return [PurePursuitDriver(min(3.2, 1.8 + 0.2 * i), line_offset_m=0.18 * (-1) ** i)
            for i in range(cars)]


def record_replay(record_race: Any, drivers: Sequence[Driver], *, track: str = "oval",
                  laps: int = 2, meta: dict[str, Any] | None = None) -> bytes:
    """The encoded replay of a race of ``drivers`` over ``laps`` laps of ``track``."""
    tel = record_race(load_track(track), list(drivers), STEPS_PER_LAP_CAP * laps, laps=laps)
    settings = {"track": track, "laps": laps}
    return replay.encode(replay.from_telemetry(tel, meta={"race": settings, **(meta or {})}))


def add_replay(session: Session, storage: Storage, job: m.EvaluationJob, trial: int,
               data: bytes) -> m.Replay:
    """Store ``data`` as replay ``trial`` of ``job``, as a worker's result does."""
    row = m.Replay(job_id=job.id, trial=trial, sha256=storage.put("replays", data),
                   size_bytes=len(data))
    session.add(row)
    session.flush()
    return row


def trial_blocks(trials: int, time_s: float = 30.0) -> list[dict[str, Any]]:
    """Result blocks of ``trials`` finished one-lap trials, 1 s apart."""
    return [{"trial": t, "status": "finished", "laps_completed": 1,
             "total_time_s": time_s + t, "best_lap_s": time_s + t, "off_track_count": t - 1,
             "collision_count": 0, "penalty_s": 0.0, "reason": ""} for t in range(1, trials + 1)]


@dataclass
class TimeTrial:
    """An entry's evaluated time trial with a stored replay per trial."""

    race: m.Race
    entry: m.Entry
    job: m.EvaluationJob
    replays: list[m.Replay] = field(default_factory=list)


def time_trial(session: Session, storage: Storage, make: Any, data: bytes | Sequence[bytes],
               *, race: m.Race | None = None, racer: m.User | None = None, trials: int = 3,
               ranked: int | None = 2) -> TimeTrial:
    """An entry of ``race`` (a new public one by default) whose job has ``trials`` replays
    (``data``, or one per trial) and a result ranked by trial ``ranked``."""
    race = race or make.race(session, trials=trials, name="Sprint")
    racer = racer or make.user(session, "ada")
    entry = make.entry(session, race, racer, name="quick")
    blocks = trial_blocks(trials)
    result = make.result(session, entry, data={"ranked_trial": ranked, "trials": blocks})
    job = session.get_one(m.EvaluationJob, result.job_id)
    per_trial = [data] * trials if isinstance(data, bytes) else list(data)
    rows = [add_replay(session, storage, job, t, per_trial[t - 1])
            for t in range(1, trials + 1)]
    return TimeTrial(race, entry, job, rows)


def heat(session: Session, storage: Storage, make: Any, data: bytes, entries: list[m.Entry],
         *, heats: int = 2) -> tuple[m.Heat, m.EvaluationJob, list[m.Replay]]:
    """A raced head-to-head heat of ``entries`` with ``heats`` replays (car i: entries[i])."""
    race = entries[0].race
    row = m.Heat(race_id=race.id, round_no=1, seed=7, entry_ids=[e.id for e in entries],
                 positions=[e.id for e in entries])
    session.add(row)
    session.flush()
    job = m.EvaluationJob(kind=m.JobKind.HEAT, heat_id=row.id, status=m.JobStatus.SUCCEEDED)
    session.add(job)
    session.flush()
    cars = [{"name": f"car {i}", "status": "finished",
             "trials": [{**b, "position": i + 1} for b in trial_blocks(heats, 40.0 + i)]}
            for i in range(len(entries))]
    session.add(m.Result(job_id=job.id, entry_id=None, status="finished", ranking_time_s=41.0,
                         ranking_laps=1, data={"status": "finished", "cars": cars,
                                               "positions": list(range(len(entries))),
                                               "ranked_trial": 1, "trials": []}))
    session.flush()
    rows = [add_replay(session, storage, job, t, data) for t in range(1, heats + 1)]
    return row, job, rows
