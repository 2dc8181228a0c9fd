"""Entries: uploading a model to a race, following it, re-running and disqualifying it."""

from __future__ import annotations

from league.models import User
from league.read import access, browse
from league.rules import races, submissions
from web.api import entry_schemas as es
from web.api import present
from web.api import schemas as s
from web.api.blueprint import api
from web.api.registry import Auth
from web.extensions import upload_budget
from web.helpers import Page, page_args, session, settings, storage


@api.route("/races/<int:race_id>/entries", "POST", tag="entries", auth=Auth.REQUIRED,
           body=es.EntryUpload, multipart=True, responses={201: es.Entry},
           errors=(403, 404, 409), rate_limit=upload_budget)
def submit_entry(race_id: int, caller: User, body: es.EntryUpload) -> tuple[es.Entry, int]:
    """Enter a model in a race: the file is validated, stored and queued for evaluation.

    A model the validator refuses is answered with 400 and its reason, and nothing is
    stored. A closed race (or one not open yet) is 409, a race limited to other divisions
    403, a spent submission limit 429 (``limit_exceeded``: the race's entries per day or in
    total, or as many of the caller's evaluations waiting as one racer may have), as is a
    spent upload budget (``rate_limited``, shared with the website's uploads).
    """
    race = races.get_race(session(), race_id, caller)
    entry = submissions.submit_entry(session(), storage(), race, caller, body.model,
                                     body.metadata, model_name=body.name,
                                     max_attempts=settings().max_attempts,
                                     max_queued=settings().max_queued_per_racer)
    session().commit()
    return present.entry(session(), entry), 201


@api.route("/entries/<int:entry_id>", tag="entries", auth=Auth.REQUIRED,
           responses={200: es.Entry}, errors=(404,))
def get_entry(entry_id: int, caller: User) -> es.Entry:
    """Show an entry (its racer or the league's organizers): model, status, evaluations."""
    return present.entry(session(), access.visible_entry(session(), entry_id, caller))


@api.route("/entries/<int:entry_id>/rerun", "POST", tag="entries", auth=Auth.REQUIRED,
           responses={201: es.Evaluation}, errors=(403, 404, 409))
def rerun_entry(entry_id: int, caller: User) -> tuple[es.Evaluation, int]:
    """Evaluate an entry again (the league's organizers); earlier results are kept."""
    entry = access.visible_entry(session(), entry_id, caller)
    job = submissions.rerun_entry(session(), entry, caller)
    session().commit()
    return present.evaluation(session(), job, caller), 201


@api.route("/entries/<int:entry_id>/disqualify", "POST", tag="entries", auth=Auth.REQUIRED,
           body=es.Disqualify, responses={200: es.Entry}, errors=(403, 404))
def disqualify_entry(entry_id: int, caller: User, body: es.Disqualify) -> es.Entry:
    """Disqualify an entry with a reason (the league's organizers); it leaves the
    leaderboard and its queued evaluations are cancelled."""
    entry = access.visible_entry(session(), entry_id, caller)
    submissions.disqualify_entry(session(), entry, caller, body.reason)
    session().commit()
    return present.entry(session(), entry)


@api.route("/me/entries", tag="me", auth=Auth.REQUIRED, query=s.PageQuery,
           responses={200: es.EntryList})
def my_entries(caller: User, query: s.PageQuery) -> es.EntryList:
    """List the caller's entries, newest first, with their evaluation status."""
    page, per_page = page_args()
    found, total = browse.racer_entries(session(), caller, offset=(page - 1) * per_page,
                                        limit=per_page)
    return es.EntryList(items=[present.entry(session(), e) for e in found],
                       pagination=present.pagination(Page(found, page, per_page, total)))
