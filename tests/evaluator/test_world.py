"""Tests for evaluator.world: race rules between cars, lap timing and input checking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluator import _sim, car, observation
from evaluator.errors import SimulationError
from evaluator.track import Track
from evaluator.world import Obstacle, World, penalty_steps


def touching(w: World, i: int, j: int) -> bool:
    from evaluator.world import PHYSICS

    return bool(_sim._cars_touch(w.cars, i, j, PHYSICS))


def rear_end(track: Track, penalty: float, front_speed: float = 0.5,
             rear_speed: float = 3.0) -> tuple[World, list[np.ndarray], int]:
    """Car 0 ahead at 0.5 m/s, car 1 behind at 3 m/s on the start straight, until contact."""
    w = World(track, 2, race=True, collision_penalty=penalty, off_track_penalty=penalty)
    w.place(0, -1.5, origin=0.0)
    w.place(1, -3.5, origin=0.0)
    w.observe()
    acts = np.array([[0.0, front_speed], [0.0, rear_speed]])
    history = []
    for n in range(1, 100):
        ev = w.step(acts).copy()
        history.append(ev)
        if ev[:, _sim.E_CRASH].any():
            return w, history, n
    raise AssertionError("no contact")


def test_rear_car_is_blamed_and_frozen(stadium_track: Track) -> None:
    w, history, n = rear_end(stadium_track, penalty=2.0)
    ev = history[-1]
    assert ev[0, _sim.E_CRASH] == 1.0 and ev[1, _sim.E_CRASH] == 1.0
    assert ev[1, _sim.E_BLAME] == 1.0
    assert ev[0, _sim.E_BLAME] == 0.0
    assert ev[:, _sim.E_OBJECT].sum() == 0.0
    assert w.race_distance(1) < w.race_distance(0)
    # the rear car serves the penalty; the front car is not touched by the rules
    assert w.frozen(1) and w.cars[1, _sim.C_FREEZE] == penalty_steps(2.0) == 30
    assert w.cars[1, _sim.C_V] == 0.0 and w.cars[1, _sim.C_GHOST] == 1.0
    assert not w.frozen(0) and w.cars[0, _sim.C_GHOST] == 0.0
    assert w.cars[0, _sim.C_V] == pytest.approx(0.5)
    # the rear car stays where it is for the penalty, the front one drives on
    pose = w.cars[1, [_sim.C_X, _sim.C_Y, _sim.C_TH]].copy()
    reset_s = w.cars[1, _sim.C_S]
    acts = np.array([[0.0, 0.5], [0.0, 3.0]])
    x0 = w.cars[0, _sim.C_X]
    for k in range(1, 31):
        ev = w.step(acts)
        assert ev[:, _sim.E_CRASH].sum() == 0.0  # a ghost touches nobody
        if k < 30:
            np.testing.assert_array_equal(w.cars[1, [_sim.C_X, _sim.C_Y, _sim.C_TH]], pose)
            assert ev[1, _sim.E_RESET] == 0.0
    assert ev[1, _sim.E_RESET] == 1.0
    assert not w.frozen(1)
    assert w.cars[0, _sim.C_X] - x0 == pytest.approx(30 * 0.5 / 15, abs=1e-9)
    # back on the centerline where it was
    assert w.cars[1, _sim.C_OFF] == pytest.approx(0.0, abs=1e-9)
    assert w.cars[1, _sim.C_S] == pytest.approx(reset_s, abs=1e-9)


def test_blamed_car_is_a_ghost_until_clear(stadium_track: Track) -> None:
    """No freeze (penalty 0): the blamed car drives through the other one as a ghost."""
    w, history, n = rear_end(stadium_track, penalty=0.0)
    assert history[-1][1, _sim.E_BLAME] == 1.0
    assert w.cars[1, _sim.C_GHOST] == 1.0 and not w.frozen(1)
    acts = np.array([[0.0, 0.5], [0.0, 3.0]])
    overlapped = 0
    for _ in range(60):
        # the front car's object rays do not see the ghost even when it is right there
        assert np.all(w.obs[0, observation.I_OBJECT_RAYS:observation.I_SPEED] == 1.0)
        ghost_before = w.cars[1, _sim.C_GHOST]
        ev = w.step(acts)
        assert ev[:, _sim.E_CRASH].sum() == 0.0
        if touching(w, 0, 1):
            overlapped += 1
            assert w.cars[1, _sim.C_GHOST] == 1.0
        elif ghost_before:
            assert w.cars[1, _sim.C_GHOST] == 0.0  # solid again as soon as it is clear
        if w.cars[1, _sim.C_GHOST] == 0.0:
            break
    assert overlapped > 0
    assert w.cars[1, _sim.C_GHOST] == 0.0
    assert w.race_distance(1) > w.race_distance(0)  # it went through and is now ahead
    # solid again: the front car's rays see it now
    assert w.obs[0, observation.I_OBJECT_RAYS + 5] < 1.0


def test_level_cars_share_the_blame(stadium_track: Track) -> None:
    w = World(stadium_track, 2, race=True, collision_penalty=1.0)
    w.place(0, 0.0, offset=0.09)
    w.place(1, 0.0, offset=-0.09)  # side by side, discs overlapping
    w.observe()
    ev = w.step(np.array([[0.0, 1.0], [0.0, 1.0]]))
    assert ev[:, _sim.E_BLAME].tolist() == [1.0, 1.0]
    assert w.frozen(0) and w.frozen(1)


def test_training_semantics_crash_does_not_freeze(stadium_track: Track) -> None:
    w = World(stadium_track, 2, race=[False, True], collision_penalty=2.0)
    w.place(0, -3.5)  # car 0 (training) hits car 1 from behind
    w.place(1, -1.5)
    w.observe()
    acts = np.array([[0.0, 3.0], [0.0, 0.5]])
    for _ in range(100):
        ev = w.step(acts)
        if ev[0, _sim.E_CRASH]:
            break
    assert ev[0, _sim.E_BLAME] == 1.0 and ev[1, _sim.E_BLAME] == 0.0
    assert not w.frozen(0)  # only reported; the environment ends the episode
    assert w.cars[0, _sim.C_GHOST] == 1.0


def test_obstacle_contact_blames_the_car(stadium_track: Track) -> None:
    w = World(stadium_track, 1, race=True, collision_penalty=1.0,
              obstacles=[Obstacle(1.0, 0.0, 0.12)])
    w.place(0, 0.0)
    w.observe()
    # the obstacle is seen straight ahead by the middle object ray
    mid = observation.I_OBJECT_RAYS + observation.NUM_RAYS // 2
    assert w.obs[0, mid] * observation.RAY_RANGE_M == pytest.approx(1.0 - 0.12, abs=1e-9)
    for _ in range(60):
        ev = w.step(np.array([[0.0, 1.0]]))
        if ev[0, _sim.E_CRASH]:
            break
    assert ev[0].tolist()[:3] == [0.0, 1.0, 1.0] and ev[0, _sim.E_OBJECT] == 1.0
    assert w.frozen(0) and w.cars[0, _sim.C_FREEZE] == 15


def test_non_interacting_cars_pass_through(stadium_track: Track) -> None:
    w = World(stadium_track, 2, interact=False)
    w.place(0, 0.0)
    w.place(1, 0.0)
    w.observe()
    for _ in range(10):
        ev = w.step(np.array([[0.0, 1.0], [0.0, 2.0]]))
        assert ev[:, _sim.E_CRASH].sum() == 0.0
    assert np.all(w.obs[:, observation.I_OBJECT_RAYS:observation.I_SPEED] == 1.0)


# ----------------------------------------------------------------------------- lap timing
def test_lap_time_is_interpolated_at_constant_speed(stadium_track: Track) -> None:
    w = World(stadium_track, 1, laps=1)
    length = stadium_track.length
    w.place(0, length - 1.0, origin=0.0)  # 1 m before the line, on the start straight
    w.cars[0, _sim.C_V] = 2.0  # already at speed
    w.observe()
    lap_step = None
    for n in range(1, 20):
        ev = w.step(np.array([[0.0, 2.0]]))
        if ev[0, _sim.E_LAP]:
            lap_step = n
            break
    # 1 m at 2 m/s: 0.5 s = 7.5 control steps, reported on the 8th step
    assert lap_step == 8
    assert w.lap_times[0] == [pytest.approx(0.5, abs=1e-9)]
    assert w.done(0) and w.laps(0) == 1
    assert w.lap_progress(0) == 1.0


def test_lap_time_is_not_a_multiple_of_the_step(stadium_track: Track) -> None:
    w = World(stadium_track, 1, laps=3)
    w.start_grid([0])
    acts = np.array([[0.0, 1.7]])
    crossings = []
    for _ in range(2000):
        before = w.cars[0, _sim.C_S_TOTAL]
        # simple line following: steer toward the centerline 0.5 m ahead
        c = w.cars[0]
        x, y, _ = stadium_track.point_at(c[_sim.C_S] + 0.5)
        th = c[_sim.C_TH]
        dx, dy = x - c[_sim.C_X], y - c[_sim.C_Y]
        ly = -math.sin(th) * dx + math.cos(th) * dy
        lx = math.cos(th) * dx + math.sin(th) * dy
        acts[0, 0] = math.degrees(math.atan2(2 * car.WHEELBASE_M * ly, lx * lx + ly * ly))
        ev = w.step(acts)
        if ev[0, _sim.E_LAP]:
            after = w.cars[0, _sim.C_S_TOTAL]
            target = w.laps(0) * stadium_track.length
            frac = (target - before) / (after - before)
            crossings.append((w.steps - 1 + frac) / car.CONTROL_HZ)
        if w.done(0):
            break
    assert len(w.lap_times[0]) == 3
    assert w.lap_times[0] == pytest.approx(np.diff([0.0, *crossings]).tolist(), abs=1e-12)
    assert sum(w.lap_times[0]) == pytest.approx(crossings[-1], abs=1e-12)
    steps = np.array(w.lap_times[0]) * car.CONTROL_HZ
    assert np.all(np.abs(steps - np.round(steps)) > 1e-6)


def test_finished_car_is_parked(stadium_track: Track) -> None:
    w = World(stadium_track, 1, laps=1)
    w.place(0, stadium_track.length - 0.2, origin=0.0)
    w.observe()
    for _ in range(20):
        w.step(np.array([[0.0, 2.0]]))
    assert w.done(0)
    pose = w.cars[0].copy()
    ev = w.step(np.array([[30.0, 4.0]]))
    assert not ev.any()
    np.testing.assert_array_equal(w.cars[0, :_sim.C_S_PREV], pose[:_sim.C_S_PREV])
    assert len(w.lap_times[0]) == 1


# ----------------------------------------------------------------------------- input checking
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_action_raises_and_changes_nothing(stadium_track: Track, bad: float) -> None:
    w = World(stadium_track, 2, laps=2)
    w.start_grid([0, 1])
    for _ in range(5):
        w.step(np.array([[5.0, 2.0], [-5.0, 2.0]]))
    state = (w.cars.copy(), w.obs.copy(), w.events.copy(), w.steps,
             [list(t) for t in w.lap_times])
    for acts in (np.array([[bad, 2.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [0.0, bad]])):
        with pytest.raises(SimulationError, match="finite"):
            w.step(acts)
        np.testing.assert_array_equal(w.cars, state[0])
        np.testing.assert_array_equal(w.obs, state[1])
        np.testing.assert_array_equal(w.events, state[2])
        assert w.steps == state[3]
        assert w.lap_times == state[4]
    # and it goes on normally afterwards
    w.step(np.array([[0.0, 1.0], [0.0, 1.0]]))
    assert w.steps == state[3] + 1


def test_wrong_action_shape_raises(stadium_track: Track) -> None:
    w = World(stadium_track, 2)
    w.start_grid([0, 1])
    with pytest.raises(SimulationError, match="shape"):
        w.step(np.zeros((1, 2)))
    with pytest.raises(SimulationError, match="shape"):
        w.step(np.zeros((2, 3)))


def test_world_arguments(stadium_track: Track) -> None:
    with pytest.raises(SimulationError):
        World(stadium_track, 0)
    with pytest.raises(SimulationError):
        World(stadium_track, 2, race=[True])
    with pytest.raises(SimulationError):
        World(stadium_track, 1, off_track_penalty=-1.0)
    with pytest.raises(SimulationError):
        World(stadium_track, 1, collision_penalty=math.nan)
    assert penalty_steps(2.0) == 30 and penalty_steps(0.0) == 0


def test_start_grid(stadium_track: Track) -> None:
    w = World(stadium_track, 3)
    w.start_grid([1, 0, 2], rng=np.random.default_rng(0))
    assert [w.race_distance(i) for i in range(3)] == pytest.approx([-0.6, 0.0, -1.2], abs=1e-9)
    sides = np.sign(w.cars[:, _sim.C_OFF])
    assert sides.tolist() == [-1.0, 1.0, 1.0]  # slots alternate left (even) and right (odd)
    assert np.all(np.abs(np.abs(w.cars[:, _sim.C_OFF]) - 0.22) <= 0.05 + 1e-9)
    assert w.steps == 0 and all(not t for t in w.lap_times)


def test_crossing_the_line_backwards_and_again_is_not_a_lap(stadium_track: Track) -> None:
    w = World(stadium_track, 1, race=False, laps=2)  # training: leaving the track is allowed
    w.place(0, 0.5, heading_offset_deg=180.0, origin=0.0)  # facing backwards, past the line
    w.observe()
    events = []
    for _ in range(30):  # back across the line
        events.append(w.step(np.array([[0.0, 1.0]])).copy())
    assert w.race_distance(0) < -0.5
    for _ in range(200):  # U-turn at full lock, then forward across the line again
        c = w.cars[0]
        heading_err_deg = w.obs[0, observation.I_HEADING] * 180.0
        steer = min(max(-heading_err_deg, -30.0), 30.0)
        events.append(w.step(np.array([[steer, 1.0]])).copy())
        if c[_sim.C_S_TOTAL] > 2.0:
            break
    assert w.race_distance(0) > 2.0
    assert sum(e[0, _sim.E_LAP] for e in events) == 0
    assert w.laps(0) == 0 and w.lap_times[0] == []


# ----------------------------------------------------------------------------- observation
def test_observation_on_the_start_straight(stadium_track: Track) -> None:
    """Hand-computed sensors: the stadium's straight is y = 0, the first turn starts at x = 4."""
    w = World(stadium_track, 1)
    w.place(0, 1.0, offset=0.2)  # front point at (1.0, 0.2), heading +x
    w.observe()
    obs = w.obs[0]
    rng = observation.RAY_RANGE_M
    rays = obs[observation.I_TRACK_RAYS:observation.I_OBJECT_RAYS] * rng
    assert rays[0] == pytest.approx(0.535 + 0.2)  # -90 degrees: the right border
    assert rays[10] == pytest.approx(0.535 - 0.2)  # +90 degrees: the left border
    assert rays[9] == pytest.approx(0.335 / math.sin(math.radians(72)), rel=1e-9)
    # straight ahead along y = 0.2: the outside of the first turn, radius 2.535 about (4, 2)
    ahead = 4.0 + math.sqrt(2.535**2 - 1.8**2) - 1.0
    assert rays[5] == pytest.approx(ahead, rel=1e-3)
    assert np.all(obs[observation.I_OBJECT_RAYS:observation.I_SPEED] == 1.0)  # nothing there
    assert obs[observation.I_SPEED] == 0.0
    assert obs[observation.I_STEERING] == 0.0
    assert obs[observation.I_HEADING] == 0.0
    assert obs[observation.I_OFFSET] == pytest.approx(0.2 / 0.535)
    # curvature 0.5, 1, 2 and 4 m ahead: straight, straight, straight, in the turn (1/2 m)
    curv = obs[observation.I_CURVATURE:]
    np.testing.assert_allclose(curv[:3], 0.0, atol=1e-12)
    assert curv[3] == pytest.approx(0.5 * observation.CURVATURE_SCALE_M, rel=0.01)
    # heading 30 degrees left of the track direction, and far off to the right (clipped)
    w.place(0, 1.0, offset=-2.0, heading_offset_deg=30.0)
    w.observe()
    assert w.obs[0, observation.I_HEADING] == pytest.approx(30.0 / 180.0)
    assert w.obs[0, observation.I_OFFSET] == -observation.OFFSET_CLIP


def test_observation_sees_another_car(stadium_track: Track) -> None:
    w = World(stadium_track, 2)
    w.place(0, 0.0)
    w.place(1, 1.0 + car.FRONT_POINT_M)  # rear axle of car 1 exactly 1 m ahead of car 0's nose
    w.observe()
    mid = observation.I_OBJECT_RAYS + observation.NUM_RAYS // 2
    # the nearest point of car 1's rear disc: its centre 0.03 m ahead of the axle, radius 0.10
    expected = 1.0 + car.COLLISION_DISC_REAR_M - car.COLLISION_RADIUS_M
    assert w.obs[0, mid] * observation.RAY_RANGE_M == pytest.approx(expected, abs=1e-9)
    assert w.obs[1, mid] == 1.0  # car 0 is behind car 1: out of its forward rays
