"""The tracks gallery, one track's page and its drawing.

Drawings are SVG documents without any script, served as ``image/svg+xml`` with the track's
digest as ETag. Pages link to them with ``?v=`` set to that digest, so such a URL names one
geometry and may be cached for a year; without it a drawing is cached for an hour.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from league.read import browse
from web import trackdraw
from web.helpers import session, viewer
from web.links import links

bp = Blueprint("tracks", __name__)
LONG_CACHE = "public, max-age=31536000, immutable"  # the URL names the geometry (?v=)
SHORT_CACHE = "public, max-age=3600"
SVG_CSP = "default-src 'none'; frame-ancestors 'none'"  # a drawing opened on its own


@bp.route("/tracks")
def index() -> str:
    """Every track with its drawing, length, width and tightest radius."""
    return render_template("public/tracks.html", tracks=trackdraw.all_tracks(),
                           version=trackdraw.version)


@bp.route("/tracks/<name>")
def track(name: str) -> str:
    """One track: drawing, details and the races run on it."""
    found = trackdraw.find_track(name)
    if found is None:
        abort(404)
    return render_template("public/track.html", track=found, version=trackdraw.version(found),
                           races=browse.track_races(session(), viewer(), found.name),
                           links=links())


@bp.route("/tracks/<name>.svg")
def svg(name: str) -> BaseResponse:
    """A track's drawing (``?v=`` the digest from :func:`web.trackdraw.version`)."""
    found = trackdraw.find_track(name)
    if found is None:
        abort(404)
    drawing = trackdraw.drawing(found)
    response = Response(drawing.svg, mimetype=trackdraw.SVG_TYPE)
    response.set_etag(drawing.etag)
    response.headers["Cache-Control"] = LONG_CACHE \
        if request.args.get("v") == drawing.etag else SHORT_CACHE
    response.headers["Content-Security-Policy"] = SVG_CSP
    return response.make_conditional(request)
