"""Tests for evaluator.render: the SVG document and the rgb_array frames."""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from evaluator.car import BODY_FRONT_M, BODY_REAR_M
from evaluator.render import (
    ASPHALT_RGB,
    BACKGROUND_RGB,
    CAR_COLORS,
    MIN_CAR_LENGTH_PX,
    NOSE_SHADE,
    OBSTACLE_RGB,
    CarPose,
    Renderer,
    track_svg,
)
from evaluator.track import Track

SVG = "{http://www.w3.org/2000/svg}"
DEEPRACER_DIR = Path("/work/shared/deepracer-tracks")


def _oval(clockwise: bool = False) -> Track:
    t = np.linspace(0.0, 2.0 * math.pi, 200, endpoint=False)
    pts = np.stack([6.0 * np.cos(t), 3.0 * np.sin(t)], axis=1)
    if clockwise:
        pts = pts[::-1].copy()
    w = np.full(200, 0.535)
    return Track.from_arrays("oval", pts, w, w, title="Oval <small> & round")


@pytest.fixture(scope="module")
def oval() -> Track:
    return _oval()


@pytest.fixture(scope="module")
def deepracer() -> Track:
    path = DEEPRACER_DIR / "reInvent2019_track.npy"
    if not path.exists():
        pytest.skip(f"{DEEPRACER_DIR} is not available")
    return Track.from_npy(path)


@pytest.fixture(scope="module")
def renderer(oval: Track) -> Renderer:
    return Renderer(oval)


def _two_cars(track: Track) -> list[CarPose]:
    x0, y0, h0 = track.point_at(0.1 * track.length)
    x1, y1, h1 = track.point_at(0.4 * track.length)
    return [CarPose(x0, y0, h0, 0), CarPose(x1, y1, h1, 1)]


def _pixel(img: np.ndarray, r: Renderer, x: float, y: float) -> tuple[int, int, int]:
    col, row = r.to_pixel(x, y)
    red, green, blue = (int(v) for v in img[int(row), int(col)])
    return (red, green, blue)


def _shade(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    red, green, blue = (round(v * NOSE_SHADE) for v in rgb)
    return (red, green, blue)


def _mask(img: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    mask: np.ndarray = np.all(img == np.array(rgb, dtype=np.uint8), axis=2)
    return mask


# --------------------------------------------------------------------------- SVG
def test_svg_is_valid_document(oval: Track) -> None:
    svg = track_svg(oval, px_per_m=40.0, margin_m=0.5)
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    xmin, ymin, xmax, ymax = oval.bounds
    vb = [float(v) for v in root.attrib["viewBox"].split()]
    assert vb[:2] == [0.0, 0.0]
    assert vb[2] == pytest.approx((xmax - xmin + 1.0) * 40.0, abs=0.01)
    assert vb[3] == pytest.approx((ymax - ymin + 1.0) * 40.0, abs=0.01)
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == "Oval <small> & round"


def test_svg_surface_is_one_evenodd_path_of_both_borders(oval: Track) -> None:
    root = ET.fromstring(track_svg(oval).encode("utf-8"))
    surfaces = [p for p in root.iter(f"{SVG}path") if p.get("fill-rule") == "evenodd"]
    assert len(surfaces) == 1
    d = surfaces[0].attrib["d"]
    assert d.count("M") == 2 and d.count("Z") == 2
    assert d.count(",") == 2 * oval.num_points


def test_svg_flips_y(oval: Track) -> None:
    px_per_m, margin_m = 40.0, 0.5
    root = ET.fromstring(track_svg(oval, px_per_m=px_per_m, margin_m=margin_m).encode())
    surface = next(p for p in root.iter(f"{SVG}path") if p.get("fill-rule") == "evenodd")
    first = surface.attrib["d"][1:].split("L")[0]
    sx, sy = (float(v) for v in first.split(","))
    xmin, _, _, ymax = oval.bounds
    x, y = oval.left_border[0]
    assert sx == pytest.approx((x - xmin + margin_m) * px_per_m, abs=0.006)
    assert sy == pytest.approx((ymax + margin_m - y) * px_per_m, abs=0.006)


def test_svg_has_start_line_centerline_and_arrow(oval: Track) -> None:
    root = ET.fromstring(track_svg(oval).encode("utf-8"))
    start = [g for g in root.iter(f"{SVG}g") if g.get("class") == "start-line"]
    assert len(start) == 1
    assert len(start[0].findall(f"{SVG}path")) == 2
    classes = {p.get("class") for p in root.iter(f"{SVG}path")}
    assert {"surface", "centerline", "borders", "direction"} <= classes
    center = next(p for p in root.iter(f"{SVG}path") if p.get("class") == "centerline")
    assert center.get("stroke-dasharray")


def test_svg_is_deterministic_and_self_contained(oval: Track) -> None:
    cars = _two_cars(oval)
    a = track_svg(oval, cars=cars, obstacles=[(0.0, 3.0, 0.1)])
    b = track_svg(oval, cars=cars, obstacles=[(0.0, 3.0, 0.1)])
    assert a == b
    assert track_svg(_oval()) == track_svg(oval)
    lowered = a.lower()
    assert "<script" not in lowered
    assert "href=" not in lowered
    assert "url(" not in lowered
    assert "-0.00" not in a


def test_svg_draws_cars_and_obstacles(oval: Track) -> None:
    cars = _two_cars(oval)
    root = ET.fromstring(track_svg(oval, cars=cars, obstacles=[(0.0, 3.0, 0.1)]).encode())
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "cars")
    fills = [p.get("fill") for p in group.findall(f"{SVG}path")]
    assert len(fills) == 4
    assert fills[0] == "#{:02x}{:02x}{:02x}".format(*CAR_COLORS[0])
    assert fills[2] == "#{:02x}{:02x}{:02x}".format(*CAR_COLORS[1])
    assert any(p.get("class") == "obstacles" for p in root.iter(f"{SVG}path"))
    plain = ET.fromstring(track_svg(oval).encode("utf-8"))
    assert not [g for g in plain.iter(f"{SVG}g") if g.get("class") == "cars"]


def test_svg_rejects_bad_scale(oval: Track) -> None:
    with pytest.raises(ValueError):
        track_svg(oval, px_per_m=0.0)
    with pytest.raises(ValueError):
        track_svg(oval, margin_m=-1.0)


def test_svg_of_deepracer_track(deepracer: Track) -> None:
    svg = track_svg(deepracer, cars=_two_cars(deepracer))
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.find(f"{SVG}title") is not None
    assert svg == track_svg(deepracer, cars=_two_cars(deepracer))


# --------------------------------------------------------------------------- frames
def test_frame_shape_and_dtype(oval: Track, renderer: Renderer) -> None:
    img = renderer.frame([])
    assert img.shape == (480, 640, 3)
    assert img.dtype == np.uint8
    small = Renderer(oval, width=200, height=100).frame(_two_cars(oval))
    assert small.shape == (100, 200, 3)


def test_frame_is_deterministic_and_leaves_background_alone(
    oval: Track, renderer: Renderer
) -> None:
    empty = renderer.frame([])
    cars = _two_cars(oval)
    a = renderer.frame(cars, [(0.0, -3.0, 0.15)])
    b = renderer.frame(cars, [(0.0, -3.0, 0.15)])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, empty)
    assert np.array_equal(renderer.frame([]), empty)
    assert np.array_equal(Renderer(oval).frame(cars, [(0.0, -3.0, 0.15)]), a)


def test_frame_background_and_asphalt(oval: Track, renderer: Renderer) -> None:
    img = renderer.frame([])
    assert tuple(int(v) for v in img[0, 0]) == BACKGROUND_RGB
    assert tuple(int(v) for v in img[-1, -1]) == BACKGROUND_RGB
    assert _pixel(img, renderer, 0.0, 0.0) == BACKGROUND_RGB  # the infield
    for frac in (0.3, 0.5, 0.7):
        x, y, _ = oval.point_at(frac * oval.length)
        assert _pixel(img, renderer, x, y) == ASPHALT_RGB


def test_frame_clockwise_track_surface() -> None:
    track = _oval(clockwise=True)
    r = Renderer(track)
    img = r.frame([])
    x, y, _ = track.point_at(0.5 * track.length)
    assert _pixel(img, r, x, y) == ASPHALT_RGB
    assert _pixel(img, r, 0.0, 0.0) == BACKGROUND_RGB


def test_frame_fits_track_and_keeps_aspect(oval: Track, renderer: Renderer) -> None:
    xmin, ymin, xmax, ymax = oval.bounds
    left, top = renderer.to_pixel(xmin, ymax)
    right, bottom = renderer.to_pixel(xmax, ymin)
    assert 0 < left < right < 640 and 0 < top < bottom < 480
    assert (right - left) / (bottom - top) == pytest.approx((xmax - xmin) / (ymax - ymin))
    assert left == pytest.approx(640 - right) and top == pytest.approx(480 - bottom)
    assert min(left, top) < 40  # fitted with a small margin


def test_car_drawn_at_its_place_in_its_colour(oval: Track, renderer: Renderer) -> None:
    x, y, heading = oval.point_at(0.25 * oval.length)
    empty = renderer.frame([])
    img = renderer.frame([CarPose(x, y, heading, color=3)])
    assert _pixel(empty, renderer, x, y) == ASPHALT_RGB
    assert _pixel(img, renderer, x, y) == CAR_COLORS[3]  # rear axle is inside the body
    changed = np.argwhere(np.any(img != empty, axis=2))
    col, row = renderer.to_pixel(x, y)
    dist = np.hypot(changed[:, 1] - col, changed[:, 0] - row)
    reach = (BODY_FRONT_M + 0.1) * renderer.scale + 2.0
    assert changed.size and float(dist.max()) < reach


@pytest.mark.parametrize("heading", [0.0, 0.7, math.pi / 2, 2.5, -2.0])
def test_car_nose_points_along_heading(oval: Track, heading: float) -> None:
    r = Renderer(oval, 320, 240)
    x, y, _ = oval.point_at(0.0)
    color = 1
    img = r.frame([CarPose(x, y, heading, color)])
    body = np.argwhere(_mask(img, CAR_COLORS[color]))
    nose = np.argwhere(_mask(img, _shade(CAR_COLORS[color])))
    assert len(body) and len(nose)
    d_row, d_col = nose.mean(axis=0) - body.mean(axis=0)
    seen = math.atan2(-d_row, d_col)  # screen rows grow downwards
    err = (seen - heading + math.pi) % (2.0 * math.pi) - math.pi
    assert abs(err) < math.radians(25)


def test_small_cars_are_enlarged(oval: Track) -> None:
    r = Renderer(oval, 120, 90)
    assert (BODY_FRONT_M + BODY_REAR_M) * r.scale < MIN_CAR_LENGTH_PX / 2
    x, y, _ = oval.point_at(0.5 * oval.length)
    img = r.frame([CarPose(x, y, 0.0, 2)])
    painted = np.argwhere(_mask(img, CAR_COLORS[2]) | _mask(img, _shade(CAR_COLORS[2])))
    cols = painted[:, 1]
    assert int(cols.max() - cols.min()) + 1 >= MIN_CAR_LENGTH_PX - 1


def test_obstacle_is_a_square(oval: Track, renderer: Renderer) -> None:
    x, y, _ = oval.point_at(0.6 * oval.length)
    img = renderer.frame([], [(x, y, 0.2)])
    assert _pixel(img, renderer, x, y) == OBSTACLE_RGB
    inside = np.argwhere(_mask(img, OBSTACLE_RGB))
    side = 0.4 * renderer.scale
    assert np.ptp(inside[:, 0]) + 1 == pytest.approx(side, abs=3)
    assert np.ptp(inside[:, 1]) + 1 == pytest.approx(side, abs=3)


def test_palette_is_distinct_and_wraps(oval: Track, renderer: Renderer) -> None:
    assert len(CAR_COLORS) == 8 and len(set(CAR_COLORS)) == 8
    scheme = {BACKGROUND_RGB, ASPHALT_RGB, OBSTACLE_RGB}
    assert not scheme & set(CAR_COLORS)
    x, y, heading = oval.point_at(0.5 * oval.length)
    a = renderer.frame([CarPose(x, y, heading, 1)])
    b = renderer.frame([CarPose(x, y, heading, 1 + len(CAR_COLORS))])
    assert np.array_equal(a, b)


def test_renderer_rejects_tiny_frames(oval: Track) -> None:
    with pytest.raises(ValueError):
        Renderer(oval, 10, 10)


def test_deepracer_frame(deepracer: Track) -> None:
    r = Renderer(deepracer)
    cars = _two_cars(deepracer)
    img = r.frame(cars)
    assert img.shape == (480, 640, 3)
    for car in cars:
        assert _pixel(img, r, car.x, car.y) == CAR_COLORS[car.color]
    x, y, _ = deepracer.point_at(0.5 * deepracer.length)
    assert _pixel(r.frame([]), r, x, y) == ASPHALT_RGB


def test_frame_is_fast(oval: Track, renderer: Renderer) -> None:
    cars = _two_cars(oval)
    renderer.frame(cars)
    runs = 50
    start = time.perf_counter()
    for _ in range(runs):
        renderer.frame(cars)
    per_frame = (time.perf_counter() - start) / runs
    assert per_frame < 0.010  # ~0.6 ms measured; a loose bound against redrawing the track
