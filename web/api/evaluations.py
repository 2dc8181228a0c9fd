"""Evaluations: a job's state and result, and its replays."""

from __future__ import annotations

from flask import Response

from league.models import User
from league.read import access, replays
from web.api import entry_schemas as es
from web.api import present
from web.api.blueprint import api
from web.api.registry import Binary
from web.helpers import session, storage


@api.route("/evaluations/<int:job_id>", tag="evaluations", responses={200: es.Evaluation},
           errors=(404,))
def get_evaluation(job_id: int, caller: User | None) -> es.Evaluation:
    """Show an evaluation: status, attempts, failure kind and reason, replays and result.

    ``result`` is the object ``paddock evaluate --json`` prints, exactly as the league stored
    it: run the same model with the race's settings at home and compare. Time-trial
    evaluations are shown to the entry's racer and the league's organizers; head-to-head
    heats to everyone who may see the race.
    """
    return present.evaluation(session(), access.visible_job(session(), job_id, caller),
                              caller)


@api.route("/evaluations/<int:job_id>/replay", tag="evaluations", query=es.ReplayQuery,
           responses={200: Binary}, errors=(404,))
def get_replay(job_id: int, caller: User | None, query: es.ReplayQuery) -> Response:
    """Download the replay of one trial or heat (``?trial=N``; default the trial the result
    is ranked by): the gzip bytes described in docs/REPLAY.md.

    Replays are public like the website's viewer: anyone who may see the race may watch
    them (the result details of a time trial stay with its racer and the organizers). The
    policies' commands (``command_steering``, ``command_speed``, ``action``) are kept only for
    the cars the caller may see them of: their own, or every car for the league's organizers;
    the other cars' header says ``"commands": false``. The ETag tells the copies apart.
    """
    ctx = replays.job_replay(session(), job_id, caller, query.trial)
    copy = replays.replay_copy(session(), ctx, caller)
    return Response(replays.copy_bytes(storage(), copy), mimetype=Binary.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{ctx.filename}"',
                             "ETag": f'"{copy.etag}"', "Cache-Control": "private",
                             "Vary": "Authorization"})
