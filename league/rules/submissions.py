"""Submitting a model to a race: validate, store, and queue its evaluation.

A refused model is refused in the response itself with the validator's message and nothing is
stored. An accepted one is stored content-addressed and becomes a model row, an entry and a
queued job, all in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.errors import PolicyRejected
from evaluator.race_settings import SOLO_FORMATS
from evaluator.validate import validate_policy
from league.config import DEFAULT_MAX_ATTEMPTS
from league.errors import Conflict, Forbidden, InvalidInput, LimitExceeded, NotFound
from league.models import (
    AuditAction,
    Entry,
    EvaluationJob,
    JobKind,
    JobStatus,
    Membership,
    PolicyModel,
    Race,
    RaceStatus,
    User,
    utcnow,
)
from league.rules import audit
from league.rules.leagues import can_manage, joins_by_invite, membership
from league.rules.text import clean_description, clean_name
from league.storage import Storage

MAX_MODEL_NAME_CHARS = 80
MAX_REASON_CHARS = 2000  # a disqualification reason


def submit_entry(session: Session, storage: Storage, race: Race, racer: User, data: bytes,
                 metadata: str | bytes | Mapping[str, Any] | None = None, *,
                 model_name: str = "", now: dt.datetime | None = None,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 max_queued: int | None = None) -> Entry:
    """Enter a model in a race; returns the entry with its queued evaluation job.

    Rules, in order: the race is open (between its open and close times, not closed); the
    racer may enter it (unlisted and private leagues: members; races limited to divisions:
    racers of those divisions); the racer has entries left today (UTC) and in total; an entry
    that queues an evaluation finds fewer than ``max_queued`` of the racer's evaluations
    waiting (:func:`check_queued`; the website and the API pass the operator's setting, None
    is no cap); the model passes validation. The model's version counts up per racer and
    name; the same file with the same metadata under the same name is the version it already
    is (one model entered in several races is one version, its entries listed together in
    the garage). A time-trial entry gets a queued evaluation job; a head-to-head entry waits
    for the next round's heats.
    """
    now = now or utcnow()
    _check_open(race, now)
    check_eligible(session, race, racer)
    _check_limits(session, race, racer, now)
    if race.format in SOLO_FORMATS:  # the entries that queue a job of their own
        check_queued(session, racer, max_queued)
    try:
        policy = validate_policy(data, metadata)
    except PolicyRejected as err:
        raise InvalidInput(f"model refused: {err}") from err
    name = clean_name((model_name or policy.metadata.name or "model")[:MAX_MODEL_NAME_CHARS],
                      "a model name", MAX_MODEL_NAME_CHARS)
    digest = storage.put("models", policy.data)
    model_metadata = _metadata_doc(policy.metadata.to_json())
    model = _same_version(session, racer, name, digest, model_metadata)
    if model is None:
        version = (session.scalar(sa.select(sa.func.max(PolicyModel.version)).where(
            PolicyModel.owner_id == racer.id, PolicyModel.name == name)) or 0) + 1
        model = PolicyModel(owner_id=racer.id, name=name, version=version, sha256=digest,
                            size_bytes=len(policy.data), model_metadata=model_metadata,
                            validation=policy.summary())
        session.add(model)
        session.flush()
    entry = Entry(race_id=race.id, racer_id=racer.id, model_id=model.id, submitted_at=now)
    session.add(entry)
    session.flush()
    if race.format in SOLO_FORMATS:  # head-to-head entries race in the rounds' heat jobs
        queue_evaluation(session, entry, now=now, max_attempts=max_attempts)
    return entry


def _same_version(session: Session, racer: User, name: str, digest: str,
                  model_metadata: dict[str, Any]) -> PolicyModel | None:
    """The racer's newest version named ``name`` with these bytes and this metadata."""
    for model in session.scalars(
            sa.select(PolicyModel)
            .where(PolicyModel.owner_id == racer.id, PolicyModel.name == name,
                   PolicyModel.sha256 == digest)
            .order_by(PolicyModel.version.desc())):
        if model.model_metadata == model_metadata:
            return model
    return None


def queue_evaluation(session: Session, entry: Entry, *, now: dt.datetime | None = None,
                     max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> EvaluationJob:
    """A new queued time-trial job for ``entry`` (earlier jobs and results are kept)."""
    job = EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=entry.id, status=JobStatus.QUEUED,
                        queued_at=now or utcnow(), max_attempts=max_attempts)
    session.add(job)
    session.flush()
    return job


def rerun_entry(session: Session, entry: Entry, user: User) -> EvaluationJob:
    """Organizers re-run a time-trial entry: a new job; the history of earlier jobs stays.

    Refused for disqualified entries, for head-to-head entries (they race in the rounds'
    heats, not on their own) and once the race is closed (its points are awarded).
    """
    if not can_manage(session, entry.race.league, user):
        raise Forbidden("only this league's organizers can re-run entries")
    if entry.disqualified:
        raise Conflict("a disqualified entry is not re-run")
    if entry.race.format not in SOLO_FORMATS:
        raise Conflict("head-to-head entries race in the rounds' heats: there is nothing "
                       "to re-run")
    if entry.race.status == RaceStatus.CLOSED:
        raise Conflict("the race is closed: its results are final")
    job = queue_evaluation(session, entry)
    audit.record(session, entry.race.league_id, user, AuditAction.ENTRY_RERUN,
                 entry_words(entry), job_id=job.id)
    return job


def entry_words(entry: Entry) -> str:
    """An entry in the audit log's words: "entry 12 (ada, fast v3) in race 5 (Sprint)"."""
    return (f"entry {entry.id} ({entry.racer.name}, {entry.model.name} v{entry.model.version})"
            f" in race {entry.race.id} ({entry.race.name})")


def disqualify_entry(session: Session, entry: Entry, user: User, reason: str) -> None:
    """Organizers disqualify an entry with a reason; it leaves the leaderboard."""
    if not can_manage(session, entry.race.league, user):
        raise Forbidden("only this league's organizers can disqualify entries")
    reason = clean_description(reason, MAX_REASON_CHARS)
    if not reason:
        raise InvalidInput("a disqualification needs a reason")
    entry.disqualified_at = entry.disqualified_at or utcnow()
    entry.disqualified_reason = reason
    audit.record(session, entry.race.league_id, user, AuditAction.ENTRY_DISQUALIFIED,
                 entry_words(entry), reason)
    for job in entry.jobs:
        if job.status == JobStatus.QUEUED:
            job.status = JobStatus.CANCELLED
            job.finished_at = utcnow()


def get_entry(session: Session, entry_id: int) -> Entry:
    """An entry by id."""
    entry = session.get(Entry, entry_id)
    if entry is None:
        raise NotFound(f"no entry {entry_id}")
    return entry


def _metadata_doc(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(text)
    return doc


def check_queued(session: Session, racer: User, max_queued: int | None) -> None:
    """Raise :class:`LimitExceeded` when ``racer`` already has ``max_queued`` time-trial
    evaluations queued or running, in any race of any league (None or 0: no cap).

    The fair queue lets racers take turns, but one racer's pile of uploads would still wait
    in it for hours; so past the cap an upload is refused, not kept waiting: nothing is
    stored, the racer keeps the file and uploads it again once an evaluation finishes.
    Organizers' re-runs count (they wait in the racer's turn) but are never refused;
    head-to-head heats are the race's, not the racer's, and do not count.
    """
    if not max_queued:
        return
    waiting = session.scalar(
        sa.select(sa.func.count(EvaluationJob.id))
        .join(Entry, EvaluationJob.entry_id == Entry.id)
        .where(Entry.racer_id == racer.id, EvaluationJob.kind == JobKind.TIME_TRIAL,
               EvaluationJob.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))) or 0
    if waiting >= max_queued:
        evaluations = "evaluation" if waiting == 1 else "evaluations"
        raise LimitExceeded(f"you have {waiting} {evaluations} waiting or running, the most a "
                            "racer may have at once: upload again when one of them finishes "
                            "(nothing was stored)")


def _check_open(race: Race, now: dt.datetime) -> None:
    if race.status == RaceStatus.CLOSED or now >= race.closes_at:
        raise Conflict("this race is closed")
    if now < race.opens_at:
        raise Conflict(f"this race opens at {race.opens_at.isoformat()}Z")


def check_eligible(session: Session, race: Race, racer: User) -> None:
    """Raise :class:`Forbidden` (saying why) unless ``racer`` may enter ``race``: a member of
    an unlisted or private league, of one of the race's divisions when it names some."""
    refusal = eligibility_refusal(race, membership(session, race.league, racer))
    if refusal:
        raise Forbidden(refusal)


def eligibility_refusal(race: Race, member: Membership | None) -> str:
    """Why a racer whose membership of the race's league is ``member`` may not enter
    ``race`` ("" when they may): the rule of :func:`check_eligible`, for a caller that has
    the membership at hand."""
    if joins_by_invite(race.league) and member is None:
        return (f"only members enter the races of this {race.league.visibility} league: "
                "join it with the invite link from its organizers first")
    if race.divisions:
        allowed = {d.id for d in race.divisions}
        if member is None or member.division_id not in allowed:
            names = ", ".join(d.name for d in race.divisions)
            return f"this race is for racers of {names}"
    return ""


def _check_limits(session: Session, race: Race, racer: User, now: dt.datetime) -> None:
    mine = sa.select(sa.func.count(Entry.id)).where(Entry.race_id == race.id,
                                                    Entry.racer_id == racer.id)
    if race.max_entries_total is not None:
        total = session.scalar(mine) or 0
        if total >= race.max_entries_total:
            raise LimitExceeded(f"you have used all {race.max_entries_total} entries of this "
                                "race")
    if race.max_entries_per_day is not None:
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        today = session.scalar(mine.where(Entry.submitted_at >= day)) or 0
        if today >= race.max_entries_per_day:
            raise LimitExceeded(f"you have used today's {race.max_entries_per_day} entries of "
                                "this race; more tomorrow (UTC)")
