"""Tracks: a closed centerline with per-point widths, and the geometry derived from it.

A track is the closed polyline of its centerline points (the last point does not repeat the
first) with a left and a right width at each point, left and right taken in the driving
direction. Everything else (borders, arc length, curvature, the packed arrays the simulator
uses) is derived from those three arrays, and so is the track's digest.

Files are read by :mod:`evaluator.track_files`; the shipped library, imported tracks and
``load_track`` are in :mod:`evaluator.track_library`.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from evaluator import _geometry as geo
from evaluator import track_files
from evaluator._detmath import atan2
from evaluator.errors import TrackError

MIN_LENGTH_M = 5.0  # shortest accepted centerline (DeepRacer's shortest is about 6 m)
MAX_LENGTH_M = 2000.0  # longest accepted centerline
MAX_TURN_DEG = 100.0  # a sharper turn between two segments is a spike, not a corner
GRID_CELL_M = 0.5  # cell size of the ray-casting grid
GRID_MARGIN_M = 2.0  # grid margin around the borders
CURVATURE_SMOOTH_M = 0.25  # curvature is averaged over +- this arc length
SEARCH_RADIUS_M = 1.2  # local projection searches this much arc either way
FOLD_FACTORS = (0.9, 0.7, 0.5)  # share of a segment its border may lose inside a corner

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
        track_files.check_name(name)
        pts, wl, wr = track_files.clean(
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
            wl, wr, changed = track_files.fit_widths(pts, wl, wr, factor)
            note = (f"narrowed the inside of tight corners at {changed} points so the border "
                    "does not fold over itself")
            track = cls(name, pts, wl, wr, title=title or name, description=description,
                        source=source, notes=(note,))
        return track

    @classmethod
    def from_bytes(cls, raw: bytes, label: str, fmt: str, name: str | None = None) -> Track:
        """Import the bytes of a track file in format ``fmt`` (``.npy`` or ``.csv``).

        ``label`` names the file in messages and becomes the track's ``source``.
        """
        arrays = track_files.parse(raw, label, fmt)
        return cls.from_arrays(name or track_files.name_from_label(label), *arrays,
                               source=label)

    @classmethod
    def from_npy(cls, file: str | os.PathLike[str] | bytes, name: str | None = None) -> Track:
        """Import a DeepRacer route file (N x 6: center | inner | outer border points)."""
        label, raw = track_files.read_source(file)
        return cls.from_bytes(raw, label, track_files.NPY, name)

    @classmethod
    def from_csv(cls, file: str | os.PathLike[str] | bytes, name: str | None = None) -> Track:
        """Import a CSV track ``x_m,y_m,w_tr_right_m,w_tr_left_m``."""
        label, raw = track_files.read_source(file)
        return cls.from_bytes(raw, label, track_files.CSV, name)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], name: str | None = None) -> Track:
        """Import a track file by its extension (``.npy`` or ``.csv``)."""
        fmt = track_files.format_of(path)
        label, raw = track_files.read_source(path)
        return cls.from_bytes(raw, label, fmt, name)

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
        return track_files.csv_text(self.title or self.name, self.centerline, self.width_left,
                                    self.width_right)

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
