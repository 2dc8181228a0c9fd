"""Tests for DeepRacer's reward-function ``params`` (evaluator.params)."""

from __future__ import annotations

import copy
import importlib.util
import math
import pickle
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from evaluator import _sim, car
from evaluator.drivers import PurePursuitDriver
from evaluator.env import HeadToHeadEnv, TimeTrialEnv
from evaluator.params import PARAM_KEYS, ParamsBuilder, Waypoints
from evaluator.track import Track
from evaluator.track_library import library_names, load_track
from evaluator.world import Obstacle, World


def _load_reward_functions() -> ModuleType:
    """Load the sample file the way a racer's upload is loaded: by path, no package."""
    path = Path(__file__).with_name("reward_functions.py")
    spec = importlib.util.spec_from_file_location("sample_reward_functions", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RF = _load_reward_functions()

TYPES: dict[str, type | tuple[type, ...]] = {
    "all_wheels_on_track": bool, "x": float, "y": float, "heading": float,
    "distance_from_center": float, "is_left_of_center": bool, "progress": float, "steps": int,
    "speed": float, "steering_angle": float, "track_width": float, "track_length": float,
    "waypoints": Waypoints, "closest_waypoints": list, "is_offtrack": bool, "is_crashed": bool,
    "is_reversed": bool, "closest_objects": list, "objects_location": list,
    "objects_left_of_center": list, "objects_speed": list, "objects_heading": list,
    "objects_distance": list, "objects_distance_from_center": list, "object_in_camera": bool,
    "projection_distance": float, "sim_time": float,
}
ITEM_TYPES: dict[str, type] = {
    "closest_waypoints": int, "closest_objects": int, "objects_left_of_center": bool,
    "objects_speed": float, "objects_heading": float, "objects_distance": float,
    "objects_distance_from_center": float,
}


def check_types(params: dict[str, Any]) -> None:
    assert set(params) == set(PARAM_KEYS)
    for key, want in TYPES.items():
        assert type(params[key]) in (want if isinstance(want, tuple) else (want,)), key
    for key, want in ITEM_TYPES.items():
        assert all(type(v) is want for v in params[key]), key
    for key in ("waypoints", "objects_location"):
        for point in params[key]:
            assert type(point) is tuple and len(point) == 2
            assert all(type(v) is float for v in point)
    assert len(params["closest_waypoints"]) == 2
    assert len(params["closest_objects"]) == 2
    assert -180.0 < params["heading"] <= 180.0
    assert 0.0 <= params["progress"] <= 100.0
    n_obj = len(params["objects_location"])
    for key in ("objects_left_of_center", "objects_speed", "objects_heading",
                "objects_distance", "objects_distance_from_center"):
        assert len(params[key]) == n_obj, key


def test_param_keys_are_deepracers() -> None:
    assert set(PARAM_KEYS) == set(TYPES)
    assert len(PARAM_KEYS) == len(set(PARAM_KEYS)) == 27  # 26 rows; x and y share one


def test_all_keys_with_types_in_a_rollout() -> None:
    env = HeadToHeadEnv(obstacles=2, off_track_penalty=2.0)
    _, info = env.reset(seed=5)
    check_types(info["params"])
    env.action_space.seed(1)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        check_types(info["params"])
        if terminated or truncated:
            env.reset()


def test_front_point_heading_speed_and_steering() -> None:
    env = TimeTrialEnv(random_start=False)
    _, info = env.reset(seed=0)
    assert info["params"]["steps"] == 0
    w = env.world
    # from rest: command 15 degrees left at 2.25 m/s
    _, _, _, _, info = env.step(np.array([0.5, 0.0], dtype=np.float32))
    p = info["params"]
    c = w.cars[0]
    assert p["steps"] == 1
    th = c[_sim.C_TH]
    assert p["x"] == pytest.approx(c[_sim.C_X] + 0.14 * math.cos(th), abs=1e-12)
    assert p["y"] == pytest.approx(c[_sim.C_Y] + 0.14 * math.sin(th), abs=1e-12)
    assert p["heading"] == pytest.approx(math.degrees(th), abs=1e-9)
    # the commanded action, not the state after one step from rest
    assert p["speed"] == pytest.approx(2.25)
    assert p["steering_angle"] == pytest.approx(15.0)
    assert c[_sim.C_V] < 0.5  # the car is still accelerating
    assert p["sim_time"] == pytest.approx(1 / 15)
    for k in range(2, 6):
        _, _, _, _, info = env.step(np.array([-1.0, 1.0], dtype=np.float32))
        assert info["params"]["steps"] == k
        assert info["params"]["speed"] == pytest.approx(4.0)
        assert info["params"]["steering_angle"] == pytest.approx(-30.0)
        assert info["params"]["sim_time"] == pytest.approx(k / 15)


def test_progress_starts_at_zero_and_rises() -> None:
    for random_start in (False, True):
        env = TimeTrialEnv(random_start=random_start)
        _, info = env.reset(seed=3)
        assert info["params"]["progress"] == pytest.approx(0.0, abs=0.1)
        driver = PurePursuitDriver(max_speed=2.0)
        last = info["params"]["progress"]
        for _ in range(60):
            steer, speed = driver.act(env.world, 0)
            _, _, terminated, _, info = env.step(np.array([steer / 30.0, (speed - 0.5) / 1.75 - 1],
                                                          dtype=np.float32))
            assert not terminated
            progress = info["params"]["progress"]
            assert progress >= last - 1e-9
            last = progress
        # 60 steps (4 s) at up to 2 m/s: more than 2 m and at most 8 m of the lap
        length = env.track.length
        assert 100.0 * 2.0 / length < last < 100.0 * 8.0 / length + 1e-6
        assert last == pytest.approx(
            100.0 * env.world.race_distance(0) / env.track.length, abs=1e-9)


def test_closest_waypoints_and_waypoints(oval_track: Track) -> None:
    env = TimeTrialEnv(oval_track)
    _, info = env.reset(seed=9)
    wp = info["params"]["waypoints"]
    assert wp == oval_track.waypoints
    assert len(wp) == oval_track.num_points
    env.action_space.seed(2)
    for _ in range(150):
        _, _, terminated, _, info = env.step(np.array([0.1, -0.5], dtype=np.float32))
        p = info["params"]
        if terminated:
            break
        i, j = p["closest_waypoints"]
        assert j == (i + 1) % len(wp)
        # the car's front point projects between them
        proj = oval_track.project(p["x"], p["y"])
        assert proj.index == i
        d = [math.dist((p["x"], p["y"]), q) for q in wp]
        assert min(d[i], d[j]) <= sorted(d)[1] + 1e-9  # one of them is among the nearest two


def test_waypoints_are_shared_and_not_rebuilt() -> None:
    w = World(load_track("oval"), 1)
    w.start_grid([0])
    pb = ParamsBuilder(w)
    assert pb.build(0, 0)["waypoints"] is pb.build(0, 1)["waypoints"]


def test_waypoints_are_a_read_only_list_that_copies_for_free() -> None:
    track = load_track("royal-park")
    env = TimeTrialEnv(track=track)
    _, info = env.reset(seed=3)
    wp = info["params"]["waypoints"]
    assert isinstance(wp, list) and wp == track.waypoints and wp[5] == track.waypoints[5]
    assert copy.copy(wp) is wp and copy.deepcopy(info)["params"]["waypoints"] is wp
    for change in (lambda: wp.append((0.0, 0.0)), lambda: wp.sort(), lambda: wp.pop(),
                   lambda: wp.__setitem__(0, (0.0, 0.0)), lambda: wp.__delitem__(0)):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert wp == track.waypoints  # unchanged by the attempts
    mine = list(wp)
    mine.append((0.0, 0.0))  # a copy is the racer's to change
    assert len(mine) == len(wp) + 1 and [*wp, (1.0, 1.0)][-1] == (1.0, 1.0)
    sent = pickle.loads(pickle.dumps(info))  # to a subprocess vector env: a plain list
    assert type(sent["params"]["waypoints"]) is list and sent["params"]["waypoints"] == wp
    _, _, _, _, later = env.step(env.action_space.sample())
    assert later["params"]["waypoints"] is wp


def test_left_of_center_distance_and_width(stadium_track: Track) -> None:
    w = World(stadium_track, 1, race=False)
    pb = ParamsBuilder(w)
    for offset in (0.3, 0.01, -0.01, -0.3):
        w.place(0, 1.0, offset=offset)
        w.observe()
        p = pb.build(0, 0)
        assert p["is_left_of_center"] is (offset > 0)
        assert p["distance_from_center"] == pytest.approx(abs(offset), abs=1e-12)
        assert p["track_width"] == pytest.approx(1.07)
        assert p["x"] == pytest.approx(1.0) and p["y"] == pytest.approx(offset)
        assert p["projection_distance"] == pytest.approx(1.0)
        assert p["track_length"] == pytest.approx(stadium_track.length)
    # pointing backwards
    w.place(0, 1.0, heading_offset_deg=180.0)
    w.observe()
    assert pb.build(0, 0)["is_reversed"] is True
    w.place(0, 1.0, heading_offset_deg=80.0)
    w.observe()
    assert pb.build(0, 0)["is_reversed"] is False


@pytest.mark.parametrize("name", library_names())
def test_track_width_on_library_tracks(name: str) -> None:
    track = load_track(name)
    w = World(track, 1, race=False)
    pb = ParamsBuilder(w)
    for s in np.linspace(0.0, track.length, 25, endpoint=False):
        w.place(0, float(s), offset=0.1)
        w.observe()
        assert pb.build(0, 0)["track_width"] == pytest.approx(1.07, abs=0.01)


def test_track_width_interpolates_and_follows_narrowed_widths() -> None:
    n = 120
    pts = np.array([(4.0 * math.cos(2 * math.pi * k / n), 3.0 * math.sin(2 * math.pi * k / n))
                    for k in range(n)])
    wl = np.linspace(0.3, 0.6, n)
    wr = np.full(n, 0.4)
    t = Track.from_arrays("taper", pts, wl, wr)
    w = World(t, 1, race=False)
    pb = ParamsBuilder(w)
    for s in (1.0, 7.5, 12.0):
        w.place(0, s)
        w.observe()
        p = pb.build(0, 0)
        i = p["closest_waypoints"][0]
        f = (s - t.arc_length[i]) / t.segment_lengths[i]
        expected = wl[i] + (wl[(i + 1) % n] - wl[i]) * f + 0.4
        assert p["track_width"] == pytest.approx(expected, abs=1e-9)


def test_head_to_head_objects() -> None:
    env = HeadToHeadEnv(off_track_penalty=2.0, start_slot=1, obstacles=1)
    _, info = env.reset(seed=2)
    for _ in range(10):
        _, _, _, _, info = env.step(np.array([0.0, -0.5], dtype=np.float32))
    p = info["params"]
    w = env.world
    assert len(p["objects_location"]) == 3  # two opponents, then the obstacle
    for k, j in enumerate((1, 2)):
        c = w.cars[j]
        # an opponent's location is the centre of its body, 0.09 m ahead of its rear axle
        centre = 0.5 * (car.BODY_FRONT_M - car.BODY_REAR_M)
        th = c[_sim.C_TH]
        assert p["objects_location"][k] == pytest.approx(
            (c[_sim.C_X] + centre * math.cos(th), c[_sim.C_Y] + centre * math.sin(th)), abs=1e-9)
        assert p["objects_speed"][k] == pytest.approx(c[_sim.C_V])
        assert p["objects_heading"][k] == pytest.approx(math.degrees(th))
        assert p["objects_distance"][k] == pytest.approx(c[_sim.C_S])
        assert p["objects_distance_from_center"][k] == pytest.approx(abs(c[_sim.C_OFF]))
        assert p["objects_left_of_center"][k] is bool(c[_sim.C_OFF] > 0)
    ob = w.obstacles[0]
    assert p["objects_location"][2] == (ob.x, ob.y)
    assert p["objects_speed"][2] == 0.0 and p["objects_heading"][2] == 0.0
    assert p["objects_distance_from_center"][2] == pytest.approx(0.25, abs=1e-6)
    behind, ahead = p["closest_objects"]
    n = len(p["objects_location"])
    assert 0 <= behind < n and 0 <= ahead < n and behind != ahead
    ego_s = p["projection_distance"]
    gaps = [(d - ego_s) % env.track.length for d in p["objects_distance"]]
    assert ahead == int(np.argmin(gaps)) and behind == int(np.argmax(gaps))


def test_object_in_camera(stadium_track: Track) -> None:
    w = World(stadium_track, 2, race=True)
    pb = ParamsBuilder(w)
    w.place(0, 0.0)
    w.place(1, 1.5)  # 1.5 m straight ahead
    w.observe()
    p = pb.build(0, 0)
    assert p["closest_objects"] == [0, 0]
    assert p["object_in_camera"] is True
    assert pb.build(1, 0)["object_in_camera"] is False  # car 0 is behind car 1
    w.place(1, 1.5, offset=0.0)
    w.place(0, 0.0, heading_offset_deg=90.0)  # looking away to the left
    w.observe()
    assert pb.build(0, 0)["object_in_camera"] is False


def test_obstacle_params_with_a_static_box(stadium_track: Track) -> None:
    w = World(stadium_track, 1, obstacles=[Obstacle(2.0, -0.25)])
    pb = ParamsBuilder(w)
    w.place(0, 0.5)
    w.observe()
    p = pb.build(0, 0)
    assert p["objects_location"] == [(2.0, -0.25)]
    assert p["objects_left_of_center"] == [False]
    assert p["objects_distance"] == [pytest.approx(2.0)]
    assert p["objects_distance_from_center"] == [pytest.approx(0.25)]
    assert p["closest_objects"] == [0, 0]
    assert p["object_in_camera"] is True


# ----------------------------------------------------------------------------- sample functions
def expected_rewards(width: float, dist: float, steer: float, wheels_on: bool
                     ) -> tuple[float, float, float]:
    """The three examples computed by hand."""
    if dist <= 0.1 * width:
        follow = 1.0
    elif dist <= 0.25 * width:
        follow = 0.5
    elif dist <= 0.5 * width:
        follow = 0.1
    else:
        follow = 1e-3
    inside = 1.0 if wheels_on and 0.5 * width - dist >= 0.05 else 1e-3
    zig = follow * (0.8 if abs(steer) > 15 else 1.0)
    return follow, inside, zig


@pytest.mark.parametrize(
    ("offset", "steer_unit", "follow", "inside", "zig"),
    [
        (0.0, 0.0, 1.0, 1.0, 1.0),  # on the centerline, straight
        (0.05, 0.8, 1.0, 1.0, 0.8),  # near the centerline, steering 24 degrees
        (-0.2, 0.0, 0.5, 1.0, 0.5),  # within 25% of the width
        (0.2, -0.6, 0.5, 1.0, 0.4),  # ... steering 18 degrees right
        (0.4, 0.4, 0.1, 1.0, 0.1),  # within 50%, steering 12 degrees: no penalty
        (0.5, 0.0, 0.1, 1e-3, 0.1),  # 3.5 cm from the border: too close for example 2
        (-0.6, 0.0, 1e-3, 1e-3, 1e-3),  # a wheel pair over the right border
    ],
)
def test_sample_reward_functions_known_states(
    stadium_track: Track, offset: float, steer_unit: float, follow: float, inside: float,
    zig: float
) -> None:
    results = []
    for fn in (RF.follow_center_line, RF.stay_inside_borders, RF.prevent_zig_zag):
        env = TimeTrialEnv(stadium_track, reward_function=fn, random_start=False,
                           model_metadata={"action_space_type": "continuous", "action_space": {
                               "steering_angle": {"low": -30, "high": 30},
                               "speed": {"low": 0.1, "high": 4.0}}})
        env.reset(seed=0)
        env.world.place(0, 1.0, offset=offset)
        env.world.observe()
        _, reward, _, _, info = env.step(np.array([steer_unit, -1.0], dtype=np.float32))
        assert info["params"]["distance_from_center"] == pytest.approx(abs(offset), abs=0.005)
        results.append(reward)
    assert results == pytest.approx([follow, inside, zig])


def test_sample_reward_functions_in_rollouts(oval_track: Track) -> None:
    for fn in RF.ALL:
        env = TimeTrialEnv(oval_track, reward_function=fn, off_track_penalty=2.0)
        env.reset(seed=4)
        env.action_space.seed(4)
        seen = set()
        for _ in range(300):
            action = env.action_space.sample()
            _, reward, terminated, truncated, info = env.step(action)
            p = info["params"]
            assert reward == fn(p)  # the function sees exactly the params in info
            if fn is not RF.waypoint_heading:
                c = env.world.cars[0]
                wheels = c[_sim.C_WHEELS] == 4
                want = expected_rewards(p["track_width"], abs(c[_sim.C_OFF]),
                                        math.degrees(c[_sim.C_CMD_STEER]), bool(wheels))
                idx = {RF.follow_center_line: 0, RF.stay_inside_borders: 1,
                       RF.prevent_zig_zag: 2}[fn]
                assert reward == pytest.approx(want[idx])
            seen.add(reward)
            if terminated or truncated:
                env.reset()
        assert len(seen) >= 2  # a random policy visits several reward levels
