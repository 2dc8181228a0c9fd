"""Draw Paddock's library of original race tracks and write them to ``evaluator/tracks``.

Every track is designed here as a "turtle" path: straights and constant-radius arcs, driven
counter-clockwise from the start/finish line back to it. The curvature of that path is
eased with clothoid ramps (a running mean of the curvature over ``ease`` metres), so the
centerline is smooth with no kinks and no curvature jumps; easing never makes a corner
tighter than its design radius. A design must turn through exactly 360 degrees; the
straights marked ``free`` are then lengthened or shortened until the path ends exactly where
it began (their design lengths are the solved ones, rounded).

Each path begins at the start/finish line, in the middle of a straight, so the resampled
centerline already has its point 0 on the line: n = round(length / 0.2) points evenly spaced
in arc length, with constant widths of 0.535 m either side. Every track is checked (length,
tightest radius, straight track around the line, clearance between non-adjacent parts)
before anything is written.

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

# What every library track must satisfy (checked before anything is written).
LENGTH_RANGE_M = (20.0, 90.0)  # centerline length
MIN_RADIUS_M = 0.80  # tightest centerline radius: the inside border keeps 0.265 m
STRAIGHT_BEFORE_M = 3.0  # nearly straight track before the start line...
STRAIGHT_AFTER_M = 2.0  # ...and after it
NEARLY_STRAIGHT = 0.02  # 1/m: a radius of 50 m or more counts as straight
NEIGHBOUR_M = 3.0  # parts of the track further apart than this along the centerline...
MIN_GAP_M = 0.5  # ...keep at least this much grass between their borders


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
# fmt: off
DESIGNS: tuple[Design, ...] = (
    # Two straights and two identical half circles.
    Design(
        name="oval",
        title="Paddock Oval",
        description=(
            "The beginner's oval: two short straights joined by two identical 180-degree "
            "left-handers of 1.85 m radius. Nothing to hide behind: hold a clean line and "
            "carry your speed through the turns."
        ),
        path=(S(2.8), L(1.85, 180), S(6.6, free=True), L(1.85, 180), S(3.8)),
    ),
    # A bean: the far lobe tightens from 2.3 m to 1.5 m, a gentle right-hand dip along the
    # top, then one long 200-degree left back onto the start straight.
    Design(
        name="kidney",
        title="Kidney Bean",
        description=(
            "A flowing, forgiving loop in the shape of a bean, with one gentle right-hander "
            "along the top. The first turn tightens as it goes round, so resist turning in "
            "early."
        ),
        path=(
            S(2.8), L(2.3, 95), S(1.26, free=True), L(1.5, 105),  # tightening lobe
            S(2.0), R(2.8, 40), S(2.0),  # the dip
            L(2.6, 200), S(3.61, free=True),  # long final lobe
        ),
    ),
    # A tri-oval: the front stretch bends 40 degrees left halfway along (the line is after
    # the bend); a right-left-right chicane bulges out of the middle of the back straight.
    Design(
        name="speedway",
        title="Tri-Oval Speedway",
        description=(
            "A fast tri-oval: two long 3 m-radius turns and a gentle dogleg on the front "
            "stretch, all flat out. The chicane halfway down the back straight is the only "
            "place you really have to brake."
        ),
        heading=20.0,
        path=(
            S(2.6), L(3.0, 160),  # turns 1-2
            S(5.5), R(1.1, 40), L(1.1, 80), R(1.1, 40), S(5.5),  # back straight, chicane
            L(3.0, 160), S(6.29, free=True), L(6.0, 40), S(3.69, free=True),  # turns 3-4, dogleg
        ),
    ),
    # Three identical petals, rotationally symmetric: a long straight, a 200-degree left
    # loop, and a fast 80-degree right kink into the next petal.
    Design(
        name="pinwheel",
        title="Pinwheel",
        description=(
            "Three identical petals around a central hub: a straight, a long 200-degree "
            "left-hand loop and a fast right-hand kink, three times over. Rhythm beats "
            "bravery; a late apex in each loop sets up the next straight."
        ),
        path=(
            S(2.7), L(1.8, 200), S(1.5), R(3.0, 80),
            S(6.4, free=True), L(1.8, 200), S(1.5), R(3.0, 80),
            S(6.4), L(1.8, 200), S(1.5), R(3.0, 80), S(3.7, free=True),
        ),
    ),
    # A 14 m main straight (13 m of it dead straight) into a 0.9 m hairpin; a right-left
    # up to the top straight, a left-right back down, and a two-part final corner.
    Design(
        name="brake-point",
        title="Brake Point",
        description=(
            "A 13 m main straight ends in a 0.9 m hairpin: the heaviest braking zone in the "
            "library, so find your braking point. After that, a two-part final corner "
            "decides how fast you go down the straight."
        ),
        path=(
            S(9.5), L(0.9, 180),  # main straight, hairpin
            S(1.6), R(1.4, 70), S(2.6), L(1.4, 70), S(5.55, free=True),  # up to the top
            L(1.6, 60), R(1.6, 60), S(1.0),  # S-bend down
            L(1.5, 90), S(1.02, free=True), L(2.0, 90), S(4.5),  # final corners
        ),
    ),
    # Inspired by the famous Italian "temple of speed", mirrored to run anticlockwise:
    # main straight, first chicane, long fast left, second chicane, two lefts, the long
    # diagonal, a right-left-right, the back straight and a tightening-then-opening curve.
    Design(
        name="royal-park",
        title="Royal Park",
        description=(
            "Inspired by the famous Italian temple of speed, mirrored to run anticlockwise: "
            "long straights broken by two tight chicanes, a fast sweeping left, twin lefts "
            "and a long final curve that opens onto the main straight. Braking from top "
            "speed into the first chicane is where laps are won and lost."
        ),
        path=(
            S(7.0), L(0.9, 80), S(0.2), R(0.9, 80),  # first chicane
            S(1.5), L(3.5, 90), S(1.12, free=True),  # fast sweeping left
            R(0.9, 70), S(0.2), L(0.9, 70),  # second chicane
            S(1.5), L(1.5, 90), S(1.2), L(1.5, 45),  # twin lefts
            S(7.5), R(1.2, 75), L(1.2, 60), R(1.6, 30),  # long diagonal, right-left-right
            S(10.0), L(1.6, 90), L(3.4, 90),  # back straight, final curve
            S(5.52, free=True),
        ),
    ),
    # Inspired by a famous Belgian circuit, mirrored to run anticlockwise: hairpin after
    # the line, down to the climbing S-bend, a very long straight, a left-right, a left and
    # a hairpin, a descending double right, a left-right, a long left, a fast right and a
    # bus-stop chicane before the line.
    Design(
        name="forest-ridge",
        title="Forest Ridge",
        description=(
            "Inspired by a famous Belgian circuit's climbing S-bend, very long straight and "
            "bus-stop chicane, mirrored to run anticlockwise. Take the S-bend flat and the "
            "long straight is yours; the descending double right in the middle sector is "
            "the tricky part."
        ),
        path=(
            S(2.6), L(0.9, 160), S(3.0),  # hairpin after the line
            R(2.0, 50), L(2.0, 80), R(3.0, 30), S(14.0),  # climbing S-bend, long straight
            L(1.0, 70), R(1.0, 50), L(1.3, 60), S(1.5), L(0.9, 120),  # left-right, hairpin
            S(2.0), R(2.0, 50), S(0.5), R(2.0, 50), S(1.45, free=True),  # double right
            L(1.2, 50), R(1.2, 50), S(1.0), L(1.6, 130),  # left-right, long left
            S(2.0), R(5.0, 30), S(3.0),  # fast right
            L(0.9, 60), R(0.9, 60), S(5.41, free=True),  # bus-stop chicane
        ),
    ),
    # Up through an S-bend, along the top, then down a left and a right 1 m hairpin stacked
    # like a mountain road, and round two wide lefts back to the line.
    Design(
        name="switchback",
        title="Switchback",
        description=(
            "A mountain-pass layout: climb through a quick S-bend, then zig-zag back down "
            "through a left and a right 1 m hairpin. The legs between the hairpins are "
            "short, so get the car turned before you get back on the power."
        ),
        path=(
            S(3.0), L(1.5, 90), S(2.0), R(2.0, 30), L(2.0, 30), S(2.0),  # climb, S-bend
            L(1.5, 90), S(7.0), L(1.0, 180), S(4.5), R(1.0, 180),  # the two hairpins
            S(5.04, free=True), L(1.5, 90), S(1.9, free=True), L(1.5, 90), S(4.0),
        ),
    ),
    # An M: up the right leg through esses to a left hairpin, down through esses into a
    # right hairpin at the bottom of the valley, up to a 0.9 m left hairpin, and down.
    Design(
        name="hairpin-alley",
        title="Hairpin Alley",
        description=(
            "Three hairpins in an M: a left at the top of the climbing esses, a right in "
            "the valley and a 0.9 m left at the top of the second climb. Slow in, fast out: "
            "every hairpin leads onto a short straight."
        ),
        path=(
            S(2.7), L(1.2, 90), S(1.0), R(1.5, 30), L(1.5, 30), S(3.77, free=True),  # climb
            L(1.0, 160), S(2.5), R(1.3, 35), L(1.3, 35), S(0.5),  # hairpin, esses
            R(1.0, 130), S(3.2), L(0.9, 150), S(4.7),  # valley hairpin, last hairpin
            L(1.2, 90), S(3.62, free=True),
        ),
    ),
    # Inspired by a famous Mediterranean harbour street race, mirrored to run
    # anticlockwise: a left at the end of the pit straight, the climb, a square, a left, the
    # 0.85 m hairpin, the tunnel sweep, the harbour chicane, the pool esses and two tight
    # lefts back onto the pit straight.
    Design(
        name="harbour-streets",
        title="Harbour Streets",
        description=(
            "A tight street circuit inspired by a famous harbour race, mirrored to run "
            "anticlockwise: a climb to the square, a 0.85 m right-hand hairpin (the "
            "tightest corner in the library), a fast tunnel sweep, a harbour chicane and "
            "swimming-pool esses. There is no room for error anywhere."
        ),
        path=(
            S(3.0), L(1.0, 90), S(2.0), R(3.0, 35), S(2.5),  # first corner, climb
            L(2.0, 95), R(1.2, 60), S(0.8), L(1.1, 90), S(6.0),  # the square
            L(0.85, 180), S(1.5), R(1.0, 90), S(1.17, free=True),  # hairpin, right
            R(4.0, 40), S(1.0), L(0.9, 50), R(0.9, 50), S(1.0),  # tunnel, chicane
            R(1.4, 50), S(0.8), L(1.2, 30), R(1.2, 30), S(0.6), R(1.2, 30), L(1.2, 30),  # pool
            S(1.5), L(0.9, 120), S(0.8), L(1.0, 60), S(8.41, free=True),  # last two lefts
        ),
    ),
)
# fmt: on


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


def solve(design: Design) -> np.ndarray:
    """Segment lengths of a design with the free straights set so that the path closes."""
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
            return lengths
        # The path is straight through a free straight, so lengthening it by dl moves the
        # end point by dl along the straight's heading: solve for the gap in least squares.
        mid = np.array([path.s0[i] + lengths[i] / 2 for i in free])
        h = path.heading(mid)
        jac = np.stack([np.cos(h), np.sin(h)])
        lengths[free] -= np.linalg.lstsq(jac, gap, rcond=None)[0]
        if np.any(lengths[free] <= design.ease):
            raise ValueError(f"{design.name}: free straights {lengths[free]} too short")
    raise ValueError(f"{design.name}: does not close (gap {gap}); check the design")


def centerline(design: Design) -> np.ndarray:
    """The closed, resampled centerline of a design (N x 2, point 0 on the start line)."""
    _, pts = _integrate(design, solve(design))
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


def problems(track: Track) -> list[str]:
    """What keeps a track out of the library (nothing, for a good one)."""
    found = []
    if track.notes:
        found.append(f"the importer adjusted it: {track.notes}")
    if not LENGTH_RANGE_M[0] <= track.length <= LENGTH_RANGE_M[1]:
        found.append(f"{track.length:.2f} m long")
    # Tightest radius, both smoothed (Track.curvature) and straight from the points.
    d = np.roll(track.centerline, -1, axis=0) - track.centerline
    prev = np.roll(d, 1, axis=0)
    turn = np.arctan2(prev[:, 0] * d[:, 1] - prev[:, 1] * d[:, 0], np.sum(prev * d, axis=1))
    seg = track.segment_lengths
    k = turn / ((seg + np.roll(seg, 1)) / 2)
    radius = min(track.min_radius, 1.0 / float(np.max(np.abs(k))))
    if radius < MIN_RADIUS_M:
        found.append(f"a {radius:.3f} m corner")
    # Nearly straight from STRAIGHT_BEFORE_M before the start line to STRAIGHT_AFTER_M after.
    s = track.arc_length[:-1]
    near_line = (s <= STRAIGHT_AFTER_M) | (s >= track.length - STRAIGHT_BEFORE_M)
    if np.max(np.abs(k[near_line])) > NEARLY_STRAIGHT:
        found.append("the start line is not on a straight")
    # Borders of parts of the track more than NEIGHBOUR_M apart along the centerline must
    # keep MIN_GAP_M between them: distances from every border point to every border
    # segment whose both ends are that far away along the centerline.
    a = np.vstack([track.left_border, track.right_border])  # border points, segment starts
    b = np.vstack([np.roll(track.left_border, -1, axis=0),
                   np.roll(track.right_border, -1, axis=0)])  # segment ends
    s_start = np.concatenate([s, s])  # arc length at each border point (segment start)
    s_end = np.concatenate([np.roll(s, -1), np.roll(s, -1)])  # ... and at each segment end
    far = np.ones((len(a), len(a)), dtype=bool)
    for ends in (s_start, s_end):
        along = np.abs(s_start[:, None] - ends[None, :])
        far &= np.minimum(along, track.length - along) > NEIGHBOUR_M
    ab = b - a
    ap = a[:, None, :] - a[None, :, :]
    t = np.clip(np.sum(ap * ab[None], axis=2) / np.sum(ab * ab, axis=1)[None], 0.0, 1.0)
    dist = np.hypot(*np.moveaxis(ap - t[..., None] * ab[None], 2, 0))
    closest = float(np.min(dist[far]))
    if closest < MIN_GAP_M:
        found.append(f"parts of the track come within {closest:.3f} m of each other")
    return found


def main() -> None:
    tracks = []
    for design in DESIGNS:
        track = build(design)
        if bad := problems(track):
            raise ValueError(f"{design.name}: {'; '.join(bad)}")
        tracks.append(track)
        print(f"{track.name:16s} {track.title:18s} {track.length:6.2f} m  "
              f"{track.num_points:4d} points  tightest radius {track.min_radius:.3f} m")
    for track in tracks:
        text = track.to_csv()
        if Track.from_csv(text.encode(), name=track.name).digest != track.digest:
            raise ValueError(f"{track.name}: Track.to_csv() does not round-trip")
        (OUT_DIR / f"{track.name}.csv").write_text(text, "utf-8")
    catalog = [{"name": t.name, "title": t.title, "description": t.description,
                "file": f"{t.name}.csv"} for t in tracks]
    text = json.dumps({"tracks": catalog}, indent=2, ensure_ascii=False) + "\n"
    (OUT_DIR / "catalog.json").write_text(text, "utf-8")


if __name__ == "__main__":
    main()
