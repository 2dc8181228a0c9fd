"""Tracks: a closed centerline with per-point widths, importers and the shipped library.

A track is the closed polyline of its centerline points (the last point does not repeat the
first) with a left and a right width at each point, left and right taken in the driving
direction. Everything else (borders, arc length, curvature, the packed arrays the simulator
uses) is derived from those three arrays, and so is the track's digest.

File formats:

* DeepRacer ``.npy``: float array N x 6, metres: center x, y | inner x, y | outer x, y.
* CSV ``x_m,y_m,w_tr_right_m,w_tr_left_m`` (comment lines start with ``#``), the format of the
  shipped library and of ``paddock tracks import``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from evaluator import _geometry as geo
from evaluator._detmath import atan2
from evaluator.errors import TrackError

MIN_POINTS = 8  # fewer distinct centerline points cannot describe a circuit
MIN_LENGTH_M = 5.0  # shortest accepted centerline (DeepRacer's shortest is about 6 m)
MAX_LENGTH_M = 2000.0  # longest accepted centerline
MIN_HALF_WIDTH_M = 0.10  # narrowest accepted half width (the car is 0.20 m wide)
MAX_HALF_WIDTH_M = 5.0  # widest accepted half width
MAX_TURN_DEG = 100.0  # a sharper turn between two segments is a spike, not a corner
CLOSING_GAP_FACTOR = 3.0  # last->first gap allowed, in median segment lengths
DUPLICATE_EPS_M = 1e-6  # consecutive points closer than this are one point
GRID_CELL_M = 0.5  # cell size of the ray-casting grid
GRID_MARGIN_M = 2.0  # grid margin around the borders
CURVATURE_SMOOTH_M = 0.25  # curvature is averaged over +- this arc length
SEARCH_RADIUS_M = 1.2  # local projection searches this much arc either way
FOLD_FACTORS = (0.9, 0.7, 0.5)  # share of a segment its border may lose inside a corner
FIT_PLATEAU_M = 0.6  # a narrowed corner keeps its deepest cut this far either way ...
FIT_AVERAGE_M = 0.4  # ... and the cut then blends out over this distance

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TRACK_DOMAIN = b"paddock-track/1\n"


class TrackKernel(NamedTuple):
    """The packed arrays compiled kernels work on (see :mod:`evaluator._geometry`)."""

    tseg: np.ndarray
    border: np.ndarray
    gmeta: np.ndarray
    gstart: np.ndarray
    gitems: np.ndarray
    length: float


@dataclass(frozen=True)
class TrackPoint:
    """Where a point lies relative to the track (from :meth:`Track.project`)."""

    index: int  #: previous waypoint (start of the nearest segment)
    next_index: int  #: next waypoint
    s: float  #: arc length of the projection from the start line, metres
    offset: float  #: signed distance from the centerline, metres, positive to the left
    heading: float  #: track direction at the projection, radians
    width_left: float  #: left width at the projection, metres
    width_right: float  #: right width at the projection, metres

    @property
    def on_track(self) -> bool:
        """Whether the point is on the track surface (the border itself counts as on)."""
        if self.offset >= 0.0:
            return self.offset <= self.width_left
        return -self.offset <= self.width_right


@dataclass(frozen=True, eq=False)
class Track:
    """A closed circuit: centerline points and left/right widths, in metres.

    Build one with :meth:`from_arrays` (validates and cleans) or a file constructor;
    ``Track(...)`` itself expects already clean arrays.
    """

    name: str
    centerline: np.ndarray  #: (N, 2) float64, counter- or clockwise, not repeating the start
    width_left: np.ndarray  #: (N,) float64, metres to the left border in the driving direction
    width_right: np.ndarray  #: (N,) float64, metres to the right border
    title: str = ""
    description: str = ""
    source: str = field(default="", compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)  #: what the importer adjusted

    def __post_init__(self) -> None:
        for arr in (self.centerline, self.width_left, self.width_right):
            arr.setflags(write=False)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_arrays(
        cls,
        name: str,
        centerline: np.ndarray,
        width_left: np.ndarray,
        width_right: np.ndarray,
        *,
        title: str = "",
        description: str = "",
        source: str = "",
    ) -> Track:
        """Validate and clean raw arrays into a track, or raise :class:`TrackError`."""
        _check_name(name)
        pts, wl, wr = _clean(
            np.asarray(centerline), np.asarray(width_left), np.asarray(width_right), source
        )
        track = cls(name, pts, wl, wr, title=title or name, description=description,
                    source=source)
        track._check_shape()
        fits = iter(FOLD_FACTORS)
        while (crossing := track._border_crossing()) is not None:
            # The border folds where a corner is tighter than the half width on its inside
            # (DeepRacer's Austin has such a corner): narrow the inside of that corner and
            # check again, saying so in the track's notes.
            factor = next(fits, None)
            if factor is None:
                raise TrackError(crossing)
            wl, wr, changed = _fit_widths(pts, wl, wr, factor)
            note = (f"narrowed the inside of tight corners at {changed} points so the border "
                    "does not fold over itself")
            track = cls(name, pts, wl, wr, title=title or name, description=description,
                        source=source, notes=(note,))
        return track

    @classmethod
    def from_npy(cls, file: str | os.PathLike[str] | bytes, name: str | None = None) -> Track:
        """Import a DeepRacer route file (N x 6: center | inner | outer border points)."""
        label, raw = _read_source(file)
        try:
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise TrackError(f"{label}: not a readable .npy array ({err})") from err
        if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] != 6:
            shape = getattr(arr, "shape", None)
            raise TrackError(
                f"{label}: expected an N x 6 array (center x,y | inner x,y | outer x,y), "
                f"got shape {shape}"
            )
        if arr.dtype.kind not in "fiu":
            raise TrackError(f"{label}: expected numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        _check_finite(arr, label)
        center, inner, outer = arr[:, 0:2], arr[:, 2:4], arr[:, 4:6]
        w_in = np.sqrt(np.sum((inner - center) ** 2, axis=1))
        w_out = np.sqrt(np.sum((outer - center) ** 2, axis=1))
        # Which border is on the left depends on the driving direction: ask the cross product
        # of the local direction with the inner offset, by majority over all points.
        tangent = np.roll(center, -1, axis=0) - np.roll(center, 1, axis=0)
        rel = inner - center
        cross = tangent[:, 0] * rel[:, 1] - tangent[:, 1] * rel[:, 0]
        inner_is_left = int(np.sum(cross > 0)) >= int(np.sum(cross < 0))
        wl, wr = (w_in, w_out) if inner_is_left else (w_out, w_in)
        stem = name or _stem(label)
        return cls.from_arrays(stem, center, wl, wr, source=label)

    @classmethod
    def from_csv(cls, file: str | os.PathLike[str] | bytes, name: str | None = None) -> Track:
        """Import a CSV track ``x_m,y_m,w_tr_right_m,w_tr_left_m``."""
        label, raw = _read_source(file)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise TrackError(f"{label}: not UTF-8 text") from err
        rows: list[list[float]] = []
        header_seen = False
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cells = [c.strip() for c in line.split(",")]
            try:
                values = [float(c) for c in cells]
            except ValueError:
                if not rows and not header_seen and not any(_is_number(c) for c in cells):
                    header_seen = True  # one header line may precede the data
                    continue
                raise TrackError(f"{label}: line {lineno}: not a number in {line!r}") from None
            if len(values) != 4:
                raise TrackError(
                    f"{label}: line {lineno}: expected 4 columns "
                    f"x_m,y_m,w_tr_right_m,w_tr_left_m, got {len(values)}"
                )
            rows.append(values)
        if not rows:
            raise TrackError(f"{label}: no data rows")
        arr = np.array(rows, dtype=np.float64)
        _check_finite(arr, label)
        stem = name or _stem(label)
        return cls.from_arrays(stem, arr[:, 0:2], arr[:, 3], arr[:, 2], source=label)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], name: str | None = None) -> Track:
        """Import a track file by its extension (``.npy`` or ``.csv``)."""
        suffix = Path(path).suffix.lower()
        if suffix == ".npy":
            return cls.from_npy(path, name)
        if suffix == ".csv":
            return cls.from_csv(path, name)
        raise TrackError(f"{path}: unknown track format {suffix!r} (expected .npy or .csv)")

    # ----------------------------------------------------------------- derived data
    @property
    def num_points(self) -> int:
        """Number of centerline points (waypoints)."""
        return int(self.centerline.shape[0])

    @cached_property
    def segment_lengths(self) -> np.ndarray:
        """Length of segment i (point i to point i+1, wrapping), metres."""
        d = np.roll(self.centerline, -1, axis=0) - self.centerline
        lengths: np.ndarray = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
        return lengths

    @cached_property
    def arc_length(self) -> np.ndarray:
        """Arc length at each point from point 0, metres, with the full length appended."""
        return np.concatenate(([0.0], np.cumsum(self.segment_lengths)))

    @property
    def length(self) -> float:
        """Centerline length, metres."""
        return float(self.arc_length[-1])

    @cached_property
    def _frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit segment directions (N, 2) and mitred vertex normals (N, 2) scaled for width."""
        d = np.roll(self.centerline, -1, axis=0) - self.centerline
        u = d / self.segment_lengths[:, None]
        n_seg = np.stack([-u[:, 1], u[:, 0]], axis=1)
        bis = n_seg + np.roll(n_seg, 1, axis=0)
        norm = np.sqrt(bis[:, 0] * bis[:, 0] + bis[:, 1] * bis[:, 1])
        # Mitre: scale the bisector so the border stays at the given perpendicular width
        # from both adjacent segments (capped where the turn is sharp).
        miter = np.minimum(2.0 / np.maximum(norm, 1e-12), 2.0)
        normal = bis / np.maximum(norm, 1e-12)[:, None] * miter[:, None]
        return u, normal

    @cached_property
    def left_border(self) -> np.ndarray:
        """Left border points (N, 2)."""
        border: np.ndarray = self.centerline + self._frame[1] * self.width_left[:, None]
        return border

    @cached_property
    def right_border(self) -> np.ndarray:
        """Right border points (N, 2)."""
        border: np.ndarray = self.centerline - self._frame[1] * self.width_right[:, None]
        return border

    @cached_property
    def curvature(self) -> np.ndarray:
        """Signed curvature at each point, 1/m, positive turning left, lightly smoothed."""
        return geo.vertex_curvature(self.centerline, self.segment_lengths, CURVATURE_SMOOTH_M)

    @cached_property
    def kernel(self) -> TrackKernel:
        """The packed arrays the compiled simulator works on."""
        n = self.num_points
        u, _ = self._frame
        tseg = np.empty((n, geo.TSEG_COLS))
        tseg[:, geo.TX] = self.centerline[:, 0]
        tseg[:, geo.TY] = self.centerline[:, 1]
        tseg[:, geo.TS] = self.arc_length[:-1]
        tseg[:, geo.TUX] = u[:, 0]
        tseg[:, geo.TUY] = u[:, 1]
        tseg[:, geo.TLEN] = self.segment_lengths
        tseg[:, geo.TWL] = self.width_left
        tseg[:, geo.TWR] = self.width_right
        tseg[:, geo.TK] = self.curvature
        border = self._border_segments()
        gmeta, gstart, gitems = _build_grid(border)
        for arr in (tseg, border, gmeta, gstart, gitems):
            arr.setflags(write=False)
        return TrackKernel(tseg, border, gmeta, gstart, gitems, self.length)

    def _border_segments(self) -> np.ndarray:
        left, right = self.left_border, self.right_border
        return np.concatenate(
            [
                np.hstack([left, np.roll(left, -1, axis=0)]),
                np.hstack([right, np.roll(right, -1, axis=0)]),
            ]
        )

    @cached_property
    def digest(self) -> str:
        """sha256 of the geometry (centerline and widths); equal digests race identically."""
        h = hashlib.sha256(_TRACK_DOMAIN)
        for arr in (self.centerline, self.width_left, self.width_right):
            h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
        return h.hexdigest()

    @property
    def mean_width(self) -> float:
        """Average full width, metres."""
        return float(np.mean(self.width_left + self.width_right))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of both borders, metres."""
        both = np.vstack([self.left_border, self.right_border])
        return (float(both[:, 0].min()), float(both[:, 1].min()),
                float(both[:, 0].max()), float(both[:, 1].max()))

    @property
    def waypoints(self) -> list[tuple[float, float]]:
        """Centerline points as a list of (x, y) tuples, like DeepRacer's ``waypoints``."""
        return [(float(x), float(y)) for x, y in self.centerline]

    @property
    def min_radius(self) -> float:
        """Tightest centerline radius, metres (from the smoothed curvature)."""
        k = float(np.max(np.abs(self.curvature)))
        return math.inf if k == 0.0 else 1.0 / k

    # ----------------------------------------------------------------- queries
    def project(self, x: float, y: float, hint: int | None = None) -> TrackPoint:
        """Project a point onto the centerline (globally, or near waypoint ``hint``)."""
        k = self.kernel
        if hint is None:
            i, t, off = geo.project_global(k.tseg, float(x), float(y))
        else:
            i, t, off = geo.project_local(k.tseg, float(x), float(y), int(hint) % self.num_points,
                                          SEARCH_RADIUS_M)
        wl, wr = geo.widths_at(k.tseg, i, t)
        heading = atan2(k.tseg[i, geo.TUY], k.tseg[i, geo.TUX])
        return TrackPoint(
            index=int(i), next_index=int((i + 1) % self.num_points),
            s=float(k.tseg[i, geo.TS] + t), offset=float(off), heading=float(heading),
            width_left=float(wl), width_right=float(wr),
        )

    def point_at(self, s: float) -> tuple[float, float, float]:
        """Centerline (x, y, heading in radians) at arc length ``s`` (wrapped)."""
        k = self.kernel
        i, t = geo.locate_s(k.tseg, k.length, float(s), 0)
        x = k.tseg[i, geo.TX] + t * k.tseg[i, geo.TUX]
        y = k.tseg[i, geo.TY] + t * k.tseg[i, geo.TUY]
        return float(x), float(y), float(atan2(k.tseg[i, geo.TUY], k.tseg[i, geo.TUX]))

    def curvature_at(self, s: float) -> float:
        """Curvature at arc length ``s``, 1/m, positive turning left."""
        k = self.kernel
        return float(geo.curvature_at(k.tseg, k.length, float(s), 0))

    def is_on_track(self, x: float, y: float) -> bool:
        """Whether the point lies on the track surface (border included)."""
        return self.project(x, y).on_track

    def to_csv(self) -> str:
        """The track in the CSV import format (round-trips exactly through ``repr`` floats)."""
        lines = [f"# {self.title or self.name}", "# x_m,y_m,w_tr_right_m,w_tr_left_m"]
        rows = zip(self.centerline.tolist(), self.width_right.tolist(), self.width_left.tolist(),
                   strict=True)
        for (x, y), wr, wl in rows:
            lines.append(f"{x!r},{y!r},{wr!r},{wl!r}")
        return "\n".join(lines) + "\n"

    def summary(self) -> dict[str, object]:
        """Name, title, description, length, width, points, tightest radius and digest."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "length_m": round(self.length, 3),
            "width_m": round(self.mean_width, 3),
            "points": self.num_points,
            "min_radius_m": None if math.isinf(self.min_radius) else round(self.min_radius, 3),
            "digest": self.digest,
        }

    # ----------------------------------------------------------------- checks
    def _check_shape(self) -> None:
        label = self.source or self.name
        if not MIN_LENGTH_M <= self.length <= MAX_LENGTH_M:
            raise TrackError(
                f"{label}: centerline is {self.length:.2f} m long; expected "
                f"{MIN_LENGTH_M:g} to {MAX_LENGTH_M:g} m"
            )
        u, _ = self._frame
        prev = np.roll(u, 1, axis=0)
        cos_turn = np.clip(np.sum(u * prev, axis=1), -1.0, 1.0)
        worst = int(np.argmin(cos_turn))
        turn = math.degrees(math.acos(float(cos_turn[worst])))
        if turn > MAX_TURN_DEG:
            x, y = self.centerline[worst]
            raise TrackError(
                f"{label}: the centerline turns {turn:.0f} degrees at point {worst} "
                f"({x:.2f}, {y:.2f}); at most {MAX_TURN_DEG:g} between neighbours"
            )

    def _border_crossing(self) -> str | None:
        """A message naming the first place the borders cross, or None."""
        n = self.num_points
        segs = self._border_segments()
        a, b = geo.first_crossing(segs, n)
        if a < 0:
            return None
        side = ("left", "right")
        x, y = segs[a, :2]
        return (
            f"{self.source or self.name}: self-intersecting border: {side[a // n]} border "
            f"segment {a % n} crosses {side[b // n]} border segment {b % n} near "
            f"({x:.2f}, {y:.2f}); the centerline crosses itself or a corner is too tight"
        )


# --------------------------------------------------------------------- helpers
def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise TrackError(
            f"invalid track name {name!r}: use 1-63 lowercase letters, digits, '-' or '_'"
        )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _stem(label: str) -> str:
    stem = Path(label).stem.lower()
    stem = re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_") or "track"
    return stem[:63]


def _read_source(file: str | os.PathLike[str] | bytes) -> tuple[str, bytes]:
    if isinstance(file, bytes):
        return "<bytes>", file
    path = Path(file)
    try:
        return str(path), path.read_bytes()
    except OSError as err:
        raise TrackError(f"{path}: cannot read ({err.strerror})") from err


def _check_finite(arr: np.ndarray, label: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise TrackError(f"{label}: row {row} holds a non-finite value (NaN or infinity)")


def _clean(
    pts: np.ndarray, wl: np.ndarray, wr: np.ndarray, label: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes and values; drop repeated points and the closing duplicate."""
    label = label or "track"
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise TrackError(f"{label}: centerline must be N x 2, got shape {pts.shape}")
    if wl.shape != (pts.shape[0],) or wr.shape != (pts.shape[0],):
        raise TrackError(f"{label}: need one left and one right width per centerline point")
    pts = pts.astype(np.float64)
    wl = wl.astype(np.float64)
    wr = wr.astype(np.float64)
    for arr in (pts, wl, wr):
        _check_finite(arr.reshape(arr.shape[0], -1), label)
    if pts.shape[0] < MIN_POINTS:
        raise TrackError(
            f"{label}: only {pts.shape[0]} points; a track needs at least {MIN_POINTS}"
        )
    step = np.diff(pts, axis=0)
    keep = np.concatenate(([True], np.sqrt(np.sum(step * step, axis=1)) > DUPLICATE_EPS_M))
    pts, wl, wr = pts[keep], wl[keep], wr[keep]
    gap = float(np.sqrt(np.sum((pts[-1] - pts[0]) ** 2)))
    if gap <= DUPLICATE_EPS_M:
        pts, wl, wr = pts[:-1], wl[:-1], wr[:-1]
    if pts.shape[0] < MIN_POINTS:
        raise TrackError(
            f"{label}: only {pts.shape[0]} distinct points; a track needs at least {MIN_POINTS}"
        )
    seg = np.sqrt(np.sum(np.diff(pts, axis=0) ** 2, axis=1))
    median = float(np.median(seg))
    gap = float(np.sqrt(np.sum((pts[-1] - pts[0]) ** 2)))
    if gap > CLOSING_GAP_FACTOR * median + 1e-3:
        raise TrackError(
            f"{label}: not closed: the last point is {gap:.2f} m from the first while points "
            f"are {median:.2f} m apart; a track must be a loop"
        )
    for side, w in (("left", wl), ("right", wr)):
        bad = np.flatnonzero((w < MIN_HALF_WIDTH_M) | (w > MAX_HALF_WIDTH_M))
        if bad.size:
            i = int(bad[0])
            raise TrackError(
                f"{label}: {side} width {w[i]:.3f} m at point {i}; each side must be "
                f"{MIN_HALF_WIDTH_M:g} to {MAX_HALF_WIDTH_M:g} m"
            )
    return np.ascontiguousarray(pts), np.ascontiguousarray(wl), np.ascontiguousarray(wr)


def _fit_widths(
    pts: np.ndarray, wl: np.ndarray, wr: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Narrow the inside of corners so that no mitred border segment folds over.

    Offsetting segment i (length l) by widths w at its ends shortens it by
    w_i*tan(phi_i/2) + w_i+1*tan(phi_i+1/2), phi being the turn at each end towards that
    side; keeping that below ``factor`` * l keeps the border simple. tan(phi/2) is computed
    as |a x b| / (1 + a.b) from the unit directions, without trigonometry.
    """
    d = np.roll(pts, -1, axis=0) - pts
    seg = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
    u = d / seg[:, None]
    a = np.roll(u, 1, axis=0)  # incoming direction at each vertex
    cross = a[:, 0] * u[:, 1] - a[:, 1] * u[:, 0]
    dot = a[:, 0] * u[:, 0] + a[:, 1] * u[:, 1]
    half_tan = np.abs(cross) / np.maximum(1.0 + dot, 1e-9)
    out = []
    changed = np.zeros(pts.shape[0], dtype=bool)
    arc = np.concatenate(([0.0], np.cumsum(seg)))
    for w, side in ((wl, cross > 0.0), (wr, cross < 0.0)):
        shrink = np.where(side, half_tan, 0.0)
        per_seg = shrink + np.roll(shrink, -1)  # vertex i and i+1 of segment i
        with np.errstate(divide="ignore"):
            cap_seg = np.where(per_seg > 0.0, factor * seg / per_seg, np.inf)
        cap = np.minimum(cap_seg, np.roll(cap_seg, 1))  # a vertex ends two segments
        cut = np.maximum(w - cap, 0.0)
        if np.any(cut > 0.0):
            # Narrow smoothly: the largest cut within FIT_PLATEAU_M, averaged over the shorter
            # FIT_AVERAGE_M, so the border bends instead of notching; each point still loses
            # at least its own cut, since every average only sees points of its plateau.
            cut = _window(_window(cut, arc, FIT_PLATEAU_M, np.max), arc, FIT_AVERAGE_M,
                          np.mean)
        new_w = w - cut
        new_w = np.maximum(new_w, MIN_HALF_WIDTH_M)
        changed |= new_w < w
        out.append(np.ascontiguousarray(new_w))
    return out[0], out[1], int(changed.sum())


def _window(values: np.ndarray, arc: np.ndarray, radius: float, fn: Any) -> np.ndarray:
    """Apply ``fn`` to the values within ``radius`` metres of arc around each point (closed)."""
    n = values.shape[0]
    length = arc[-1]
    out = np.empty(n)
    for i in range(n):
        d = np.abs(arc[:-1] - arc[i])
        d = np.minimum(d, length - d)
        out[i] = fn(values[d <= radius])
    return out


def _build_grid(border: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bucket border segments into a uniform grid (CSR) for ray casting."""
    x0 = float(min(border[:, 0].min(), border[:, 2].min())) - GRID_MARGIN_M
    y0 = float(min(border[:, 1].min(), border[:, 3].min())) - GRID_MARGIN_M
    x1 = float(max(border[:, 0].max(), border[:, 2].max())) + GRID_MARGIN_M
    y1 = float(max(border[:, 1].max(), border[:, 3].max())) + GRID_MARGIN_M
    nx = int(math.ceil((x1 - x0) / GRID_CELL_M))
    ny = int(math.ceil((y1 - y0) / GRID_CELL_M))
    cells: list[list[int]] = [[] for _ in range(nx * ny)]
    for j, (ax, ay, bx, by) in enumerate(border):
        cx0 = int((min(ax, bx) - x0) // GRID_CELL_M)
        cx1 = int((max(ax, bx) - x0) // GRID_CELL_M)
        cy0 = int((min(ay, by) - y0) // GRID_CELL_M)
        cy1 = int((max(ay, by) - y0) // GRID_CELL_M)
        for cy in range(cy0, cy1 + 1):
            for cx in range(cx0, cx1 + 1):
                cells[cy * nx + cx].append(j)
    gstart = np.zeros(nx * ny + 1, dtype=np.int32)
    gstart[1:] = np.cumsum([len(c) for c in cells])
    gitems = np.array([j for c in cells for j in c], dtype=np.int32)
    gmeta = np.array([x0, y0, GRID_CELL_M, nx, ny], dtype=np.float64)
    return gmeta, gstart, gitems


# --------------------------------------------------------------------- library
_LIBRARY_PACKAGE = "evaluator.tracks"
_cache: dict[str, Track] = {}


def _catalog() -> list[dict[str, str]]:
    text = resources.files(_LIBRARY_PACKAGE).joinpath("catalog.json").read_text("utf-8")
    entries: list[dict[str, str]] = json.loads(text)["tracks"]
    return entries


def user_tracks_dir() -> Path:
    """Where ``paddock tracks import`` keeps tracks: ``$PADDOCK_TRACKS_DIR`` or XDG data."""
    env = os.environ.get("PADDOCK_TRACKS_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "paddock" / "tracks"


def library_names() -> list[str]:
    """Names of the tracks shipped with Paddock, in catalog order."""
    return [e["name"] for e in _catalog()]


def _user_catalog() -> dict[str, dict[str, str]]:
    path = user_tracks_dir() / "catalog.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise TrackError(f"{path}: unreadable track catalog ({err})") from err
    return {e["name"]: e for e in data.get("tracks", [])}


def iter_tracks() -> Iterator[Track]:
    """Every known track: the shipped library first, then imported ones."""
    for name in library_names():
        yield load_track(name)
    for name in sorted(_user_catalog()):  # import_track refuses library names
        yield load_track(name)


def load_track(spec: str | os.PathLike[str] | Track) -> Track:
    """A track by library name, imported name, or path to a ``.npy``/``.csv`` file."""
    if isinstance(spec, Track):
        return spec
    key = str(spec)
    if key in _cache:
        return _cache[key]
    lib = {e["name"]: e for e in _catalog()}
    if key in lib:
        entry = lib[key]
        data = resources.files(_LIBRARY_PACKAGE).joinpath(entry["file"]).read_bytes()
        raw = Track.from_csv(data, name=key)
        track = Track(key, raw.centerline, raw.width_left, raw.width_right,
                      title=entry["title"], description=entry["description"], source="library")
        _cache[key] = track
        return track
    user = _user_catalog()
    if key in user:
        entry = user[key]
        raw = Track.from_csv(user_tracks_dir() / entry["file"], name=key)
        track = Track(key, raw.centerline, raw.width_left, raw.width_right,
                      title=entry.get("title", key), description=entry.get("description", ""),
                      source=str(user_tracks_dir() / entry["file"]))
        _cache[key] = track
        return track
    path = Path(key)
    if path.suffix.lower() in (".npy", ".csv"):
        if not path.exists():
            raise TrackError(f"{path}: no such track file")
        return Track.from_file(path)
    known = ", ".join(library_names() + sorted(user))
    raise TrackError(f"unknown track {key!r}; known tracks: {known}")


def import_track(path: str | os.PathLike[str], name: str, *, description: str = "") -> Track:
    """Validate a track file and keep it under :func:`user_tracks_dir` as ``name``."""
    _check_name(name)
    if name in library_names():
        raise TrackError(f"{name!r} is a library track; choose another name")
    track = Track.from_file(path, name=name)
    directory = user_tracks_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.csv").write_text(track.to_csv(), "utf-8")
    catalog = _user_catalog()
    catalog[name] = {"name": name, "title": name, "description": description,
                     "file": f"{name}.csv", "imported_from": str(path)}
    tmp = directory / "catalog.json.tmp"
    tmp.write_text(json.dumps({"tracks": list(catalog.values())}, indent=2), "utf-8")
    tmp.replace(directory / "catalog.json")
    _cache.pop(name, None)
    return replace(load_track(name), notes=track.notes)
