"""Evaluation jobs: claimed under a lease, renewed by heartbeats, finished exactly once.

A job moves forward only: ``queued → running → succeeded | failed | cancelled``. The one way
back, ``running → queued``, is a retry: taken when a worker stopped renewing its lease
(:func:`reap_expired`) or handed the job back while stopping (:func:`release_job`). A late
result of an earlier attempt may still finish a re-queued job (``queued → succeeded``).
Succeeded, failed and cancelled are final.

The job id is the idempotency key of a result: every job may be delivered twice (a worker that
lost its lease keeps racing, a message is retried) and the second delivery changes nothing.
Each event appends one line to the job's ``log``; a failed job always names a
:class:`~league.models.FailureKind` and a reason.

Workers claim in a fair order (:func:`next_fair_job`), not simply the oldest job first:
racers take turns, each racer's jobs go oldest first, and head-to-head heats alternate with
time trials.

Concurrency. Every function locks the rows it changes. On PostgreSQL that is ``SELECT … FOR
UPDATE`` (``SKIP LOCKED`` where another worker's row can simply be left to it). On SQLite
``FOR UPDATE`` renders as nothing, and it needs nothing: ``league.db`` opens every transaction
with ``BEGIN IMMEDIATE``, which takes the database's single write lock before the first read,
so a select-then-update inside one transaction cannot interleave with another writer's.

Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from league.errors import Conflict, InvalidInput, NotFound
from league.models import (
    Entry,
    EvaluationJob,
    FailureKind,
    Heat,
    JobKind,
    JobStatus,
    Replay,
    Result,
    utcnow,
)
from league.rules import notifications
from league.storage import Storage

MAX_REASON_CHARS = 2000  # a failure reason or log event longer than this is cut
#: How far back :func:`next_fair_job` looks for the last claim of a lane (a racer, a race's
#: heats): much longer than an evaluation runs, so a lone worker's queue still takes turns.
FAIR_WINDOW = dt.timedelta(hours=1)
#: How many lanes one claim ranks and tries before it takes the oldest job nobody holds
#: (only claimers racing for the same lanes at the same moment get that far).
FAIR_LANES_TRIED = 8

#: Every move a job may make; anything else raises :class:`JobStateError`.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED,
                                 JobStatus.SUCCEEDED}),  # succeeded: a late result
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED,
                                  JobStatus.QUEUED}),  # queued: a retry
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}
FINAL = frozenset(s for s, moves in TRANSITIONS.items() if not moves)


class JobStateError(Conflict):
    """Raised when a job is asked to move to a state it cannot reach from its current one."""


def can_move(current: JobStatus, target: JobStatus) -> bool:
    """Whether a job in ``current`` may move to ``target``."""
    return target in TRANSITIONS[current]


def claim_job(session: Session, worker_id: str, lease_s: float,
              now: dt.datetime | None = None) -> EvaluationJob | None:
    """Take the next queued job in the fair order for ``worker_id`` under a lease of
    ``lease_s`` seconds.

    The order is :func:`next_fair_job`'s: lanes take turns, each lane's jobs go oldest
    first. Returns None when nothing is queued. Two workers never get the same job: on
    PostgreSQL the row is locked and others skip it for the next one (its queued status is
    tested again on the locked row); on SQLite the transaction holds the write lock.
    """
    now = now or utcnow()
    job = next_fair_job(session, now)
    if job is None:
        return None
    _move(job, JobStatus.RUNNING)
    job.attempts += 1
    job.lease_owner = worker_id
    job.lease_expires_at = now + dt.timedelta(seconds=lease_s)
    job.started_at = now
    _log(job, now, f"attempt {job.attempts} of {job.max_attempts} claimed by {worker_id} "
                   f"(lease {lease_s:g} s)")
    session.flush()
    return job


def next_fair_job(session: Session, now: dt.datetime) -> EvaluationJob | None:
    """The queued job whose turn it is, its row locked (skipping rows others hold).

    Every job runs in a *lane*: a time trial in its racer's (uploads and organizers'
    re-runs alike: a re-run is work for that racer's leaderboard line), a heat in its
    head-to-head race's. The lanes form two classes, time trials and heats. A lane or a
    class was *served* when one of its jobs was last claimed, looking back
    :data:`FAIR_WINDOW` (a retried job's lost attempt counts). The order:

    1. the class served least recently first (not within the window counts as longest ago):
       while both have queued jobs, claims alternate between time trials and heats, so a
       round of heats neither waits behind every racer's uploads nor holds them up;
    2. within it, the lane served least recently first: racers take turns, one job each, so
       a racer's 50 uploads cost someone else's single upload one turn, not 50 evaluations,
       and head-to-head races take turns with each other likewise;
    3. ties (neither served within the window, or served at the same instant) go to the
       class, then the lane, whose oldest queued job is oldest, then the lower lane key;
    4. within a lane, oldest first: first queued (a retried job keeps its place at the
       front), then lowest id.

    One statement ranks the lanes with queued jobs and returns the first
    :data:`FAIR_LANES_TRIED` (nothing is ranked in Python); the oldest job of the first lane
    is then locked with ``SKIP LOCKED``. A lane whose queued jobs other claimers all hold
    passes the turn to the next; when every lane tried is held, the oldest job nobody holds
    is taken, so a free job never waits.
    """
    for kind, lane in session.execute(lanes_in_turn(now - FAIR_WINDOW)):
        job = _first_free(session, _queued().where(_in_lane(JobKind(kind), lane)))
        if job is not None:
            return job
    return _first_free(session, _queued())


def lanes_in_turn(since: dt.datetime) -> sa.Select[str, int]:
    """The first lanes with queued jobs as (job kind, lane key), the next to serve first.

    Rules 1 to 3 of :func:`next_fair_job`, looking back to ``since``. One pass over the
    queued jobs and those claimed since then, grouped by lane; the classes are ranked on
    the lanes' figures, lanes with nothing queued included (their claims still count).
    """
    job = aliased(EvaluationJob, name="seen")
    queued = job.status == JobStatus.QUEUED
    recent = sa.and_(job.started_at.is_not(None), job.started_at >= since)
    served = sa.func.max(sa.case((recent, job.started_at)))  # NULL: not since ``since``
    oldest = sa.func.min(sa.case((queued, job.queued_at)))  # NULL: nothing queued
    lane = sa.func.coalesce(Entry.racer_id, Heat.race_id)
    lanes = (
        sa.select(job.kind.label("kind"), lane.label("lane"), served.label("served"),
                  oldest.label("oldest"),
                  sa.func.max(served).over(partition_by=job.kind).label("class_served"),
                  sa.func.min(oldest).over(partition_by=job.kind).label("class_oldest"))
        .select_from(job)
        .outerjoin(Entry, sa.and_(job.kind == JobKind.TIME_TRIAL, Entry.id == job.entry_id))
        .outerjoin(Heat, sa.and_(job.kind == JobKind.HEAT, Heat.id == job.heat_id))
        .where(sa.or_(queued, recent))
        .group_by(job.kind, lane)
        .subquery("lanes"))
    return (sa.select(lanes.c.kind, lanes.c.lane).where(lanes.c.oldest.is_not(None))
            .order_by(lanes.c.class_served.asc().nulls_first(), lanes.c.class_oldest,
                      lanes.c.kind, lanes.c.served.asc().nulls_first(), lanes.c.oldest,
                      lanes.c.lane)
            .limit(FAIR_LANES_TRIED))


def _in_lane(kind: JobKind, lane: int) -> sa.ColumnElement[bool]:
    """Whether a job runs in the lane ``lane`` of class ``kind``: a time trial of the racer
    ``lane``, a heat of the race ``lane``."""
    if kind == JobKind.HEAT:
        return EvaluationJob.heat_id.in_(sa.select(Heat.id).where(Heat.race_id == lane))
    return sa.and_(EvaluationJob.kind == kind, EvaluationJob.entry_id.in_(
        sa.select(Entry.id).where(Entry.racer_id == lane)))


def _queued() -> sa.Select[EvaluationJob]:
    """Queued jobs, oldest first (rule 4)."""
    return (sa.select(EvaluationJob).where(EvaluationJob.status == JobStatus.QUEUED)
            .order_by(EvaluationJob.queued_at, EvaluationJob.id))


def _first_free(session: Session, jobs: sa.Select[EvaluationJob]
                ) -> EvaluationJob | None:
    """The first of ``jobs`` no other transaction holds, locked and read afresh."""
    return session.scalars(jobs.limit(1).with_for_update(skip_locked=True, of=EvaluationJob)
                           .execution_options(populate_existing=True)).first()


def heartbeat(session: Session, job_id: int, worker_id: str, lease_s: float,
              now: dt.datetime | None = None) -> bool:
    """Renew ``worker_id``'s lease on a job; False when the lease is no longer its own.

    A lease that ran out but was not reaped yet is still the worker's (nobody else can hold
    it), so it is renewed. False means the job was re-queued, taken by another worker or
    finished: the worker stops renewing and must not assume the job is still its own.
    """
    now = now or utcnow()
    renewed = cast("sa.CursorResult[Any]", session.execute(
        sa.update(EvaluationJob)
        .where(EvaluationJob.id == job_id, EvaluationJob.status == JobStatus.RUNNING,
               EvaluationJob.lease_owner == worker_id)
        .values(lease_expires_at=now + dt.timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)))
    return renewed.rowcount == 1


def complete_job(session: Session, job_id: int, worker_id: str, result: Mapping[str, Any],
                 replays: Sequence[tuple[int, bytes]], storage: Storage, *, note: str = "",
                 now: dt.datetime | None = None) -> bool:
    """Record a job's result and replays and mark it succeeded; False when nothing changed.

    Rules: the job id is the key, so when a result already exists this delivery changes
    nothing (not even the log). The first result wins: a worker that lost its lease still
    finishes the job when no result exists yet, even if the job was re-queued or another
    worker is racing it (the evaluation is deterministic, so both would bring the same
    result). A failed or cancelled job is final: a late result is logged and dropped.
    ``result`` is the evaluator's JSON (``RaceResult.to_dict()``); ``replays`` are
    (trial number, replay bytes) pairs, stored under ``replays`` in ``storage``.
    """
    now = now or utcnow()
    # Content-addressed, so storing before the check is harmless on a second delivery, and
    # the file writes happen before the row lock is taken.
    stored = [(trial, storage.put("replays", data), len(data)) for trial, data in replays]
    job = _locked(session, job_id)
    if session.scalar(sa.select(Result.id).where(Result.job_id == job_id)) is not None:
        return False
    if job.status in FINAL:
        _log(job, now, f"result from {worker_id} dropped: the job is already {job.status}")
        session.flush()
        return False
    lost = job.status != JobStatus.RUNNING or job.lease_owner != worker_id
    session.add(Result(job_id=job.id, entry_id=job.entry_id, data=dict(result), created_at=now,
                       **result_columns(result)))
    for trial, digest, size in stored:
        session.add(Replay(job_id=job.id, trial=trial, sha256=digest, size_bytes=size))
    _move(job, JobStatus.SUCCEEDED)
    job.finished_at = now
    job.lease_owner = job.lease_expires_at = None
    line = f"succeeded: {result.get('status')} (result from {worker_id}"
    line += ", whose lease was lost; first result wins)" if lost else ")"
    _log(job, now, f"{line}{'; ' + note if note else ''}")
    session.flush()
    notifications.job_finished(session, job, now)
    return True


def result_columns(result: Mapping[str, Any]) -> dict[str, Any]:
    """The leaderboard columns of a result: the entrant's (first car's) status and times.

    The row describes the run that set the time: best lap, off-tracks, collisions and
    penalty come from the ranked trial. An entrant with no ranked trial (dnf, policy_error)
    gets the fastest lap it drove in any trial and its incidents summed over all trials. On
    several tracks (``tracks``) the runs that set the time are each track's ranked trial,
    when every track has one.
    """
    trials: list[Mapping[str, Any]] = list(result.get("trials") or [])
    blocks = [b for b in result.get("tracks") or [] if isinstance(b, Mapping)]
    wanted = ({b.get("ranked_trial") for b in blocks} if blocks else {result.get("ranked_trial")})
    ranked = [] if None in wanted else [t for t in trials if t.get("trial") in wanted]
    rows = ranked or trials
    laps = [t["best_lap_s"] for t in rows if t.get("best_lap_s") is not None]
    return {"status": str(result["status"]), "ranking_time_s": result.get("ranking_time_s"),
            "ranking_laps": int(result.get("ranking_laps") or 0),
            "best_lap_s": min(laps) if laps else None,
            "off_track_count": sum(int(t.get("off_track_count", 0)) for t in rows),
            "collision_count": sum(int(t.get("collision_count", 0)) for t in rows),
            "penalty_s": round(sum(float(t.get("penalty_s", 0.0)) for t in rows), 6)}


def fail_job(session: Session, job_id: int, worker_id: str, kind: FailureKind, reason: str,
             now: dt.datetime | None = None) -> bool:
    """Fail a job for good with a kind and a reason; False when the failure was not taken.

    Only the worker holding the job may fail it. Unlike a result, a failure may be the
    worker's own trouble (a missing file on its disk), so one from a worker that lost its
    lease is logged and dropped: the job's current or next attempt decides. A finished job
    is never failed afterwards.
    """
    now = now or utcnow()
    reason = _one_line(reason)
    if not reason:
        raise InvalidInput("a failed job needs a reason")
    kind = FailureKind(kind)
    job = _locked(session, job_id)
    if job.status != JobStatus.RUNNING or job.lease_owner != worker_id:
        _log(job, now, f"failure from {worker_id} dropped ({kind}: {reason}): the job is "
                       f"{_holder(job)}")
        session.flush()
        return False
    _fail(job, now, kind, reason)
    notifications.job_failed(session, job, now)
    return True


def reap_expired(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Recover running jobs whose lease ran out; returns their ids.

    A job whose worker stopped renewing (killed, hung, cut off) goes back to the queue while
    it has attempts left; after ``max_attempts`` lost attempts it fails as infrastructure,
    naming the last worker and when its lease ran out. Rows another transaction holds are
    left for the next call.
    """
    now = now or utcnow()
    jobs = session.scalars(
        sa.select(EvaluationJob)
        .where(EvaluationJob.status == JobStatus.RUNNING,
               sa.or_(EvaluationJob.lease_expires_at.is_(None),
                      EvaluationJob.lease_expires_at < now))
        .order_by(EvaluationJob.id).with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)).all()
    for job in jobs:
        owner = job.lease_owner or "an unknown worker"
        expired = _stamp(job.lease_expires_at) if job.lease_expires_at else "(no lease)"
        if job.attempts < job.max_attempts:
            _move(job, JobStatus.QUEUED)
            job.lease_owner = job.lease_expires_at = None
            _log(job, now, f"attempt {job.attempts} lost: {owner} stopped renewing its lease "
                           f"(expired at {expired}); queued again")
        else:
            _fail(job, now, FailureKind.INFRASTRUCTURE,
                  f"worker lost {job.attempts} times (last: {owner}, lease expired at "
                  f"{expired})")
            notifications.job_failed(session, job, now)
    session.flush()
    return [job.id for job in jobs]


def release_job(session: Session, job_id: int, worker_id: str, reason: str,
                now: dt.datetime | None = None) -> bool:
    """Hand a running job back to the queue (its worker is stopping); False if not held.

    The released attempt does not count against ``max_attempts``: the job did nothing wrong.
    """
    now = now or utcnow()
    job = _locked(session, job_id)
    if job.status != JobStatus.RUNNING or job.lease_owner != worker_id:
        return False
    _move(job, JobStatus.QUEUED)
    job.attempts -= 1
    job.lease_owner = job.lease_expires_at = None
    _log(job, now, f"released by {worker_id}: {_one_line(reason)}; queued again (the attempt "
                   "does not count)")
    session.flush()
    return True


def cancel_job(session: Session, job_id: int, reason: str,
               now: dt.datetime | None = None) -> bool:
    """Cancel a queued or running job (its worker abandons it); False if already final."""
    now = now or utcnow()
    job = _locked(session, job_id)
    if job.status in FINAL:
        return False
    _move(job, JobStatus.CANCELLED)
    job.finished_at = now
    job.lease_owner = job.lease_expires_at = None
    _log(job, now, f"cancelled: {_one_line(reason) or 'no reason given'}")
    session.flush()
    return True


def get_job(session: Session, job_id: int) -> EvaluationJob:
    """A job by id."""
    job = session.get(EvaluationJob, job_id)
    if job is None:
        raise NotFound(f"no evaluation job {job_id}")
    return job


# ------------------------------------------------------------------------------- helpers
def _locked(session: Session, job_id: int) -> EvaluationJob:
    """The job's row, locked until the transaction ends, read fresh from the database."""
    job = session.get(EvaluationJob, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"no evaluation job {job_id}")
    return job


def _move(job: EvaluationJob, target: JobStatus) -> None:
    current = JobStatus(job.status)
    if not can_move(current, target):
        raise JobStateError(f"job {job.id} cannot move from {current} to {target}")
    job.status = target


def _fail(job: EvaluationJob, now: dt.datetime, kind: FailureKind, reason: str) -> None:
    _move(job, JobStatus.FAILED)
    job.failure_kind = kind
    job.failure_reason = reason
    job.finished_at = now
    job.lease_owner = job.lease_expires_at = None
    _log(job, now, f"failed ({kind}): {reason}")


def _holder(job: EvaluationJob) -> str:
    if job.status == JobStatus.RUNNING:
        return f"held by {job.lease_owner}"
    return str(job.status)


def _stamp(when: dt.datetime) -> str:
    return when.isoformat(timespec="seconds") + "Z"


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_REASON_CHARS else line[:MAX_REASON_CHARS - 1] + "…"


def _log(job: EvaluationJob, now: dt.datetime, event: str) -> None:
    """Append one line to the job's log: a UTC timestamp and the event."""
    job.log = f"{job.log or ''}{_stamp(now)} {_one_line(event)}\n"
