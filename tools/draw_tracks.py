"""Draw Paddock's library of original race tracks and write them to ``evaluator/tracks``.

Every track is designed here as a "turtle" path: straights and constant-radius arcs, driven
counter-clockwise from the start/finish line back to it. The curvature of that path is
eased with clothoid ramps (a running mean of the curvature over ``ease`` metres), so the
centerline is smooth with no kinks and no curvature jumps; easing never makes a corner
tighter than its design radius. A design closes by construction: its arcs turn through
exactly 360 degrees, and the straights marked ``free`` are lengthened or shortened until the
path ends where it began.

The centerline is then resampled to n = round(length / 0.2) points evenly spaced in arc
length, point 0 on the start/finish line, with constant widths of 0.535 m either side.

Run ``python tools/draw_tracks.py`` to regenerate ``evaluator/tracks/<name>.csv`` and
``evaluator/tracks/catalog.json``; the output is deterministic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.track import Track

OUT_DIR = Path(__file__).resolve().parent.parent / "evaluator" / "tracks"
SPACING_M = 0.20  # target distance between centerline points
HALF_WIDTH_M = 0.535  # left and right width: 1.07 m of track
SIMPSON_STEPS = 16  # Simpson sub-intervals per resampled segment when integrating the path
CLOSE_TOL_M = 1e-9  # how exactly a design must close


# --------------------------------------------------------------------- design language
@dataclass(frozen=True)
class Seg:
    """One piece of a path: a straight, or an arc turning left (+) or right (-)."""

    length: float  #: metres along the centerline
    turn: float = 0.0  #: degrees, positive left; 0 for a straight
    free: bool = False  #: a straight whose length is solved so the path closes


def S(length: float, free: bool = False) -> Seg:
    """A straight of ``length`` metres (``free``: adjusted so the circuit closes)."""
    return Seg(length, 0.0, free)


def L(radius: float, degrees: float) -> Seg:
    """A left-hand arc of ``radius`` metres turning through ``degrees``."""
    return Seg(radius * math.radians(degrees), degrees)


def R(radius: float, degrees: float) -> Seg:
    """A right-hand arc of ``radius`` metres turning through ``degrees``."""
    return Seg(radius * math.radians(degrees), -degrees)


@dataclass(frozen=True)
class Design:
    """A library track: catalog text and its path from the start/finish line round to it."""

    name: str
    title: str
    description: str
    path: tuple[Seg, ...]  #: starts and ends on the start/finish straight
    heading: float = 0.0  #: degrees, direction of travel at the start line
    ease: float = 0.8  #: metres of clothoid ramp into and out of every corner


# --------------------------------------------------------------------- the library
# Display order: easy tracks first. Radii are centerline radii in metres; the tightest
# allowed is 0.8 m (the inside border then still has 0.265 m of radius).
DESIGNS: tuple[Design, ...] = (
    # A plain oval: two 6.6 m straights joined by two 180-degree turns of 1.85 m radius.
    Design(
        name="oval",
        title="Paddock Oval",
        description=(
            "The beginner's oval: two short straights and two identical, constant-radius "
            "left turns. Learn to hold a line and carry speed through the turns."
        ),
        path=(S(2.8), L(1.85, 180), S(6.6, free=True), L(1.85, 180), S(3.8)),
    ),
    Design(
        name="kidney",
        title="Kidney Bean",
        description="x",
        path=(
            S(2.8), L(2.3, 95), S(1.5, free=True), L(1.5, 105), S(2.0), R(2.8, 40), S(2.0),
            L(2.4, 200), S(4.0, free=True),
        ),
    ),
    Design(
        name="speedway",
        title="Tri-Oval Speedway",
        description="x",
        heading=20.0,
        path=(
            S(2.6), L(3.0, 160), S(5.5), R(1.1, 40), L(1.1, 80), R(1.1, 40), S(5.5),
            L(3.0, 160), S(6.6, free=True), L(6.0, 40), S(4.0, free=True),
        ),
    ),
    Design(
        name="brake-point",
        title="Brake Point",
        description="x",
        path=(
            S(9.0), L(0.9, 180), S(1.6), R(1.4, 70), S(2.6), L(1.4, 70), S(3.0, free=True),
            L(1.6, 60), R(1.6, 60), S(1.0), L(1.5, 90), S(1.5, free=True), L(2.0, 90), S(4.5),
        ),
    ),
    Design(
        name="clover",
        title="Clover",
        description="x",
        path=(
            S(3.6), L(1.8, 200), S(1.5), R(3.0, 80), S(6.0, free=True), L(1.8, 200), S(1.5),
            R(3.0, 80), S(6.0), L(1.8, 200), S(1.5), R(3.0, 80), S(2.4, free=True),
        ),
    ),
    Design(
        name="hairpin-alley",
        title="Hairpin Alley",
        description="x",
        path=(
            S(3.0), L(1.2, 90), S(4.5, free=True), L(1.0, 160), S(2.0), R(1.3, 35),
            L(1.3, 35), S(0.5), R(1.0, 140), S(2.5), L(0.9, 160), S(2.5), L(1.2, 90),
            S(3.0, free=True),
        ),
    ),
    Design(
        name="switchback",
        title="Switchback",
        description="x",
        path=(
            S(3.2), L(1.5, 90), S(2.0), R(2.0, 30), L(2.0, 30), S(2.0), L(1.5, 90), S(4.5),
            L(1.0, 180), S(3.0), R(1.0, 180), S(3.0, free=True), L(1.5, 90), S(2.0, free=True),
            L(1.5, 90), S(4.0),
        ),
    ),
    Design(
        name="royal-park",
        title="Royal Park",
        description="x",
        path=(
            S(6.0), L(0.9, 75), S(0.4), R(0.9, 75), S(1.5), L(3.5, 90), S(1.5, free=True),
            R(0.9, 60), S(0.3), L(0.9, 60), S(1.5), L(1.5, 90), S(1.2), L(1.5, 45), S(5.0),
            R(1.2, 75), L(1.2, 60), R(1.6, 30), S(8.0), L(1.5, 90), L(3.0, 90),
            S(8.0, free=True),
        ),
    ),
    Design(
        name="forest-ridge",
        title="Forest Ridge",
        description="x",
        path=(
            S(2.4), L(0.9, 160), S(3.0), R(2.0, 50), L(2.0, 80), R(3.0, 30), S(12.0),
            L(1.0, 70), R(1.0, 50), L(1.3, 60), S(1.5), L(0.9, 120), S(2.0),
            R(2.0, 50), S(0.5), R(2.0, 50), S(2.0, free=True), L(1.2, 50), R(1.2, 50), S(1.0),
            L(1.6, 130), S(2.0), R(5.0, 30), S(3.0), L(0.9, 60), R(0.9, 60),
            S(4.0, free=True),
        ),
    ),
    Design(
        name="harbour-streets",
        title="Harbour Streets",
        description="x",
        path=(
            S(3.0), L(1.0, 90), S(3.0), R(3.0, 25), S(2.5), L(2.0, 85), R(1.2, 60), S(0.8),
            L(1.1, 90), S(2.0), L(0.85, 180), S(1.2), R(1.0, 90), S(1.5, free=True),
            R(4.0, 40), S(1.0), L(0.9, 50), R(0.9, 50), S(1.0), R(1.4, 50), S(0.8),
            L(1.2, 30), R(1.2, 30), S(0.6), R(1.2, 30), L(1.2, 30), S(1.5), L(0.9, 120),
            S(0.8), L(1.0, 60), S(4.0, free=True),
        ),
    ),
)


# --------------------------------------------------------------------- geometry
class _Path:
    """The eased heading of a design path as a function of arc length."""

    def __init__(self, design: Design, lengths: np.ndarray) -> None:
        turns = np.radians([seg.turn for seg in design.path])
        self.length = float(lengths.sum())
        self.ease = design.ease
        self.s0 = np.concatenate(([0.0], np.cumsum(lengths)[:-1]))  # segment starts
        self.k = turns / lengths  # curvature of each segment
        # Heading at each segment start (h0) and the integral of the heading up to it (a0):
        # the raw heading is piecewise linear, its integral piecewise quadratic.
        self.h0 = math.radians(design.heading) + np.concatenate(([0.0], np.cumsum(turns)[:-1]))
        self.a0 = np.concatenate(([0.0], np.cumsum(self.h0 * lengths + turns * lengths / 2)[:-1]))
        self.a_total = float(np.sum(self.h0 * lengths + turns * lengths / 2))

    def _integral(self, s: np.ndarray) -> np.ndarray:
        """Integral of the raw heading from 0 to s, for any s (the path repeats each lap)."""
        q = np.floor(s / self.length)
        r = s - q * self.length
        i = np.clip(np.searchsorted(self.s0, r, side="right") - 1, 0, len(self.s0) - 1)
        t = r - self.s0[i]
        a = self.a0[i] + self.h0[i] * t + self.k[i] * t * t / 2
        # Each lap adds the first lap's integral plus 2 pi per metre already driven.
        return a + q * self.a_total + 2 * math.pi * (q * r + self.length * q * (q - 1) / 2)

    def heading(self, s: np.ndarray) -> np.ndarray:
        """Heading at arc length s, radians: the raw heading averaged over +- ease / 2."""
        half = self.ease / 2
        return (self._integral(s + half) - self._integral(s - half)) / self.ease

    def points(self, n: int) -> np.ndarray:
        """n + 1 points evenly spaced in arc length from 0 to the full length (inclusive)."""
        m = SIMPSON_STEPS
        h = self.heading(np.linspace(0.0, self.length, n * m + 1))
        f = np.stack([np.cos(h), np.sin(h)], axis=1)
        # Composite Simpson over the m sub-intervals of each of the n segments.
        w = np.ones(m + 1)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        idx = np.arange(n)[:, None] * m + np.arange(m + 1)[None, :]
        step = np.tensordot(f[idx], w, axes=([1], [0])) * (self.length / (n * m) / 3)
        return np.concatenate([np.zeros((1, 2)), np.cumsum(step, axis=0)])


def _integrate(design: Design, lengths: np.ndarray) -> tuple[_Path, np.ndarray]:
    path = _Path(design, lengths)
    n = round(path.length / SPACING_M)
    return path, path.points(n)


def centerline(design: Design) -> np.ndarray:
    """The closed, resampled centerline of a design (N x 2, point 0 on the start line)."""
    total_turn = sum(seg.turn for seg in design.path)
    if abs(total_turn - 360.0) > 1e-9:
        raise ValueError(f"{design.name}: corners turn {total_turn} degrees, not 360")
    lengths = np.array([seg.length for seg in design.path], dtype=np.float64)
    free = [i for i, seg in enumerate(design.path) if seg.free]
    if not free:
        raise ValueError(f"{design.name}: mark at least one straight free to close the path")
    for _ in range(8):
        path, pts = _integrate(design, lengths)
        gap = pts[-1] - pts[0]
        if float(np.hypot(*gap)) <= CLOSE_TOL_M:
            break
        # The path is straight through a free straight, so lengthening it by dl moves the
        # end point by dl along the straight's heading: solve for the gap in least squares.
        mid = np.array([path.s0[i] + lengths[i] / 2 for i in free])
        h = path.heading(mid)
        jac = np.stack([np.cos(h), np.sin(h)])
        lengths[free] -= np.linalg.lstsq(jac, gap, rcond=None)[0]
        if np.any(lengths[free] <= design.ease):
            raise ValueError(f"{design.name}: free straights {lengths[free]} too short")
    else:
        raise ValueError(f"{design.name}: does not close (gap {gap}); check the design")
    return pts[:-1]


def build(design: Design) -> Track:
    """The validated library track of a design."""
    pts = centerline(design)
    pts = pts - pts.min(axis=0) + 1.0  # the centerline fits in a box from (1, 1)
    pts = np.round(pts, 6)  # micrometres are plenty, and keep the files short
    widths = np.full(len(pts), HALF_WIDTH_M)
    return Track.from_arrays(
        design.name, pts, widths, widths.copy(), title=design.title,
        description=design.description,
    )


def csv_text(track: Track) -> str:
    """``track.to_csv()``, with plain Python floats so every value is written as ``repr``."""
    lines = [f"# {track.title or track.name}", "# x_m,y_m,w_tr_right_m,w_tr_left_m"]
    for (x, y), wr, wl in zip(
        track.centerline.tolist(), track.width_right.tolist(), track.width_left.tolist(),
        strict=True,
    ):
        lines.append(f"{x!r},{y!r},{wr!r},{wl!r}")
    return "\n".join(lines) + "\n"


def main() -> None:
    catalog = []
    for design in DESIGNS:
        track = build(design)
        if track.notes:
            raise ValueError(f"{design.name}: {track.notes}")
        (OUT_DIR / f"{design.name}.csv").write_text(csv_text(track), "utf-8")
        catalog.append({"name": design.name, "title": design.title,
                        "description": design.description, "file": f"{design.name}.csv"})
        print(f"{design.name:24s} {track.length:6.2f} m  {track.num_points:4d} points  "
              f"min radius {track.min_radius:.3f} m")
    text = json.dumps({"tracks": catalog}, indent=2, ensure_ascii=False) + "\n"
    (OUT_DIR / "catalog.json").write_text(text, "utf-8")


if __name__ == "__main__":
    main()
