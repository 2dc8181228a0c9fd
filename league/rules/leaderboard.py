"""Race leaderboards and the state of an entry's evaluation ("my garage").

A leaderboard is a query over stored results, never a stored table: disqualifying an entry or
re-running it changes the leaderboard at once. Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.multi_track import combined_key
from evaluator.results import DNF, FINISHED, TrialResult, rank_trials
from league.models import (
    Entry,
    EvaluationJob,
    FailureKind,
    JobKind,
    JobStatus,
    PolicyModel,
    Race,
    Result,
    User,
)

ROUNDING = 6  # decimals of the times shown (the evaluator's own rounding)
IN_CHUNK = 500  # ids per IN (...) list when results are loaded by id


@dataclass(frozen=True)
class LeaderboardRow:
    """One racer's line on a race leaderboard (DeepRacer's columns, plus ids for links)."""

    rank: int | None  #: 1 is first; None: listed but not ranked (too few laps, policy error)
    racer: str  #: the racer's user name
    user_id: int
    entry_id: int  #: the entry whose result is shown
    model: str  #: model name and version, e.g. "follower v3"
    time_s: float | None  #: the time under the race's ranking method
    gap_s: float | None  #: behind the leader; None for the leader's laps-down rivals
    laps: int  #: laps of the trial the racer is ranked by
    best_lap_s: float | None
    off_track_count: int
    collision_count: int
    penalty_s: float
    submissions: int  #: the racer's entries in this race (disqualified ones included)
    submitted_at: dt.datetime  #: when the shown entry was submitted
    result_id: int
    job_id: int
    status: str  #: the result's status: finished, dnf, policy_error, invalid_policy
    reason: str  #: why the racer is not ranked ("" when ranked)
    #: a race on several tracks: each track's ranking time, in the race's order (None: that
    #: track not finished); empty for a race on one track
    track_times_s: tuple[float | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (times as ISO 8601)."""
        out = asdict(self)
        out["submitted_at"] = self.submitted_at.isoformat()
        out["track_times_s"] = list(self.track_times_s)
        return out


@dataclass(frozen=True)
class EntryStatus:
    """Where an entry's evaluation stands, for the racer's garage."""

    entry_id: int
    status: JobStatus | None  #: of the latest time-trial job (None: never queued)
    job_id: int | None
    attempts: int
    queued_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    failure_kind: FailureKind | None
    reason: str  #: failure reason, or why the result is not ranked, or the disqualification
    result_id: int | None
    result_status: str | None  #: finished, dnf, policy_error, invalid_policy
    time_s: float | None
    disqualified: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form (times as ISO 8601, enums as their values)."""
        out = asdict(self)
        for key in ("queued_at", "started_at", "finished_at"):
            value = out[key]
            out[key] = None if value is None else value.isoformat()
        for key in ("status", "failure_kind"):
            out[key] = None if out[key] is None else str(out[key])
        return out


class _Counted(NamedTuple):
    """The columns of a counting result that the leaderboard shows (no result JSON)."""

    result_id: int
    job_id: int
    status: str
    ranking_time_s: float | None
    ranking_laps: int
    best_lap_s: float | None
    off_track_count: int
    collision_count: int
    penalty_s: float
    ranking: str | None  #: the ranking method the result was computed under (its JSON's)
    entry_id: int
    racer_id: int
    submitted_at: dt.datetime
    racer: str
    model_name: str
    model_version: int


@dataclass(frozen=True)
class _Scored:
    """An entry's counting result with its sort key (smaller is better)."""

    key: tuple[Any, ...]
    ranked: bool
    laps: int
    time_s: float | None
    row: _Counted
    reason: str  #: why it is not ranked ("" when ranked)
    track_times: tuple[float | None, ...] = ()  #: several tracks: each track's time


def required_laps(race: Race) -> int:
    """Laps a trial needs to be ranked in ``race`` (its minimum, default all of them)."""
    return race.laps if race.min_laps is None else race.min_laps


def ranking_value(race: Race, result: Result) -> tuple[int, float | None]:
    """The laps and time ``result`` is ranked by under ``race``'s ranking method.

    ``Result.ranking_time_s`` already holds it when the result was computed under the race's
    method (its JSON ``ranking``). When the method differs (an organizer changed it after the
    evaluation), the trial is chosen again from the stored trials by the evaluator's own rule.
    """
    data = result.data or {}
    if data.get("ranking", race.ranking) == race.ranking:
        return result.ranking_laps, result.ranking_time_s
    trials = [TrialResult(trial=int(t.get("trial", i)), seed=int(t.get("seed", 0)),
                          status=str(t.get("status", FINISHED)),
                          laps_completed=int(t.get("laps_completed", 0)),
                          lap_times_s=[float(x) for x in t.get("lap_times_s") or []])
              for i, t in enumerate(data.get("trials") or [], start=1)]
    best, value = rank_trials(trials, race.ranking, required_laps(race))
    if best is None or value is None:
        return result.ranking_laps, None
    return best.laps_completed, round(value, ROUNDING)


def result_reason(result: Result, required: int) -> str:
    """Why ``result`` is not ranked, in one line ("" when nothing is wrong)."""
    data = result.data or {}
    if data.get("error"):
        return str(data["error"])
    if result.status == FINISHED and result.ranking_laps >= required:
        return ""
    for trial in data.get("trials") or []:
        if trial.get("reason"):
            return str(trial["reason"])
    return f"completed {result.ranking_laps} of the {required} laps needed to be ranked"


def race_leaderboard(session: Session, race: Race) -> list[LeaderboardRow]:
    """The leaderboard of a time trial: each racer's best result, ranked.

    Rules, in order:

    * A result counts when its job (a time trial) succeeded and its entry is not disqualified.
      Results of queued, running, failed or cancelled jobs never count.
    * Per entry, the result of its latest succeeded job counts: a re-run replaces the earlier
      evaluation of the same model (it is what an organizer re-runs for, e.g. after a
      simulator update). Per racer, the best of their entries counts: a worse new upload
      never costs a racer their place.
    * A result is ranked when it finished with at least the race's minimum laps; otherwise
      (dnf, policy error, invalid policy) the racer is listed unranked with the reason.
    * Ranked racers: more laps first, then the smaller time under the race's ranking method,
      then the earlier submission (the entry submitted first keeps the place), then entry id.
    * Unranked racers follow: more laps first, dnf before policy errors, earlier submission.
    * The gap is to the leader, and only for racers with the leader's laps (None otherwise).
    * A race on several tracks (:func:`_score_tracks`) ranks by the sum of the tracks' times
      the same way; a result that did not finish every track is unranked, and those follow
      by more tracks finished, then the smaller sum of the finished tracks' times.
    """
    required = required_laps(race)
    # Columns only, and each result's JSON only where it is needed (a result computed under
    # another ranking method, or one that may be unranked and needs its reason): loading
    # every result of a 10,000-entry race as objects with their JSON takes over a second.
    stmt = (sa.select(Result.id, Result.job_id, Result.status, Result.ranking_time_s,
                      Result.ranking_laps, Result.best_lap_s, Result.off_track_count,
                      Result.collision_count, Result.penalty_s,
                      Result.data["ranking"].as_string(), Entry.id, Entry.racer_id,
                      Entry.submitted_at, User.name, PolicyModel.name, PolicyModel.version)
            .join(EvaluationJob, EvaluationJob.id == Result.job_id)
            .join(Entry, Entry.id == EvaluationJob.entry_id)
            .join(User, User.id == Entry.racer_id)
            .join(PolicyModel, PolicyModel.id == Entry.model_id)
            .where(Entry.race_id == race.id, Entry.disqualified_at.is_(None),
                   EvaluationJob.kind == JobKind.TIME_TRIAL,
                   EvaluationJob.status == JobStatus.SUCCEEDED)
            .order_by(EvaluationJob.id))
    latest: dict[int, _Counted] = {}
    for columns in session.execute(stmt):
        row = _Counted(*columns)
        latest[row.entry_id] = row  # the latest succeeded job of each entry wins
    full = _results_with_data(session, [r.result_id for r in latest.values()
                                        if _needs_data(race, required, r)])
    best: dict[int, _Scored] = {}
    for row in latest.values():
        scored = _score(race, required, row, full.get(row.result_id))
        current = best.get(row.racer_id)
        if current is None or scored.key < current.key:
            best[row.racer_id] = scored
    return _rows(session, race, sorted(best.values(), key=lambda s: s.key))


def _needs_data(race: Race, required: int, row: _Counted) -> bool:
    """Whether scoring ``row`` needs its result JSON: it was computed under another ranking
    method, or it may be unranked (and the reason is in the JSON)."""
    if race.extra_tracks or (row.ranking is not None and row.ranking != race.ranking):
        return True  # several tracks: every row shows each track's time, from the JSON
    return not (row.status == FINISHED and row.ranking_time_s is not None
                and row.ranking_laps >= required)


def _results_with_data(session: Session, ids: list[int]) -> dict[int, Result]:
    found: dict[int, Result] = {}
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start:start + IN_CHUNK]
        found.update((r.id, r) for r in session.scalars(sa.select(Result)
                                                         .where(Result.id.in_(chunk))))
    return found


def _score(race: Race, required: int, row: _Counted, result: Result | None) -> _Scored:
    if race.extra_tracks and result is not None:
        return _score_tracks(race, row, result)
    if result is None:  # computed under the race's method and ranked (see _needs_data)
        laps, time_s = row.ranking_laps, row.ranking_time_s
    else:
        laps, time_s = ranking_value(race, result)
    ranked = row.status == FINISHED and time_s is not None and laps >= required
    if ranked:
        key: tuple[Any, ...] = (0, -laps, time_s, row.submitted_at, row.entry_id)
        return _Scored(key, True, laps, time_s, row, "")
    failed = 0 if row.status == DNF else 1
    key = (1, -row.ranking_laps, failed, row.submitted_at, row.entry_id)
    assert result is not None  # an unranked row always had its JSON loaded
    return _Scored(key, False, row.ranking_laps, None, row, result_reason(result, required))


def _score_tracks(race: Race, row: _Counted, result: Result) -> _Scored:
    """A result of a race on several tracks (:mod:`evaluator.multi_track`).

    Ranked when it finished every track: more laps in all first, then the smaller sum of the
    tracks' ranking times. Unranked otherwise, after every ranked result: more tracks
    finished first, then the smaller sum of the times of the tracks finished, then more laps,
    dnf before policy errors, the earlier submission.
    """
    data = result.data or {}
    blocks = {b.get("track"): b for b in data.get("tracks") or [] if isinstance(b, dict)}
    times = tuple(_time(blocks.get(t["track"], {})) for t in race.all_tracks)
    key = combined_key(data)
    if key[0] == 0 and row.status == FINISHED:
        return _Scored((*key, row.submitted_at, row.entry_id), True, row.ranking_laps,
                       row.ranking_time_s, row, "", times)
    failed = 0 if row.status == DNF else 1
    finished = sum(1 for t in times if t is not None)
    missing = next((t["track"] for t, time_s in zip(race.all_tracks, times, strict=True)
                    if time_s is None), None)
    reason = f"finished {finished} of {len(times)} tracks"
    if missing is not None:
        reason += f"; {missing}: {_track_reason(data, blocks.get(missing, {}), missing)}"
    return _Scored((1, *key[1:], failed, row.submitted_at, row.entry_id), False,
                   row.ranking_laps, None, row, reason, times)


def _track_reason(data: dict[str, Any], block: dict[str, Any], track: str) -> str:
    """Why track ``track`` of a result on several tracks was not finished, in one line."""
    if block.get("error"):
        return str(block["error"])
    for trial in data.get("trials") or []:
        if isinstance(trial, dict) and trial.get("track") == track and trial.get("reason"):
            return str(trial["reason"])
    return "not finished"


def _time(block: dict[str, Any]) -> float | None:
    """A track block's ranking time, when that track was finished."""
    value = block.get("ranking_time_s")
    if block.get("status") != FINISHED or not isinstance(value, int | float):
        return None
    return round(float(value), ROUNDING)


def _rows(session: Session, race: Race, ordered: list[_Scored]) -> list[LeaderboardRow]:
    counts = dict(session.execute(
        sa.select(Entry.racer_id, sa.func.count(Entry.id))
        .where(Entry.race_id == race.id).group_by(Entry.racer_id)).all())
    leader = ordered[0] if ordered and ordered[0].ranked else None
    rows = []
    for n, s in enumerate(ordered, start=1):
        gap = None
        if s.ranked and leader is not None and leader.time_s is not None \
                and s.time_s is not None and s.laps == leader.laps:
            gap = round(s.time_s - leader.time_s, ROUNDING)
        r = s.row
        rows.append(LeaderboardRow(
            rank=n if s.ranked else None, racer=r.racer, user_id=r.racer_id,
            entry_id=r.entry_id, model=f"{r.model_name} v{r.model_version}", time_s=s.time_s,
            gap_s=gap, laps=s.laps, best_lap_s=r.best_lap_s, off_track_count=r.off_track_count,
            collision_count=r.collision_count, penalty_s=r.penalty_s,
            submissions=counts.get(r.racer_id, 0), submitted_at=r.submitted_at,
            result_id=r.result_id, job_id=r.job_id, status=r.status, reason=s.reason,
            track_times_s=s.track_times))
    return rows


def entry_status(session: Session, entry: Entry) -> EntryStatus:
    """Where ``entry``'s latest time-trial evaluation stands, with the reason of a failure."""
    job = session.scalar(sa.select(EvaluationJob)
                         .where(EvaluationJob.entry_id == entry.id,
                                EvaluationJob.kind == JobKind.TIME_TRIAL)
                         .order_by(EvaluationJob.id.desc()).limit(1))
    result = job.result if job is not None else None
    if entry.disqualified:
        reason = f"disqualified: {entry.disqualified_reason}"
    elif job is not None and job.status == JobStatus.FAILED:
        reason = job.failure_reason
    elif result is not None:
        reason = result_reason(result, required_laps(entry.race))
    else:
        reason = ""
    return EntryStatus(
        entry_id=entry.id, status=job.status if job else None, job_id=job.id if job else None,
        attempts=job.attempts if job else 0, queued_at=job.queued_at if job else None,
        started_at=job.started_at if job else None,
        finished_at=job.finished_at if job else None,
        failure_kind=job.failure_kind if job else None, reason=reason,
        result_id=result.id if result else None,
        result_status=result.status if result else None,
        time_s=ranking_value(entry.race, result)[1] if result else None,
        disqualified=entry.disqualified)
