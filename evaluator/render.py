"""Drawing tracks and cars without a display: SVG documents and RGB frames.

Two outputs share one colour scheme and one geometry:

* :func:`track_svg` writes a standalone SVG document (a track's thumbnail, embeddable in web
  pages): dark green ground, the asphalt as one even-odd path between the two borders, white
  border lines, a dashed centerline, a checkered start line across point 0, an arrow showing
  the driving direction, and optionally obstacles and cars.
* :class:`Renderer` produces ``(height, width, 3)`` uint8 frames for Gymnasium's
  ``render_mode="rgb_array"``. The static track is drawn once, supersampled, with Pillow;
  each frame copies it and draws obstacles and cars on top.

World coordinates are metres with +y up; both outputs flip y so that +y is up on screen.
A car's pose is its rear-axle centre and heading (radians, 0 along +x, counter-clockwise
positive), like the simulator's state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from evaluator.car import BODY_FRONT_M, BODY_HALF_WIDTH_M, BODY_REAR_M
from evaluator.track import Track

__all__ = ["CAR_COLORS", "CarPose", "Renderer", "track_svg"]

RGB = tuple[int, int, int]
Point = tuple[float, float]

# Colours (sRGB)
BACKGROUND_RGB: RGB = (38, 94, 46)  # off-track ground, dark green
ASPHALT_RGB: RGB = (92, 94, 98)  # track surface, grey
BORDER_RGB: RGB = (245, 245, 245)  # border lines, white
CENTERLINE_RGB: RGB = (232, 196, 64)  # dashed centerline, pale yellow (SVG only)
CHECKER_DARK_RGB: RGB = (20, 20, 20)  # dark squares of the start line
CHECKER_LIGHT_RGB: RGB = (245, 245, 245)  # light squares of the start line
ARROW_RGB: RGB = (245, 245, 245)  # driving-direction arrow
OBSTACLE_RGB: RGB = (196, 160, 108)  # obstacles, cardboard
OBSTACLE_EDGE_RGB: RGB = (110, 80, 45)  # obstacle outline
NOSE_SHADE = 0.45  # the nose marker is the car colour times this
#: Eight clearly distinct car colours; :attr:`CarPose.color` indexes this palette.
CAR_COLORS: tuple[RGB, ...] = (
    (230, 25, 75),  # red
    (0, 130, 200),  # blue
    (255, 225, 25),  # yellow
    (240, 50, 230),  # magenta
    (70, 240, 240),  # cyan
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (210, 245, 60),  # lime
)

# Track markings, metres
BORDER_LINE_M = 0.05  # width of the white border lines
CENTERLINE_M = 0.025  # width of the dashed centerline
CENTERLINE_DASH_M = 0.15  # length of a centerline dash and of the gap after it
CHECKER_M = 0.15  # target side of a start-line square (rounded to fit the track width)
START_LINE_ROWS = 2  # rows of squares in the start line, along the driving direction
# Driving-direction arrow, in full track widths at point 0
ARROW_AHEAD_WIDTHS = 1.25  # arc length from the start line to the arrow's centre
ARROW_LENGTH_WIDTHS = 0.5  # tail to tip
ARROW_HEAD_HALF_WIDTHS = 0.2  # half the width of the arrow head
ARROW_SHAFT_HALF_WIDTHS = 0.07  # half the width of the shaft
# Car drawing
NOSE_START = 0.55  # the nose marker starts this share of the body length from the rear
NOSE_HALF_WIDTH = 0.8  # half width of the nose marker's base, as a share of the body's
MIN_CAR_LENGTH_PX = 8.0  # cars drawn shorter than this are scaled up about their centre
OBSTACLE_EDGE_PX = 1.0  # obstacle outline width (SVG)

# SVG output
SVG_PX_PER_M = 40.0  # default scale
SVG_MARGIN_M = 0.5  # default margin around the track's bounds
SVG_DECIMALS = 2  # decimals of every coordinate (fixed, so output is byte-identical)
MIN_LINE_PX = 1.0  # thinnest stroke drawn, pixels

# Raster output
FRAME_WIDTH_PX = 640  # default frame width
FRAME_HEIGHT_PX = 480  # default frame height
FRAME_MARGIN_PX = 12  # gap between the track's bounds and the frame edge
SUPERSAMPLE = 4  # the static background is drawn this many times larger, then averaged


class CarPose(NamedTuple):
    """Where a car is: rear-axle centre (m), heading (rad, CCW from +x) and palette colour."""

    x: float
    y: float
    heading: float
    color: int = 0  #: index into :data:`CAR_COLORS` (taken modulo its length)


# --------------------------------------------------------------------------- geometry
def _car_polygons(pose: CarPose, px_per_m: float) -> tuple[list[Point], list[Point]]:
    """Body rectangle and nose triangle of a car in metres, enlarged if drawn too small."""
    length = BODY_REAR_M + BODY_FRONT_M
    grow = max(1.0, MIN_CAR_LENGTH_PX / (length * px_per_m))
    c, s = math.cos(pose.heading), math.sin(pose.heading)
    mid = (BODY_FRONT_M - BODY_REAR_M) / 2.0  # body centre, ahead of the rear axle
    cx, cy = pose.x + c * mid, pose.y + s * mid
    half_len = length / 2.0 * grow
    half_wid = BODY_HALF_WIDTH_M * grow

    def at(a: float, b: float) -> Point:  # a along the heading from the centre, b to the left
        return (cx + c * a - s * b, cy + s * a + c * b)

    body = [at(-half_len, -half_wid), at(half_len, -half_wid),
            at(half_len, half_wid), at(-half_len, half_wid)]
    base = -half_len + NOSE_START * 2.0 * half_len
    nose = [at(base, -half_wid * NOSE_HALF_WIDTH), at(half_len, 0.0),
            at(base, half_wid * NOSE_HALF_WIDTH)]
    return body, nose


def _obstacle_square(x: float, y: float, r: float) -> list[Point]:
    """Axis-aligned square of side 2r centred at (x, y), metres."""
    return [(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)]


def _start_line(track: Track) -> tuple[list[Point], list[list[Point]]]:
    """The start line across point 0: its full rectangle and its dark squares, metres."""
    left = track.left_border[0]
    right = track.right_border[0]
    across = left - right
    width = float(math.hypot(across[0], across[1]))
    n = across / width  # unit, pointing left
    t = np.array([n[1], -n[0]])  # unit, the driving direction
    cols = max(2, round(width / CHECKER_M))
    side = width / cols
    back = -side * START_LINE_ROWS / 2.0

    def at(i: float, j: float) -> Point:  # i squares across from the right, j rows along
        p = right + n * (i * side) + t * (back + j * side)
        return (float(p[0]), float(p[1]))

    outline = [at(0, 0), at(cols, 0), at(cols, START_LINE_ROWS), at(0, START_LINE_ROWS)]
    dark = [
        [at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)]
        for j in range(START_LINE_ROWS)
        for i in range(cols)
        if (i + j) % 2 == 0
    ]
    return outline, dark


def _direction_arrow(track: Track) -> list[Point]:
    """An arrow on the centerline just after the start line, pointing the driving way."""
    width = float(track.width_left[0] + track.width_right[0])
    x, y, heading = track.point_at(ARROW_AHEAD_WIDTHS * width)
    c, s = math.cos(heading), math.sin(heading)
    half_len = ARROW_LENGTH_WIDTHS * width / 2.0
    head = ARROW_HEAD_HALF_WIDTHS * width
    shaft = ARROW_SHAFT_HALF_WIDTHS * width
    local = [(-half_len, shaft), (0.0, shaft), (0.0, head), (half_len, 0.0),
             (0.0, -head), (0.0, -shaft), (-half_len, -shaft)]
    return [(x + c * a - s * b, y + s * a + c * b) for a, b in local]


# --------------------------------------------------------------------------- SVG
def _hex(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _shade(rgb: RGB, factor: float) -> RGB:
    r, g, b = (round(v * factor) for v in rgb)
    return (r, g, b)


class _SvgFrame:
    """Metres to SVG pixels: offset, scale and y flip, with fixed-decimal formatting."""

    def __init__(self, bounds: tuple[float, float, float, float], px_per_m: float,
                 margin_m: float) -> None:
        xmin, ymin, xmax, ymax = bounds
        self.x0 = xmin - margin_m
        self.y1 = ymax + margin_m
        self.scale = px_per_m
        self.width = (xmax - xmin + 2.0 * margin_m) * px_per_m
        self.height = (ymax - ymin + 2.0 * margin_m) * px_per_m

    def num(self, v: float) -> str:
        # Adding 0.0 turns a rounded -0.0 into 0.0, so "-0.00" never appears.
        return f"{round(v, SVG_DECIMALS) + 0.0:.{SVG_DECIMALS}f}"

    def points(self, pts: Sequence[Point] | npt.NDArray[np.float64]) -> list[str]:
        return [f"{self.num((x - self.x0) * self.scale)},{self.num((self.y1 - y) * self.scale)}"
                for x, y in pts]

    def ring(self, pts: Sequence[Point] | npt.NDArray[np.float64]) -> str:
        """A closed subpath through the points."""
        xy = self.points(pts)
        return f"M{xy[0]}L{' '.join(xy[1:])}Z"


def track_svg(
    track: Track,
    *,
    cars: Sequence[CarPose] = (),
    obstacles: Sequence[tuple[float, float, float]] = (),
    px_per_m: float = SVG_PX_PER_M,
    margin_m: float = SVG_MARGIN_M,
) -> str:
    """Draw the track, and optionally obstacles (x, y, r) and cars, as a standalone SVG."""
    if not px_per_m > 0.0 or not math.isfinite(px_per_m):
        raise ValueError(f"px_per_m must be a positive number, got {px_per_m!r}")
    if not margin_m >= 0.0 or not math.isfinite(margin_m):
        raise ValueError(f"margin_m must be a non-negative number, got {margin_m!r}")
    f = _SvgFrame(track.bounds, px_per_m, margin_m)
    w, h = f.num(f.width), f.num(f.height)
    border_px = f.num(max(BORDER_LINE_M * px_per_m, MIN_LINE_PX))
    center_px = f.num(max(CENTERLINE_M * px_per_m, MIN_LINE_PX))
    dash_px = f.num(CENTERLINE_DASH_M * px_per_m)
    borders = f.ring(track.left_border) + f.ring(track.right_border)
    outline, dark = _start_line(track)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}">',
        f"<title>{escape(track.title or track.name)}</title>",
        f'<rect class="ground" width="{w}" height="{h}" fill="{_hex(BACKGROUND_RGB)}"/>',
        f'<path class="surface" d="{borders}" fill="{_hex(ASPHALT_RGB)}" '
        'fill-rule="evenodd"/>',
        f'<path class="centerline" d="{f.ring(track.centerline)}" fill="none" '
        f'stroke="{_hex(CENTERLINE_RGB)}" stroke-width="{center_px}" '
        f'stroke-dasharray="{dash_px} {dash_px}"/>',
        f'<path class="borders" d="{borders}" fill="none" stroke="{_hex(BORDER_RGB)}" '
        f'stroke-width="{border_px}" stroke-linejoin="round"/>',
        '<g class="start-line">',
        f'<path d="{f.ring(outline)}" fill="{_hex(CHECKER_LIGHT_RGB)}"/>',
        f'<path d="{"".join(f.ring(q) for q in dark)}" fill="{_hex(CHECKER_DARK_RGB)}"/>',
        "</g>",
        f'<path class="direction" d="{f.ring(_direction_arrow(track))}" '
        f'fill="{_hex(ARROW_RGB)}"/>',
    ]
    if obstacles:
        squares = "".join(f.ring(_obstacle_square(x, y, r)) for x, y, r in obstacles)
        out.append(
            f'<path class="obstacles" d="{squares}" fill="{_hex(OBSTACLE_RGB)}" '
            f'stroke="{_hex(OBSTACLE_EDGE_RGB)}" stroke-width="{f.num(OBSTACLE_EDGE_PX)}"/>'
        )
    if cars:
        out.append('<g class="cars">')
        for car in cars:
            color = CAR_COLORS[car.color % len(CAR_COLORS)]
            body, nose = _car_polygons(car, px_per_m)
            out.append(f'<path d="{f.ring(body)}" fill="{_hex(color)}"/>')
            out.append(f'<path d="{f.ring(nose)}" fill="{_hex(_shade(color, NOSE_SHADE))}"/>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- raster
class Renderer:
    """Draw top-down RGB frames of a track with cars, for ``render_mode="rgb_array"``."""

    def __init__(self, track: Track, width: int = FRAME_WIDTH_PX,
                 height: int = FRAME_HEIGHT_PX) -> None:
        if width <= 2 * FRAME_MARGIN_PX or height <= 2 * FRAME_MARGIN_PX:
            raise ValueError(
                f"frame must be larger than {2 * FRAME_MARGIN_PX} px each way, "
                f"got {width}x{height}"
            )
        self.track = track
        self.width = int(width)
        self.height = int(height)
        xmin, ymin, xmax, ymax = track.bounds
        #: pixels per metre (the same both ways, so the aspect ratio is kept)
        self.scale = min((self.width - 2 * FRAME_MARGIN_PX) / (xmax - xmin),
                         (self.height - 2 * FRAME_MARGIN_PX) / (ymax - ymin))
        # Centre the track: pixel = offset + scale * (x, -y)
        self._ox = (self.width - self.scale * (xmax - xmin)) / 2.0 - self.scale * xmin
        self._oy = (self.height - self.scale * (ymax - ymin)) / 2.0 + self.scale * ymax
        self._background = self._draw_background()

    def to_pixel(self, x: float, y: float) -> Point:
        """Frame coordinates (column, row; pixel i spans [i, i+1)) of a point in metres."""
        return (self._ox + self.scale * x, self._oy - self.scale * y)

    def _pixels(self, pts: Sequence[Point] | npt.NDArray[np.float64],
                factor: float = 1.0) -> list[Point]:
        # Pillow puts pixel centres on integers; ours are at i + 0.5 (in drawn pixels).
        ox, oy, k = self._ox * factor - 0.5, self._oy * factor - 0.5, self.scale * factor
        return [(ox + k * float(x), oy - k * float(y)) for x, y in pts]

    def _draw_background(self) -> Image.Image:
        """The static track, drawn SUPERSAMPLE times larger and box-averaged down."""
        ss = SUPERSAMPLE
        img = Image.new("RGB", (self.width * ss, self.height * ss), BACKGROUND_RGB)
        draw = ImageDraw.Draw(img)
        left = self._pixels(self.track.left_border, ss)
        right = self._pixels(self.track.right_border, ss)
        n = len(left)
        for i in range(n):
            j = (i + 1) % n
            draw.polygon([left[i], left[j], right[j], right[i]], fill=ASPHALT_RGB)
        line_px = round(max(BORDER_LINE_M * self.scale, MIN_LINE_PX) * ss)
        for border in (left, right):
            draw.line([*border, border[0]], fill=BORDER_RGB, width=line_px, joint="curve")
        outline, dark = _start_line(self.track)
        draw.polygon(self._pixels(outline, ss), fill=CHECKER_LIGHT_RGB)
        for square in dark:
            draw.polygon(self._pixels(square, ss), fill=CHECKER_DARK_RGB)
        draw.polygon(self._pixels(_direction_arrow(self.track), ss), fill=ARROW_RGB)
        return img.reduce(ss)

    def frame(
        self,
        cars: Sequence[CarPose],
        obstacles: Sequence[tuple[float, float, float]] = (),
    ) -> npt.NDArray[np.uint8]:
        """Draw the cars and obstacles (x, y, r in metres) on the track; (H, W, 3) uint8."""
        img = self._background.copy()
        draw = ImageDraw.Draw(img)
        for x, y, r in obstacles:
            draw.polygon(self._pixels(_obstacle_square(x, y, r)), fill=OBSTACLE_RGB,
                         outline=OBSTACLE_EDGE_RGB)
        for car in cars:
            color = CAR_COLORS[car.color % len(CAR_COLORS)]
            body, nose = _car_polygons(car, self.scale)
            draw.polygon(self._pixels(body), fill=color)
            draw.polygon(self._pixels(nose), fill=_shade(color, NOSE_SHADE))
        return np.array(img, dtype=np.uint8)
