"""Replays: the viewer page and the replay data it loads.

The viewer itself is ``static/js/replay.js`` (and the decoder ``replay_format.js``): it
fetches the replay from :func:`data` and draws it on a canvas. A replay anyone may not see is
a 404, exactly like a missing one. The bytes are the viewer's copy
(:func:`league.read.replays.replay_copy`): the stored file for the league's organizers and the
admins, and for everyone else the file with the policies' commands withheld, except those of
the viewer's own car.

Either page compares its run with another run of the race, drawn as a ghost
(:func:`league.read.replays.compare`): ``?ghost=REPLAY`` names the other run's replay,
``?vs=EVALUATION`` an evaluation (its ranked trial); the leaderboard's "vs leader" links and the
garage's "compare with my previous version" use the latter. A ghost that cannot be compared
(missing, hidden, of another race) leaves the run on its own, with a note saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, make_response, render_template, request
from werkzeug.wrappers import Response

from league.errors import LeagueError, NotFound
from league.models import MAX_ID
from league.read import replays
from web.helpers import session, storage, viewer

bp = Blueprint("replays", __name__)

# Stored replays never change (content-addressed), but who may see one can: cache privately.
CACHE_CONTROL = "private, max-age=31536000, immutable"


def _context_or_404(replay_id: int) -> replays.ReplayContext:
    return _found(replays.get_replay, session(), replay_id, viewer())


def _found(lookup: Callable[..., replays.ReplayContext], *args: Any) -> replays.ReplayContext:
    """``lookup(*args)``, or a 404 that says why (a replay of a mystery track, hidden until
    its race closes, says so; anything else is "no replay")."""
    try:
        return lookup(*args)
    except NotFound as err:
        abort(404, description=str(err))


def _start_time() -> float:
    """The moment to open at (``?t=SECONDS``; the page's ``#t=`` wins in the browser)."""
    t = request.args.get("t", 0.0, type=float)
    return t if t is not None and 0.0 <= t < 1e6 else 0.0


@bp.route("/evaluations/<int:job_id>/replay")
def job(job_id: int) -> str:
    """The replay of an evaluation (``?trial=N``; default: the trial it is ranked by)."""
    ctx = _found(replays.job_replay, session(), job_id, viewer(),
                 request.args.get("trial", type=int))
    return _viewer_page(ctx)


@bp.route("/replays/<int:replay_id>")
def view(replay_id: int) -> str:
    """The replay viewer."""
    return _viewer_page(_context_or_404(replay_id))


def _viewer_page(ctx: replays.ReplayContext) -> str:
    """The viewer page of ``ctx``, with the ghost the query asks for."""
    ctx, problem = _with_ghost(ctx)
    return render_template("replays/view.html", ctx=ctx, start=_start_time(),
                           ghost_problem=problem,
                           choices=replays.ghost_choices(session(), ctx, viewer()))


def _with_ghost(ctx: replays.ReplayContext) -> tuple[replays.ReplayContext, str]:
    """``ctx`` compared with ``?ghost=REPLAY`` or ``?vs=EVALUATION`` (when asked), or ``ctx``
    alone and why the ghost cannot be shown."""
    args = request.args
    asked = "ghost" if "ghost" in args else "vs" if "vs" in args else None
    if asked is None:
        return ctx, ""
    number = args.get(asked, type=int)
    what, a_what = ("replay", "a replay") if asked == "ghost" else ("evaluation", "an evaluation")
    if number is None or not 1 <= number <= MAX_ID:
        return ctx, f"“{args.get(asked)}” is not {a_what} number."
    try:
        if asked == "ghost":
            ghost = replays.get_replay(session(), number, viewer())
        else:
            ghost = replays.job_replay(session(), number, viewer())
        return replays.compare(ctx, ghost), ""
    except LeagueError as e:
        return ctx, f"This run cannot be compared with {what} {number}: {e}."


@bp.route("/replays/<int:replay_id>.bin")
def data(replay_id: int) -> Response:
    """A replay's bytes (the gzipped columnar format of docs/REPLAY.md): the stored file, or
    the copy without the commands of the cars the viewer may not see
    (:func:`league.read.replays.replay_copy`).

    Served as opaque bytes, not as ``Content-Encoding: gzip``: the viewer inflates them
    itself, and the download is the same file.
    """
    return _replay_bytes(_context_or_404(replay_id))


@bp.route("/replays/<int:replay_id>/download")
def download(replay_id: int) -> Response:
    """A replay as a file download (the viewer's copy, as :func:`data` serves it)."""
    ctx = _context_or_404(replay_id)
    response = _replay_bytes(ctx)
    response.headers["Content-Disposition"] = f'attachment; filename="{ctx.filename}"'
    return response


def _replay_bytes(ctx: replays.ReplayContext) -> Response:
    """The viewer's copy with a strong ETag (the stored digest, plus the commands a rewritten
    copy keeps); 304 when the browser has it."""
    copy = replays.replay_copy(session(), ctx, viewer())
    if request.if_none_match.contains(copy.etag):
        response = Response(status=304)
    else:
        response = make_response(replays.copy_bytes(storage(), copy))
        response.mimetype = "application/octet-stream"
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.set_etag(copy.etag)
    return response
