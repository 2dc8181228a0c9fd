"""Tests of the car physics and the off-track rule (evaluator._sim through evaluator.world)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from evaluator import _sim, car, observation
from evaluator.drivers import PurePursuitDriver
from evaluator.params import ParamsBuilder
from evaluator.track import Track
from evaluator.track_library import library_names, load_track
from evaluator.world import PHYSICS, World

HALF = 0.535  # the stadium's half width
AHW = car.AXLE_HALF_WIDTH_M


def solve_sum(target: float, addend: float) -> float:
    """A float y with y + addend == target exactly (so a wheel lands exactly on a border)."""
    y = target - addend
    for _ in range(8):
        if y + addend == target:
            return y
        y = float(np.nextafter(y, math.inf if y + addend < target else -math.inf))
    raise AssertionError("no exact solution")


def wheels_at(track: Track, x: float, y: float, heading: float) -> int:
    """Wheels on track for a car whose rear axle is at (x, y), counted by the kernel."""
    cars = np.zeros((1, _sim.NUM_STATE))
    cars[0, _sim.C_X] = x
    cars[0, _sim.C_Y] = y
    cars[0, _sim.C_TH] = heading
    cars[0, _sim.C_SEG] = track.project(x, y).index
    return int(_sim._wheels_on(track.kernel.tseg, cars, 0, PHYSICS))


# ----------------------------------------------------------------------------- off track
def test_wheels_exactly_on_the_border_count_as_on(stadium_track: Track) -> None:
    t = stadium_track  # start straight: along +x on y = 0, left border y = +0.535
    # left wheels exactly on the left border, right wheels inside
    assert wheels_at(t, 1.0, solve_sum(HALF, AHW), 0.0) == 4
    # right wheels exactly on the left border, left wheels beyond it
    assert wheels_at(t, 1.0, solve_sum(HALF, -AHW), 0.0) == 2
    # the same on the right border
    assert wheels_at(t, 1.0, solve_sum(-HALF, -AHW), 0.0) == 4
    assert wheels_at(t, 1.0, solve_sum(-HALF, AHW), 0.0) == 2
    # one ulp further out, the wheels on the border leave it
    y = solve_sum(HALF, -AHW)
    assert wheels_at(t, 1.0, float(np.nextafter(y, 1.0)), 0.0) == 0


def test_all_wheels_one_millimetre_out_is_off(stadium_track: Track) -> None:
    t = stadium_track
    # the nearest wheels (the right ones) 1 mm beyond the left border: everything is out
    assert wheels_at(t, 1.0, HALF + AHW + 0.001, 0.0) == 0
    assert wheels_at(t, 1.0, -HALF - AHW - 0.001, 0.0) == 0
    # the same car yawed so that only its rear right wheel is 1 mm inside
    yaw = 0.05
    s, c = math.sin(yaw), math.cos(yaw)
    # rear right wheel = rear axle + AHW * (sin, -cos)
    y = HALF - 0.001 + AHW * c
    x = 1.0 - AHW * s
    assert wheels_at(t, x, y, yaw) == 1
    # 1 mm out instead: off
    assert wheels_at(t, x, y + 0.002, yaw) == 0


def test_off_track_through_the_world(stadium_track: Track) -> None:
    """World.place + the params agree with the kernel; a step all-off reports off track."""
    w = World(stadium_track, 1, race=False)
    params = ParamsBuilder(w)
    for offset, wheels in ((0.0, 4), (HALF - AHW - 0.001, 4), (HALF - AHW + 0.001, 2),
                           (HALF + AHW - 0.001, 2), (HALF + AHW + 0.001, 0),
                           (-(HALF + AHW + 0.001), 0), (-(HALF + AHW - 0.001), 2)):
        w.place(0, 1.0, offset=offset)
        w.observe()
        assert w.cars[0, _sim.C_WHEELS] == wheels, offset
        p = params.build(0, 0)
        assert p["all_wheels_on_track"] is (wheels == 4)
        assert p["is_offtrack"] is (wheels == 0)
        assert p["distance_from_center"] == pytest.approx(abs(offset), abs=1e-9)
    # step the car that is just outside (slowest speed, straight): off track event
    w.place(0, 1.0, offset=HALF + AHW + 0.001)
    ev = w.step(np.array([[0.0, 0.1]]))
    assert ev[0, _sim.E_OFFTRACK] == 1.0
    assert w.cars[0, _sim.C_STEPS_OFF] == 1.0
    # training semantics: not frozen, keeps driving
    assert not w.frozen(0)
    # one wheel in: not off
    w.place(0, 1.0, offset=HALF + AHW - 0.01)
    ev = w.step(np.array([[0.0, 0.1]]))
    assert ev[0, _sim.E_OFFTRACK] == 0.0
    assert w.cars[0, _sim.C_STEPS_OFF] == 0.0


# ----------------------------------------------------------------------------- reference driver
def drive(track: Track, driver: PurePursuitDriver, laps: int, max_steps: int
          ) -> tuple[World, int, int, list[float]]:
    """Race a driver alone; returns the world, off-track events, slides and first-off s list."""
    w = World(track, 1, race=True, off_track_penalty=2.0, laps=laps)
    w.start_grid([0])
    driver.reset(w)
    a = np.zeros((1, 2))
    offs = slides = 0
    off_at: list[float] = []
    for _ in range(max_steps):
        a[0] = driver.act(w, 0)
        ev = w.step(a)
        slides += int(w.cars[0, _sim.C_SLIDE])
        if ev[0, _sim.E_OFFTRACK]:
            offs += 1
            off_at.append(float(w.cars[0, _sim.C_S]))
        if w.done(0):
            break
    return w, offs, slides, off_at


def _check_three_clean_laps(track: Track) -> None:
    speed = 1.5
    w, offs, slides, _ = drive(track, PurePursuitDriver(max_speed=speed), 3,
                               int(3 * 3 * track.length / speed * car.CONTROL_HZ))
    assert w.done(0), f"{track.name}: only {w.laps(0)} laps"
    assert offs == 0
    assert slides == 0  # it brakes for corners below the grip limit
    assert len(w.lap_times[0]) == 3
    assert sum(w.lap_times[0]) == pytest.approx(w.steps / car.CONTROL_HZ, abs=1 / car.CONTROL_HZ)
    for lap in w.lap_times[0][1:]:
        assert 0.9 * track.length / speed < lap < 2.0 * track.length / speed


@pytest.mark.parametrize("name", library_names())
def test_pure_pursuit_three_clean_laps_library(name: str) -> None:
    _check_three_clean_laps(load_track(name))


def test_pure_pursuit_three_clean_laps_deepracer(deepracer_npy: Path) -> None:
    _check_three_clean_laps(Track.from_npy(deepracer_npy))


def _tight_track(which: str, request: pytest.FixtureRequest) -> Track:
    """The library track with the tightest corner (a hairpin), else a DeepRacer track."""
    if which == "library":
        tight = min((load_track(n) for n in library_names()), key=lambda t: t.min_radius)
        if tight.min_radius < 1.2:
            return tight
    path = request.getfixturevalue("deepracer_tracks_dir") / "reInvent2019_track.npy"
    if not path.exists():
        pytest.skip(f"{path} not available")
    return Track.from_npy(path)


@pytest.mark.parametrize("which", ["library", "deepracer"])
def test_flat_out_slides_off_at_a_tight_corner(which: str, request: pytest.FixtureRequest
                                               ) -> None:
    track = _tight_track(which, request)
    assert track.min_radius < 1.2
    w, offs, slides, off_at = drive(
        track, PurePursuitDriver(max_speed=4.0, lateral_accel=math.inf), 1,
        int(2 * track.length / 4.0 * car.CONTROL_HZ))
    assert slides > 0
    assert offs > 0
    # It leaves the track in or just after a corner it cannot take at 4 m/s (radius < 3.2 m)
    s = off_at[0]
    window = np.linspace(s - 3.0, s + 0.5, 200)
    kmax = max(abs(track.curvature_at(float(v))) for v in window)
    assert kmax > car.GRIP_MPS2 / 4.0**2
    # and the careful driver takes the same track cleanly
    _, offs_slow, _, _ = drive(track, PurePursuitDriver(max_speed=1.5), 1, 5000)
    assert offs_slow == 0


# ----------------------------------------------------------------------------- dynamics
def open_world(track: Track) -> World:
    """A world where leaving the track changes nothing (training semantics)."""
    return World(track, 1, race=False)


def run(w: World, steer: float, speed: float, steps: int) -> np.ndarray:
    """Step with a constant command; returns rows of (x, y, heading, v, delta, slide)."""
    out = []
    a = np.array([[steer, speed]])
    for _ in range(steps):
        w.step(a)
        c = w.cars[0]
        out.append([c[_sim.C_X], c[_sim.C_Y], c[_sim.C_TH], c[_sim.C_V], c[_sim.C_DELTA],
                    c[_sim.C_SLIDE]])
    return np.array(out)


@pytest.mark.parametrize("speed", [0.5, 1.0, 2.0, 3.0, 4.0])
def test_full_lock_turning_radius(stadium_track: Track, speed: float) -> None:
    w = open_world(stadium_track)
    w.place(0, 0.0)
    # settle: full lock, at speed (while sliding the car gains only ACCEL - SCRUB = 1 m/s^2)
    run(w, car.MAX_STEER_DEG, speed, 75)
    rows = run(w, car.MAX_STEER_DEG, speed, 45)
    heading = np.unwrap(rows[:, 2])
    turned = heading[-1] - heading[0]
    path = float(np.sum(np.hypot(*np.diff(rows[:, :2], axis=0).T)))
    radius = path / turned
    kinematic = car.WHEELBASE_M / math.tan(math.radians(car.MAX_STEER_DEG))
    grip_radius = speed**2 / car.GRIP_MPS2
    if speed**2 / kinematic <= car.GRIP_MPS2:
        assert radius == pytest.approx(kinematic, rel=0.005)
        assert not rows[:, 5].any()
        assert rows[-1, 3] == pytest.approx(speed)
    else:
        assert radius == pytest.approx(grip_radius, rel=0.005)
        assert rows[:, 5].all()  # sliding all the time
        # scrubbing speed: below the command, by the scrub of one substep
        assert rows[-1, 3] == pytest.approx(speed - car.SCRUB_MPS2 * car.SUB_DT_S, abs=1e-9)
    # steady state: the lateral acceleration never exceeds the grip
    assert rows[-1, 3] ** 2 / radius <= car.GRIP_MPS2 * 1.005


def test_full_lock_low_and_high_speed_named_cases(stadium_track: Track) -> None:
    """The two cases of the spec, spelled out: 1 m/s and 4 m/s at full lock."""
    radii = {}
    for speed in (1.0, 4.0):
        w = open_world(stadium_track)
        w.place(0, 0.0)
        run(w, 30.0, speed, 75)
        rows = run(w, 30.0, speed, 60)
        heading = np.unwrap(rows[:, 2])
        radii[speed] = float(np.sum(np.hypot(*np.diff(rows[:, :2], axis=0).T))) / (
            heading[-1] - heading[0])
    assert radii[1.0] == pytest.approx(0.165 / math.tan(math.radians(30.0)), rel=0.005)
    assert radii[4.0] == pytest.approx(4.0**2 / 5.0, rel=0.005)


def test_turning_right_mirrors_left(stadium_track: Track) -> None:
    w = open_world(stadium_track)
    w.place(0, 0.0)
    left = run(w, 20.0, 1.0, 30)
    w.place(0, 0.0)
    right = run(w, -20.0, 1.0, 30)
    np.testing.assert_allclose(left[:, 0], right[:, 0], atol=1e-12)
    np.testing.assert_allclose(left[:, 1], -right[:, 1], atol=1e-12)
    np.testing.assert_allclose(left[:, 2], -right[:, 2], atol=1e-12)
    turned = np.unwrap(left[:, 2])
    assert np.all(np.diff(turned) > 0)  # turning left (counter-clockwise) ...
    assert turned[-1] > math.pi  # ... by a good amount


def test_acceleration_from_rest(stadium_track: Track) -> None:
    w = open_world(stadium_track)
    w.place(0, -3.9)  # start of the bottom straight, heading +x
    rows = run(w, 0.0, car.MAX_SPEED_MPS, 30)
    v = rows[:, 3]
    t = np.arange(1, 31) / car.CONTROL_HZ
    np.testing.assert_allclose(v, np.minimum(car.ACCEL_MPS2 * t, car.MAX_SPEED_MPS), atol=1e-9)
    t_full = t[np.argmax(v >= car.MAX_SPEED_MPS)]
    expected = car.MAX_SPEED_MPS / car.ACCEL_MPS2  # about 1.14 s
    assert expected <= t_full < expected + 1 / car.CONTROL_HZ
    assert np.all(np.diff(v) >= 0) and v.max() == car.MAX_SPEED_MPS
    # straight ahead: no yaw, no lateral drift
    assert np.all(rows[:, 2] == 0.0)
    assert np.all(rows[:, 1] == rows[0, 1])
    # distance: the speed integrated substep by substep
    x, vv = 0.0, 0.0
    for _ in range(30 * car.SUBSTEPS):
        vv = min(vv + car.ACCEL_MPS2 * car.SUB_DT_S, car.MAX_SPEED_MPS)
        x += vv * car.SUB_DT_S
    start = -3.9 - car.FRONT_POINT_M  # the rear axle, 0.14 m behind the front point
    assert rows[-1, 0] - start == pytest.approx(x, abs=1e-9)


def test_braking(stadium_track: Track) -> None:
    w = open_world(stadium_track)
    w.place(0, -3.9)
    run(w, 0.0, car.MAX_SPEED_MPS, 20)
    assert w.cars[0, _sim.C_V] == car.MAX_SPEED_MPS
    rows = run(w, 0.0, 0.0, 15)  # a command of 0 is the slowest speed
    assert w.cars[0, _sim.C_CMD_SPEED] == car.MIN_SPEED_MPS
    t = np.arange(1, 16) / car.CONTROL_HZ
    np.testing.assert_allclose(rows[:, 3], np.maximum(car.MAX_SPEED_MPS - car.BRAKE_MPS2 * t,
                                                      car.MIN_SPEED_MPS), atol=1e-9)
    stop = (car.MAX_SPEED_MPS - car.MIN_SPEED_MPS) / car.BRAKE_MPS2
    reached = t[np.argmax(rows[:, 3] <= car.MIN_SPEED_MPS)]
    assert stop <= reached < stop + 1 / car.CONTROL_HZ
    # it never stops completely nor reverses
    assert rows[-1, 3] == car.MIN_SPEED_MPS


def test_speed_command_is_clipped(stadium_track: Track) -> None:
    w = open_world(stadium_track)
    w.place(0, -3.9)
    run(w, 45.0, 9.0, 1)
    assert w.cars[0, _sim.C_CMD_SPEED] == car.MAX_SPEED_MPS
    assert w.cars[0, _sim.C_CMD_STEER] == pytest.approx(math.radians(car.MAX_STEER_DEG))
    run(w, -45.0, -3.0, 1)
    assert w.cars[0, _sim.C_CMD_SPEED] == car.MIN_SPEED_MPS
    assert w.cars[0, _sim.C_CMD_STEER] == pytest.approx(-math.radians(car.MAX_STEER_DEG))


def test_steering_rate_limit(stadium_track: Track) -> None:
    w = open_world(stadium_track)
    w.place(0, -3.9)
    per_step = car.STEER_RATE_DEG_S / car.CONTROL_HZ  # 24 degrees
    seen = []
    for cmd in (30.0, 30.0, 30.0, -30.0, -30.0, -30.0, -30.0, 5.0):
        w.step(np.array([[cmd, 0.5]]))
        seen.append(math.degrees(w.cars[0, _sim.C_DELTA]))
    expected = [per_step, 30.0, 30.0, 30.0 - per_step, 30.0 - 2 * per_step, -30.0, -30.0,
                -30.0 + per_step]
    np.testing.assert_allclose(seen, expected, atol=1e-9)
    # the observation reports the actual steering, scaled by 30 degrees
    assert w.obs[0, observation.I_STEERING] == pytest.approx(expected[-1] / 30.0)
