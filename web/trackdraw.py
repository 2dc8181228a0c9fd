"""Track drawings for the website: an SVG per track, sized for a page, cached by geometry.

The drawing itself is :func:`evaluator.render.track_svg` (the track surface filled between
its borders, the dashed centerline, the checkered start line and the driving-direction
arrow), the same picture the simulator's renderer draws. This module scales it to a
sensible width, keeps each drawing per process keyed by the track's digest (the geometry:
a re-imported track gets a new drawing), and looks the track up by a safe name only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from evaluator.errors import TrackError
from evaluator.render import track_svg
from evaluator.track import Track
from evaluator.track_library import iter_tracks, library_names, load_track

TARGET_WIDTH_PX = 720  # drawings are scaled to about this width ...
MAX_PX_PER_M = 40.0  # ... but never larger than the renderer's default scale
MARGIN_M = 0.4  # grass around the track's bounds
# A track name as evaluator.track accepts them: never a path (no '/', '.', '\\').
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SVG_TYPE = "image/svg+xml"
ETAG_CHARS = 32  # of the digest, in the ETag and the ?v= of drawing URLs
# Active content an SVG must never hold (the renderer writes none; this makes sure).
FORBIDDEN = re.compile(r"<script|<foreignobject|\son[a-z]+\s*=|javascript:|href\s*=",
                       re.IGNORECASE)


@dataclass(frozen=True)
class Drawing:
    """A track's SVG document and the tag it is cached by."""

    svg: str
    etag: str  #: the first characters of the track's digest


def find_track(name: str) -> Track | None:
    """The library or imported track called ``name``; None for anything else (paths too)."""
    if not NAME_RE.match(name):
        return None
    try:
        return load_track(name)
    except TrackError:
        return None


def all_tracks() -> list[Track]:
    """Every track the site knows: the shipped library, then imported ones.

    A broken catalog of imported tracks hides those, never the library.
    """
    try:
        return list(iter_tracks())
    except TrackError:
        return [t for t in (find_track(n) for n in library_names()) if t is not None]


def version(track: Track) -> str:
    """The part of a drawing URL that changes with the geometry (``?v=``)."""
    return track.digest[:ETAG_CHARS]


def drawing(track: Track) -> Drawing:
    """The page-sized SVG of ``track`` (computed once per geometry and process)."""
    return _drawing(track.name, track.digest)


@lru_cache(maxsize=128)
def _drawing(name: str, digest: str) -> Drawing:
    track = load_track(name)
    xmin, _, xmax, _ = track.bounds
    width_m = xmax - xmin + 2 * MARGIN_M
    scale = min(MAX_PX_PER_M, TARGET_WIDTH_PX / width_m)
    svg = track_svg(track, px_per_m=scale, margin_m=MARGIN_M)
    # The drawing holds the track's title (escaped by the renderer); make sure no active
    # content ever reaches a browser, whatever a catalog says.
    if FORBIDDEN.search(svg):
        raise TrackError(f"the drawing of {name!r} holds active content")
    return Drawing(svg, track.digest[:ETAG_CHARS])
