"""Lookups that answer 404 for anything the caller may not see, whether it exists or not.

A private league, another racer's entry and its evaluations look exactly like missing ones;
the league's :class:`~league.errors.NotFound` becomes the API's 404.
"""

from __future__ import annotations

from league import jobs, leagues, replays, submissions
from league.errors import NotFound
from league.models import Entry, EvaluationJob, League, Race, User
from web.helpers import can_see_entry, session


def league(slug: str, user: User | None) -> League:
    """The league ``slug`` if ``user`` may see it."""
    return leagues.get_league(session(), slug, user)


def race(race_id: int, user: User | None) -> Race:
    """The race ``race_id`` if ``user`` may see its league."""
    return leagues.get_race(session(), race_id, user)


def entry(entry_id: int, user: User | None) -> Entry:
    """An entry ``user`` may see in full: their own, or one in a league they organize."""
    found = submissions.get_entry(session(), entry_id)
    if not can_see_entry(found, user):
        raise NotFound(f"no entry {entry_id}")
    return found


def evaluation(job_id: int, user: User | None) -> EvaluationJob:
    """An evaluation ``user`` may see: a time trial of an entry they may see, or a
    head-to-head heat of a race they may see (heats are raced in the open, like the rating
    table they feed)."""
    job = jobs.get_job(session(), job_id)
    if job.entry is not None:
        visible = can_see_entry(job.entry, user)
    else:
        race = replays.race_of(session(), job)
        if race is None:
            raise NotFound(f"no evaluation job {job_id}")
        visible = leagues.can_view(session(), race.league, user)
    if not visible:
        raise NotFound(f"no evaluation job {job_id}")
    return job
