"""The racer's garage: their models and versions, entries and evaluations, per-trial results,
trace logs and analysis rebuilt from the stored replays.

Queries only; functions take a session and never commit. Who may see what is the caller's
check (the website answers 404 for another racer's model or entry); :func:`get_model` alone
checks ownership, because a model file is never shown to anyone but its owner.
"""

from __future__ import annotations

import datetime as dt
import io
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator import replay, trace
from evaluator.actions import ActionSpec
from evaluator.errors import PaddockError
from evaluator.race_settings import SOLO_FORMATS, Format, Ranking
from evaluator.results import DNF, FINISHED, RANKING_TIME_KEY, time_spread
from evaluator.telemetry import FLAG_DONE, FLAG_PENALTY
from league.errors import Conflict, NotFound, StorageError
from league.models import (
    ApiToken,
    Entry,
    EvaluationJob,
    JobStatus,
    League,
    PolicyModel,
    Race,
    RaceStatus,
    Replay,
    Result,
    User,
    utcnow,
)
from league.read import browse, heats, replays
from league.read.cache import race_leaderboard_cached
from league.rules.leaderboard import EntryStatus, entry_status
from league.storage import Storage

POSITION_DECIMALS = 3  #: metres in the analysis JSON (the replay's own millimetre grid)
VALUE_DECIMALS = 3  #: speeds, degrees and percent in the analysis JSON
ENTRY_HEATS = 10  #: latest heats on a head-to-head entry's page


@dataclass(frozen=True)
class ModelVersions:
    """One model name of a racer: its versions, newest first, each with its entries."""

    name: str
    versions: list[tuple[PolicyModel, list[Entry]]]


@dataclass(frozen=True)
class GarageEntry:
    """One of the racer's entries as the garage lists it."""

    entry: Entry
    race: Race
    league: League
    model: PolicyModel
    status: EntryStatus
    rank: int | None  #: the entry's place on the race leaderboard, when it is the one shown
    standing: heats.Standing | None = None  #: head-to-head: racing, replaced or raced
    previous: PreviousRun | None = None  #: time trial: the racer's entry before this one


@dataclass(frozen=True)
class PreviousRun:
    """The racer's entry in the same race just before another one, to compare runs with."""

    entry: Entry
    job_id: int  #: its newest time-trial evaluation with a result
    run_job_id: int  #: the same of the later entry: the run compared with this one


@dataclass(frozen=True)
class HeadToHeadEntry:
    """What a head-to-head entry's page shows: where it stands and its latest heats."""

    standing: heats.Standing
    heats: list[heats.HeatRow]


@dataclass(frozen=True)
class Evaluation:
    """The evaluation an entry page shows: a job, its result and the replay of each trial."""

    job: EvaluationJob
    result: Result
    trials: list[dict[str, Any]]  #: the ``trials`` of the result JSON
    replays: dict[int, Replay]  #: by trial number

    def spread(self, ranking: str) -> dict[str, Any]:
        """How far apart the finished trials' times under ``ranking`` are
        (:func:`evaluator.results.time_spread`), from the stored trials, so results stored
        before the spread was part of a result show it too."""
        key = RANKING_TIME_KEY.get(ranking, RANKING_TIME_KEY[Ranking.TOTAL])
        return time_spread([float(t[key]) for t in self.trials
                            if t.get("status") == FINISHED and isinstance(t.get(key), int | float)
                            and not isinstance(t.get(key), bool)])


# ------------------------------------------------------------------------------- models
def racer_models(session: Session, racer: User) -> list[ModelVersions]:
    """The racer's models grouped by name (names A-Z, versions newest first)."""
    models = session.scalars(sa.select(PolicyModel).where(PolicyModel.owner_id == racer.id)
                             .order_by(PolicyModel.name, PolicyModel.version.desc())).all()
    by_model = _entries_by_model(session, [m.id for m in models])
    groups: dict[str, list[tuple[PolicyModel, list[Entry]]]] = {}
    for m in models:
        groups.setdefault(m.name, []).append((m, by_model.get(m.id, [])))
    return [ModelVersions(name, versions) for name, versions in groups.items()]


def model_versions(session: Session, model: PolicyModel) -> ModelVersions:
    """Every version of ``model``'s name by its owner (newest first), with their entries."""
    models = session.scalars(sa.select(PolicyModel).where(
        PolicyModel.owner_id == model.owner_id, PolicyModel.name == model.name)
        .order_by(PolicyModel.version.desc())).all()
    by_model = _entries_by_model(session, [m.id for m in models])
    return ModelVersions(model.name, [(m, by_model.get(m.id, [])) for m in models])


def get_model(session: Session, model_id: int, owner: User | None) -> PolicyModel:
    """A model by id, if ``owner`` uploaded it (anyone else: :class:`NotFound`)."""
    model = session.get(PolicyModel, model_id)
    if model is None or owner is None or model.owner_id != owner.id:
        raise NotFound(f"no model {model_id}")
    return model


def model_file(storage: Storage, model: PolicyModel) -> bytes:
    """The stored bytes of a model."""
    return storage.get("models", model.sha256)


def _entries_by_model(session: Session, model_ids: Sequence[int]) -> dict[int, list[Entry]]:
    out: dict[int, list[Entry]] = {}
    if model_ids:
        for e in session.scalars(sa.select(Entry).where(Entry.model_id.in_(model_ids))
                                 .order_by(Entry.submitted_at.desc(), Entry.id.desc())):
            out.setdefault(e.model_id, []).append(e)
    return out


# ------------------------------------------------------------------------------- entries
def garage_entries(session: Session, racer: User, *, offset: int = 0,
                   limit: int | None = None) -> tuple[list[GarageEntry], int]:
    """One page of the racer's entries (:func:`league.read.browse.racer_entries`) with status
    and rank, and the total."""
    entries, total = browse.racer_entries(session, racer, offset=offset, limit=limit)
    ranks: dict[int, int | None] = {}
    for race in {e.race_id: e.race for e in entries}.values():
        if race.format in SOLO_FORMATS:
            ranks |= {row.entry_id: row.rank for row in race_leaderboard_cached(session, race)
                      if row.user_id == racer.id}
    previous = previous_runs(session, racer, entries)
    return [GarageEntry(e, e.race, e.race.league, e.model, entry_status(session, e),
                        ranks.get(e.id), entry_standing(session, e), previous.get(e.id))
            for e in entries], total


def previous_runs(session: Session, racer: User,
                  entries: Sequence[Entry]) -> dict[int, PreviousRun]:
    """For each time-trial entry of ``entries`` that has an evaluated run: the racer's latest
    earlier entry in the same race (by submission time) that has one too, to compare the two
    runs."""
    races = {e.race_id for e in entries if e.race.format in SOLO_FORMATS}
    if not races:
        return {}
    theirs = session.scalars(sa.select(Entry).where(Entry.racer_id == racer.id,
                                                    Entry.race_id.in_(races))
                             .order_by(Entry.submitted_at, Entry.id)).all()
    run_of = replays.latest_result_jobs(session, [e.id for e in theirs])
    by_race: dict[int, list[Entry]] = {}
    for entry in theirs:
        if entry.id in run_of:
            by_race.setdefault(entry.race_id, []).append(entry)
    out = {}
    for e in entries:
        earlier = [x for x in by_race.get(e.race_id, [])
                   if (x.submitted_at, x.id) < (e.submitted_at, e.id)]
        if earlier and e.id in run_of:
            out[e.id] = PreviousRun(earlier[-1], run_of[earlier[-1].id], run_of[e.id])
    return out


def entry_standing(session: Session, entry: Entry) -> heats.Standing | None:
    """Where a head-to-head entry stands in its race (:func:`league.read.heats.standing`);
    None for a time-trial entry."""
    return heats.standing(session, entry) if entry.race.format == Format.HEAD_TO_HEAD else None


def head_to_head_entry(session: Session, entry: Entry,
                       latest: int = ENTRY_HEATS) -> HeadToHeadEntry | None:
    """A head-to-head entry's standing and its ``latest`` heats (newest first, with their
    replays); None for a time-trial entry."""
    standing = entry_standing(session, entry)
    if standing is None:
        return None
    return HeadToHeadEntry(standing, heats.entry_heats(session, entry, latest))


def is_final(status: EntryStatus) -> bool:
    """Whether an entry's status will not change without someone acting (nothing to poll)."""
    return status.disqualified or status.status not in (JobStatus.QUEUED, JobStatus.RUNNING)


def latest_evaluation(session: Session, entry: Entry) -> Evaluation | None:
    """The entry's newest time-trial job that has a result, with its trials and replays."""
    row = session.execute(
        sa.select(EvaluationJob, Result).join(Result, Result.job_id == EvaluationJob.id)
        .where(EvaluationJob.entry_id == entry.id).order_by(EvaluationJob.id.desc())
        .limit(1)).first()
    if row is None:
        return None
    job, result = row
    trials = [t for t in (result.data or {}).get("trials") or [] if isinstance(t, dict)]
    return Evaluation(job, result, trials, job_replays(session, job))


def job_replays(session: Session, job: EvaluationJob) -> dict[int, Replay]:
    """A job's stored replays by trial number."""
    return {r.trial: r for r in replays.job_replays(session, job)}


def entry_closed_reason(race: Race, now: dt.datetime | None = None) -> str:
    """Why ``race`` takes no entries now, in one sentence ("" while it is open)."""
    now = now or utcnow()
    if race.status == RaceStatus.CLOSED or now >= race.closes_at:
        return "This race is closed."
    if now < race.opens_at:
        return f"This race opens at {race.opens_at:%Y-%m-%d %H:%M} UTC."
    return ""


def racer_tokens(session: Session, user: User) -> list[ApiToken]:
    """The user's API tokens, newest first (revoked ones included)."""
    return list(session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id)
                                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


# ------------------------------------------------------------------------------- replays
def job_trial(session: Session, storage: Storage, job: EvaluationJob,
              trial: int) -> replay.Replay:
    """The decoded replay of one trial of a job (:class:`NotFound` when it has none)."""
    row = job_replays(session, job).get(trial)
    if row is None:
        raise NotFound(f"evaluation {job.id} has no replay of trial {trial}")
    return _decode(storage, row)


def trace_csv(session: Session, storage: Storage, job: EvaluationJob, trial: int) -> str:
    """The DeepRacer-style trace CSV of one trial of a time-trial job (episode = trial)."""
    rp = job_trial(session, storage, job, trial)
    out = io.StringIO()
    try:
        trace.write_trace_rows(trace.replay_trace_rows(trial, rp, 0, _time_up(job, trial)),
                               out)
    except PaddockError as err:  # the track's geometry changed since the race was run
        raise Conflict(f"the trace of trial {trial} cannot be rebuilt: {err}") from err
    return out.getvalue()


def job_analysis(session: Session, storage: Storage, job: EvaluationJob) -> dict[str, Any]:
    """What the analysis charts draw, computed from a time-trial job's replays.

    Per trial: the racing line (DeepRacer's front point) with speed and steering at every
    frame the car drove (frozen and parked frames left out), each frame's lap and lap
    progress, where the car left the track, the lap times of the result and, for a discrete
    action space, how often each action was chosen (unchosen ones included; ``None`` for a
    continuous space or a replay kept before the actions were), and the obstacles, which each
    trial places anew (``None`` for a replay kept before they were). Across trials: every lap
    time and their spread. The track is the replay's own geometry.
    """
    replays = job_replays(session, job)
    spec = _action_spec(job)
    data = job.result.data if job.result is not None else {}
    by_trial = {int(t.get("trial", 0)): t for t in data.get("trials") or []
                if isinstance(t, dict)}
    trials, track = [], None
    for number, row in replays.items():
        rp = _decode(storage, row)
        track = track or _track(rp)
        trials.append({**_trial_analysis(number, rp, by_trial.get(number, {}), spec),
                       "obstacles": _obstacles(rp)})
    laps = [{"trial": t["trial"], "lap": k, "time_s": s}
            for t in trials for k, s in enumerate(t["lap_times_s"], start=1)]
    times = [lap["time_s"] for lap in laps]
    spread = None
    if times:
        spread = {"min": min(times), "max": max(times), "mean": round(statistics.fmean(times), 6),
                  "median": statistics.median(times),
                  "stdev": round(statistics.pstdev(times), 6)}
    return {"job_id": job.id, "entry_id": job.entry_id, "ranked_trial": data.get("ranked_trial"),
            "action_space": spec.kind if spec is not None else None,
            "track": track, "trials": trials, "laps": laps, "lap_time_spread": spread}


def _action_spec(job: EvaluationJob) -> ActionSpec | None:
    """The action space of the job's model (``None`` if its metadata cannot say)."""
    if job.entry is None:
        return None
    try:
        return ActionSpec.from_metadata(job.entry.model.model_metadata or None)
    except (PaddockError, ValueError, TypeError, KeyError):
        return None


def _action_breakdown(spec: ActionSpec | None, c: replay.ReplayCar,
                      frames: np.ndarray) -> list[dict[str, Any]] | None:
    """Each discrete action with how often it was chosen in ``frames``."""
    if spec is None or spec.kind != "discrete" or c.action is None:
        return None
    chosen = np.asarray(c.action[frames], dtype=np.int64)
    counts = np.bincount(chosen[chosen >= 0], minlength=len(spec.choices))
    return [{"index": k, "steering_deg": float(steer), "speed": float(speed),
             "count": int(counts[k])}
            for k, (steer, speed) in enumerate(spec.choices)]


def _decode(storage: Storage, row: Replay) -> replay.Replay:
    try:
        return replay.decode(storage.get("replays", row.sha256))
    except PaddockError as err:
        raise StorageError(f"the replay of trial {row.trial} cannot be read: {err}") from err


def _time_up(job: EvaluationJob, trial: int) -> bool:
    """Whether the trial ended at the time cap (the evaluator's dnf)."""
    data = job.result.data if job.result is not None else {}
    return any(isinstance(t, dict) and t.get("trial") == trial and t.get("status") == DNF
               for t in data.get("trials") or [])


def _rounded(values: np.ndarray, decimals: int) -> list[float]:
    out: list[float] = np.round(np.asarray(values, dtype=np.float64), decimals).tolist()
    return out


def _track(rp: replay.Replay) -> dict[str, Any]:
    t = rp.track
    return {"name": t.name, "title": t.title, "length_m": t.length,
            **{k: _rounded(getattr(t, k), POSITION_DECIMALS)
               for k in replay.TRACK_BLOCKS}}


def _obstacles(rp: replay.Replay) -> list[dict[str, float]] | None:
    """The run's boxes: centre and contact radius, metres (``None``: not kept, format < 3)."""
    if rp.obstacles is None:
        return None
    names = [c.name for c in replay.OBSTACLE_COLUMNS]
    return [dict(zip(names, _rounded(row, POSITION_DECIMALS), strict=True))
            for row in rp.obstacles]


def _trial_analysis(number: int, rp: replay.Replay, result: Mapping[str, Any],
                    spec: ActionSpec | None = None) -> dict[str, Any]:
    c = rp.cars[0]
    flags = np.asarray(c.flags, dtype=np.uint8)
    fx, fy = trace.front_point(c.x, c.y, c.yaw)
    driving = (flags & (FLAG_PENALTY | FLAG_DONE)) == 0
    driving[0] = False  # the grid, before the first step
    frames = np.flatnonzero(driving)
    off = [int(i.frame) for i in replay.incidents(rp) if i.car == 0 and i.kind == "off_track"]
    return {
        "trial": number,
        "status": str(result.get("status", "")),
        "lap_times_s": [float(x) for x in result.get("lap_times_s") or []],
        "off_track_count": int(result.get("off_track_count", len(off))),
        "dt": rp.dt,
        "samples": {
            "frame": frames.tolist(),
            "lap": c.laps[frames].tolist(),
            "progress": _rounded(c.progress[frames], VALUE_DECIMALS),
            "x": _rounded(fx[frames], POSITION_DECIMALS),
            "y": _rounded(fy[frames], POSITION_DECIMALS),
            "speed": _rounded(c.speed[frames], VALUE_DECIMALS),
            "steering_deg": _rounded(np.degrees(c.steering[frames]), VALUE_DECIMALS),
        },
        "off_tracks": [{"frame": f, "lap": int(c.laps[f]),
                        "progress": round(float(c.progress[f]), VALUE_DECIMALS),
                        "x": round(float(fx[f]), POSITION_DECIMALS),
                        "y": round(float(fy[f]), POSITION_DECIMALS)} for f in off],
        "actions": _action_breakdown(spec, c, frames),
    }
