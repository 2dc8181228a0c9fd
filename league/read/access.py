"""Who may see an entry or an evaluation in full, and lookups that hide the rest.

Leagues and races are visible by their league's visibility (:func:`league.rules.leagues.can_view`).
An entry's model, evaluations and logs are for its racer and the league's organizers only. A
time-trial evaluation follows its entry; a head-to-head heat is raced in the open, like the
rating table it feeds, so anyone who may see its race may see it. Anything the caller may not
see is a :class:`~league.errors.NotFound`, exactly like something missing.

Functions take a session and never commit.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from league.errors import NotFound
from league.models import Entry, EvaluationJob, User
from league.read import replays
from league.rules import jobs, leagues, submissions


def can_see_entry(session: Session, entry: Entry, user: User | None) -> bool:
    """Whether ``user`` may see an entry's model, evaluations and logs."""
    if user is None:
        return False
    if entry.racer_id == user.id:
        return True
    return leagues.can_manage(session, entry.race.league, user)


def visible_entry(session: Session, entry_id: int, user: User | None) -> Entry:
    """The entry ``entry_id`` if ``user`` may see it in full, else :class:`NotFound`."""
    entry = submissions.get_entry(session, entry_id)
    if not can_see_entry(session, entry, user):
        raise NotFound(f"no entry {entry_id}")
    return entry


def visible_job(session: Session, job_id: int, user: User | None) -> EvaluationJob:
    """The evaluation ``job_id`` if ``user`` may see it, else :class:`NotFound`."""
    job = jobs.get_job(session, job_id)
    if job.entry is not None:
        visible = can_see_entry(session, job.entry, user)
    else:
        race = replays.race_of(session, job)
        visible = race is not None and leagues.can_view(session, race.league, user)
    if not visible:
        raise NotFound(f"no evaluation job {job_id}")
    return job
