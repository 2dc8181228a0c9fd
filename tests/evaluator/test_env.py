"""Tests for the Gymnasium environments paddock/TimeTrial-v0 and paddock/HeadToHead-v0."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import evaluator  # noqa: F401  (registers the environments)
from evaluator import _sim, car, observation
from evaluator.actions import ActionSpec
from evaluator.drivers import PurePursuitDriver
from evaluator.env import HeadToHeadEnv, TimeTrialEnv
from evaluator.errors import ActionSpaceError, RewardFunctionError, SimulationError
from evaluator.track import Track
from evaluator.vector import TimeTrialVectorEnv

DISCRETE = {
    "action_space_type": "discrete",
    "action_space": [
        {"steering_angle": -30, "speed": 1.0},
        {"steering_angle": -15, "speed": 2.0},
        {"steering_angle": 0, "speed": 3.0},
        {"steering_angle": 15, "speed": 2.0},
        {"steering_angle": 30, "speed": 1.0},
    ],
}
HARD_LEFT = np.array([1.0, 1.0], dtype=np.float32)  # full left lock, 4 m/s


def unit_action(spec: ActionSpec, steer_deg: float, speed: float) -> np.ndarray:
    """The continuous policy output that commands (steer_deg, speed)."""
    lo, hi = spec.steering_range
    slo, shi = spec.speed_range
    return np.clip(np.array([2.0 * (steer_deg - lo) / (hi - lo) - 1.0,
                             2.0 * (speed - slo) / (shi - slo) - 1.0], dtype=np.float32),
                   -1.0, 1.0)


def pursuit_action(env: TimeTrialEnv, driver: PurePursuitDriver) -> np.ndarray:
    steer, speed = driver.act(env.world, 0)
    return unit_action(env.actions, steer, speed)


# ----------------------------------------------------------------------------- API conformance
@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("paddock/TimeTrial-v0", {}),
        ("paddock/TimeTrial-v0", {"model_metadata": DISCRETE}),
        ("paddock/TimeTrial-v0", {"off_track_penalty": 2.0, "obstacles": 2}),
        ("paddock/TimeTrial-v0", {"render_mode": "rgb_array"}),
        ("paddock/HeadToHead-v0", {}),
        ("paddock/HeadToHead-v0", {"model_metadata": DISCRETE, "off_track_penalty": 3.0}),
        ("paddock/HeadToHead-v0", {"render_mode": "rgb_array"}),
    ],
)
def test_check_env(env_id: str, kwargs: dict[str, Any]) -> None:
    env = gym.make(env_id, **kwargs)
    check_env(env.unwrapped)  # warnings are errors in this suite
    env.close()


def test_registered_ids() -> None:
    for env_id in ("paddock/TimeTrial-v0", "paddock/HeadToHead-v0"):
        assert env_id in gym.registry
        assert gym.spec(env_id).max_episode_steps == 2700
    assert isinstance(gym.make("paddock/TimeTrial-v0").unwrapped, TimeTrialEnv)
    assert isinstance(gym.make("paddock/HeadToHead-v0").unwrapped, HeadToHeadEnv)


def test_spaces() -> None:
    env = TimeTrialEnv()
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert env.observation_space.shape == (30,) and env.observation_space.dtype == np.float32
    assert TimeTrialEnv(model_metadata=DISCRETE).action_space == gym.spaces.Discrete(5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TimeTrialEnv(),
        lambda: TimeTrialEnv(off_track_penalty=2.0, obstacles=3),
        lambda: TimeTrialEnv(model_metadata=DISCRETE),
        lambda: HeadToHeadEnv(off_track_penalty=1.0, obstacles=1),
        lambda: HeadToHeadEnv(),
    ],
    ids=["train", "race-obstacles", "discrete", "h2h-race", "h2h-train"],
)
def test_random_rollout_stays_in_observation_space(make: Any) -> None:
    env = make()
    env.action_space.seed(7)
    obs, info = env.reset(seed=3)
    episodes = 1
    for _ in range(1500):
        assert env.observation_space.contains(obs), obs
        assert obs.dtype == np.float32
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(reward, float) and math.isfinite(reward)
        assert info["episode_status"] in (
            "in_progress", "off_track", "crashed", "lap_complete", "pause", "time_up")
        if terminated or truncated:
            obs, info = env.reset()
            assert info["episode_status"] == "prepare"
            episodes += 1
    assert env.observation_space.contains(obs)


# ----------------------------------------------------------------------------- episode rules
def test_training_off_track_terminates() -> None:
    env = TimeTrialEnv(random_start=False)
    env.reset(seed=0)
    for n in range(1, 200):
        obs, reward, terminated, truncated, info = env.step(HARD_LEFT)
        assert info["params"]["steps"] == n
        if terminated:
            break
    else:
        pytest.fail("never left the track")
    assert not truncated
    assert info["episode_status"] == "off_track"
    assert info["params"]["is_offtrack"] is True
    assert reward == -1.0
    with pytest.raises(SimulationError, match="reset"):
        env.step(HARD_LEFT)


def test_race_off_track_freezes_then_resets_on_the_centerline() -> None:
    env = TimeTrialEnv(off_track_penalty=2.0)
    env.reset(seed=0)
    w = env.world
    for k in range(1, 300):
        _, _, terminated, _, info = env.step(HARD_LEFT)
        assert not terminated
        if info["episode_status"] == "off_track":
            off_step = k
            break
    else:
        pytest.fail("never left the track")
    left_at = info["params"]["projection_distance"]
    pose = w.cars[0, [_sim.C_X, _sim.C_Y, _sim.C_TH]].copy()
    assert w.cars[0, _sim.C_WHEELS] == 0
    penalty_steps = 2 * car.CONTROL_HZ  # 30
    for j in range(1, penalty_steps + 1):
        _, reward, terminated, truncated, info = env.step(HARD_LEFT)  # ignored while frozen
        assert not (terminated or truncated)
        assert info["sim_time"] == pytest.approx((off_step + j) / car.CONTROL_HZ)  # clock runs
        assert info["params"]["steps"] == off_step + j
        if j < penalty_steps:
            assert info["episode_status"] == "pause", j
            np.testing.assert_array_equal(w.cars[0, [_sim.C_X, _sim.C_Y, _sim.C_TH]], pose)
            assert w.cars[0, _sim.C_V] == 0.0
    # the 30th step puts it back: centerline, the progress it had, facing the track, at rest
    assert info["episode_status"] == "in_progress"
    assert info["params"]["distance_from_center"] == pytest.approx(0.0, abs=1e-9)
    assert info["params"]["projection_distance"] == pytest.approx(left_at, abs=1e-9)
    assert info["params"]["all_wheels_on_track"] is True
    obs = env.world.obs[0]
    assert obs[observation.I_HEADING] == pytest.approx(0.0, abs=1e-9)
    assert obs[observation.I_SPEED] == 0.0
    assert not env.world.frozen(0)
    # and it drives again on the next step
    env.step(np.array([0.0, 0.0], dtype=np.float32))
    assert w.cars[0, _sim.C_V] > 0.0


def _race(policy: str, laps: int = 1) -> tuple[float, list[float], int]:
    """Race the oval with pure pursuit; the reckless policy steers hard left at full speed
    (until it leaves the track) once it passes 20% and again 60% of the lap."""
    env = TimeTrialEnv(off_track_penalty=2.0, laps=laps)
    env.reset(seed=1)
    driver = PurePursuitDriver(max_speed=2.0)
    driver.reset(env.world)
    offs = 0
    triggers = [0.2, 0.6] if policy == "reckless" else []
    swerving = False
    for n in range(1, 5000):
        if triggers and env.world.lap_progress(0) > triggers[0]:
            triggers.pop(0)
            swerving = True
        action = HARD_LEFT if swerving else pursuit_action(env, driver)
        _, _, terminated, truncated, info = env.step(action)
        assert info["sim_time"] == pytest.approx(n / car.CONTROL_HZ)
        if info["episode_status"] == "off_track":
            offs += 1
            swerving = False
        if terminated or truncated:
            break
    assert terminated and info["episode_status"] == "lap_complete"
    assert info["laps"] == laps
    assert len(info["lap_times"]) == laps
    return sum(info["lap_times"]), info["lap_times"], offs


def test_penalties_show_in_the_lap_time() -> None:
    clean_total, _, clean_offs = _race("clean")
    reckless_total, _, reckless_offs = _race("reckless")
    assert clean_offs == 0
    assert reckless_offs == 2
    assert reckless_total >= clean_total + 2.0 * reckless_offs


def test_laps_complete_and_lap_times() -> None:
    total, lap_times, offs = _race("clean", laps=3)
    assert offs == 0
    assert len(lap_times) == 3
    # lap times are interpolated: not multiples of one control step
    steps = np.array(lap_times) * car.CONTROL_HZ
    assert not np.allclose(steps, np.round(steps), atol=1e-6)
    assert lap_times[1] == pytest.approx(lap_times[2], rel=0.02)
    assert lap_times[0] > lap_times[1]  # the standing start


def test_lap_complete_status_on_intermediate_laps() -> None:
    env = TimeTrialEnv(off_track_penalty=2.0, laps=2)
    env.reset(seed=2)
    driver = PurePursuitDriver(max_speed=2.0)
    statuses = []
    for _ in range(3000):
        _, _, terminated, _, info = env.step(pursuit_action(env, driver))
        statuses.append((info["episode_status"], info["laps"], terminated))
        if terminated:
            break
    lap_rows = [s for s in statuses if s[0] == "lap_complete"]
    assert lap_rows == [("lap_complete", 1, False), ("lap_complete", 2, True)]


def test_time_cap_truncates() -> None:
    env = TimeTrialEnv(time_cap=1.0, off_track_penalty=2.0)
    env.reset(seed=0)
    for n in range(1, 100):
        _, _, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
        if terminated or truncated:
            assert n == 15
            break
    assert truncated and not terminated
    assert info["episode_status"] == "time_up"
    assert info["sim_time"] == pytest.approx(1.0)
    with pytest.raises(SimulationError):
        env.step(np.zeros(2, dtype=np.float32))
    env.reset()
    _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
    assert not (terminated or truncated)


def test_registered_step_limit_truncates() -> None:
    env = gym.make("paddock/TimeTrial-v0", off_track_penalty=10_000.0)  # frozen for good
    env.reset(seed=0)
    for n in range(1, 3000):
        _, _, terminated, truncated, info = env.step(HARD_LEFT)
        if terminated or truncated:
            assert n == 2700
            break
    assert truncated and not terminated
    assert info["sim_time"] == pytest.approx(180.0)


def test_default_reward_is_progress() -> None:
    env = TimeTrialEnv(random_start=False)
    env.reset(seed=0)
    env.world.place(0, 0.0)  # on the line, exactly on the centerline, facing the track
    env.world.observe()
    w = env.world
    for _ in range(5):
        before = w.cars[0, _sim.C_S_TOTAL]
        _, reward, *_ = env.step(unit_action(env.actions, 0.0, 2.0))
        assert reward == pytest.approx((w.cars[0, _sim.C_S_TOTAL] - before) / (4.0 / 15.0))
    assert 0.0 < reward < 1.0


def test_action_mapping() -> None:
    env = TimeTrialEnv()
    env.reset(seed=0)
    env.step(np.array([0.5, 0.0], dtype=np.float32))
    c = env.world.cars[0]
    assert math.degrees(c[_sim.C_CMD_STEER]) == pytest.approx(15.0)
    assert c[_sim.C_CMD_SPEED] == pytest.approx(2.25)
    env.step(np.array([-7.0, 7.0], dtype=np.float32))  # clipped to [-1, 1]
    assert math.degrees(c[_sim.C_CMD_STEER]) == pytest.approx(-30.0)
    assert c[_sim.C_CMD_SPEED] == pytest.approx(4.0)
    with pytest.raises(SimulationError):
        env.step(np.zeros(3, dtype=np.float32))
    denv = TimeTrialEnv(model_metadata=DISCRETE)
    denv.reset(seed=0)
    denv.step(1)
    c = denv.world.cars[0]
    assert math.degrees(c[_sim.C_CMD_STEER]) == pytest.approx(-15.0)
    assert c[_sim.C_CMD_SPEED] == pytest.approx(2.0)
    with pytest.raises(ActionSpaceError):
        denv.step(5)


def test_render_rgb_array(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for env in (TimeTrialEnv(render_mode="rgb_array"),
                HeadToHeadEnv(render_mode="rgb_array", obstacles=1)):
        env.reset(seed=0)
        frame = env.render()
        assert isinstance(frame, np.ndarray)
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
        assert frame.shape[0] >= 64 and frame.shape[1] >= 64
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 3  # a picture, not a blank
        env.step(env.action_space.sample())
        assert env.render().shape == frame.shape
    assert TimeTrialEnv().render() is None
    with pytest.raises(ValueError, match="render_mode"):
        TimeTrialEnv(render_mode="human")


# ----------------------------------------------------------------------------- reward functions
def _bad_string(params: dict[str, Any]) -> Any:
    return "fast"


def _raises(params: dict[str, Any]) -> float:
    return params["no_such_key"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("fn", "pattern"),
    [
        (_raises, r"raised KeyError: 'no_such_key'"),
        (lambda p: 1 / 0, r"raised ZeroDivisionError"),
        (lambda p: float("nan"), r"returned nan; it must be finite"),
        (lambda p: math.inf, r"returned inf; it must be finite"),
        (lambda p: -math.inf, r"returned -inf; it must be finite"),
        (lambda p: 1e6, r"returned 1e\+06; rewards must lie within \+-100000"),
        (lambda p: -100001, r"rewards must lie within"),
        (_bad_string, r"must return a number, got str"),
        (lambda p: None, r"must return a number, got NoneType"),
        (lambda p: [1.0], r"must return a number, got list"),
        (lambda p: "1.0", r"must return a number, got str"),
    ],
)
def test_reward_function_errors(fn: Any, pattern: str) -> None:
    env = TimeTrialEnv(reward_function=fn)
    env.reset(seed=0)
    with pytest.raises(RewardFunctionError, match=pattern):
        env.step(np.zeros(2, dtype=np.float32))


@pytest.mark.parametrize("value", [1, 0.5, np.float32(0.25), np.float64(-2.0), 1e5, -1e5])
def test_reward_function_numbers(value: Any) -> None:
    env = TimeTrialEnv(reward_function=lambda p: value)
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(2, dtype=np.float32))
    assert type(reward) is float and reward == float(value)


# ----------------------------------------------------------------------------- vector
@pytest.mark.parametrize("mode", ["sync", "async", None])
def test_make_vec(mode: str | None) -> None:
    kwargs = {} if mode is None else {"vectorization_mode": mode}
    envs = gym.make_vec("paddock/TimeTrial-v0", num_envs=3, **kwargs)
    try:
        if mode is None:
            assert isinstance(envs, TimeTrialVectorEnv)
            assert envs.max_episode_steps == 2700
        assert envs.single_observation_space.shape == (30,)
        obs, info = envs.reset(seed=11)
        assert obs.shape == (3, 30) and obs.dtype == np.float32
        assert envs.observation_space.contains(obs)
        envs.action_space.seed(0)
        ended = 0
        for _ in range(60):
            obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
            assert envs.observation_space.contains(obs)
            assert rewards.shape == (3,) and np.all(np.isfinite(rewards))
            ended += int(np.sum(terminated | truncated))
        assert ended > 0  # random driving leaves the track: autoreset is exercised
    finally:
        envs.close()


def test_vector_env_discrete_and_reward_function() -> None:
    envs = TimeTrialVectorEnv(4, model_metadata=DISCRETE,
                              reward_function=lambda p: p["speed"] + p["steps"])
    envs.reset(seed=0)
    _, rewards, *_ = envs.step(np.array([0, 1, 2, 3]))
    np.testing.assert_allclose(rewards, [1.0 + 1, 2.0 + 1, 3.0 + 1, 2.0 + 1])


# ----------------------------------------------------------------------------- head-to-head
def test_head_to_head_with_a_callable_opponent() -> None:
    seen: list[np.ndarray] = []

    def opponent(obs: np.ndarray) -> tuple[float, float]:
        seen.append(obs)
        return (0.0, 1.0)

    env = HeadToHeadEnv(opponents=[opponent], off_track_penalty=2.0, start_slot=0)
    obs, info = env.reset(seed=0)
    assert env.num_cars == 2
    for _ in range(20):
        obs, _, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    assert len(seen) == 20
    assert all(o.shape == (30,) and o.dtype == np.float32 for o in seen)
    c = env.world.cars[1]
    assert c[_sim.C_CMD_STEER] == 0.0 and c[_sim.C_CMD_SPEED] == 1.0
    assert c[_sim.C_V] == pytest.approx(1.0)
    # it sees its own observation: speed 1 m/s is 0.25
    assert seen[-1][observation.I_SPEED] == pytest.approx(0.25, abs=1e-6)
    assert len(info["params"]["objects_location"]) == 1


def test_head_to_head_default_opponents_race() -> None:
    env = HeadToHeadEnv(off_track_penalty=2.0, laps=1, start_slot=0)
    env.reset(seed=4)
    assert env.num_cars == 3
    w = env.world
    # the grid: ego on the line, the opponents 0.6 m apart behind it
    np.testing.assert_allclose([w.race_distance(i) for i in range(3)], [0.0, -0.6, -1.2],
                               atol=1e-6)
    driver = PurePursuitDriver(max_speed=2.5)
    for _ in range(3000):
        _, _, terminated, truncated, info = env.step(pursuit_action(env, driver))
        if terminated or truncated:
            break
    assert terminated and info["episode_status"] == "lap_complete"
    assert len(info["lap_times"]) == 1
    # the built-in opponents raced too
    assert w.race_distance(1) > 0.5 * w.length and w.race_distance(2) > 0.5 * w.length


def test_head_to_head_arguments() -> None:
    with pytest.raises(ValueError):
        HeadToHeadEnv(opponents=[])
    with pytest.raises(ValueError):
        HeadToHeadEnv(start_slot=3)
    with pytest.raises(ValueError):
        TimeTrialEnv(laps=0)
    with pytest.raises(ValueError):
        TimeTrialEnv(obstacles=-1)


# ----------------------------------------------------------------------------- metadata
@pytest.mark.parametrize(
    ("meta", "pattern"),
    [
        ({"action_space_type": "continuous",
          "action_space": {"steering_angle": {"low": -30, "high": 30},
                           "speed": {"low": 0.5, "high": 9}}}, r"speed 9"),
        ({"action_space_type": "discrete",
          "action_space": [{"steering_angle": 0, "speed": 1.0}]}, r"2 to 30 actions, got 1"),
        ({"action_space_type": "discrete", "action_space": [
            {"steering_angle": 0, "speed": 1.0}, {"steering_angle": 0, "speed": 9}]},
         r"speed 9"),
        ({"action_space_type": "discrete", "action_space": [
            {"steering_angle": 45, "speed": 1.0}, {"steering_angle": 0, "speed": 1}]},
         r"steering_angle 45"),
        ({"action_space_type": "quantum", "action_space": []}, r"continuous.*discrete.*quantum"),
        ({"action_space": []}, r"None"),
        ({"action_space_type": "continuous",
          "action_space": {"steering_angle": {"low": 30, "high": -30},
                           "speed": {"low": 0.5, "high": 4}}}, r"must be below"),
        ({"action_space_type": "continuous",
          "action_space": {"steering_angle": {"low": -30, "high": 30},
                           "speed": {"low": "slow", "high": 4}}}, r"must be a number"),
        ({"action_space_type": "discrete", "action_space": [
            {"steering_angle": 0, "speed": True}, {"steering_angle": 0, "speed": 1}]},
         r"must be a number"),
        ([1, 2], r"JSON object"),
    ],
)
def test_invalid_metadata(meta: Any, pattern: str) -> None:
    with pytest.raises(ActionSpaceError, match=pattern):
        TimeTrialEnv(model_metadata=meta)


def test_metadata_from_a_json_file(tmp_path: Path) -> None:
    meta = dict(DISCRETE, sensor=["FRONT_FACING_CAMERA"], neural_network="DEEP_CONVOLUTIONAL")
    path = tmp_path / "model_metadata.json"
    path.write_text(json.dumps(meta))
    env = TimeTrialEnv(model_metadata=path)
    assert env.action_space == gym.spaces.Discrete(5)
    assert env.actions.to_metadata()["action_space"][0] == {"steering_angle": -30.0,
                                                           "speed": 1.0}
    env2 = TimeTrialEnv(model_metadata=str(path))
    assert env2.actions == env.actions


def test_env_accepts_a_track_object_and_a_path(stadium_track: Track, tmp_path: Path) -> None:
    env = TimeTrialEnv(stadium_track)
    assert env.track is stadium_track
    path = tmp_path / "stadium.csv"
    path.write_text(stadium_track.to_csv())
    assert TimeTrialEnv(str(path)).track.digest == stadium_track.digest


def test_head_to_head_training_crash_terminates(stadium_track: Track) -> None:
    env = HeadToHeadEnv(stadium_track, opponents=[lambda obs: (0.0, 0.1)], start_slot=0)
    env.reset(seed=0)
    w = env.world
    w.place(0, -3.0, origin=0.0)  # the ego 1.5 m behind the slow opponent, same line
    w.place(1, -1.5, origin=0.0)
    w.observe()
    for _ in range(60):
        _, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0], np.float32))
        if terminated:
            break
    assert terminated and not truncated
    assert info["episode_status"] == "crashed"
    assert info["params"]["is_crashed"] is True
    assert reward == -1.0
    # the opponent (race semantics) was not blamed
    assert not w.frozen(1) and w.cars[1, _sim.C_GHOST] == 0.0


def test_head_to_head_race_ego_hit_from_behind_is_not_penalized(stadium_track: Track) -> None:
    env = HeadToHeadEnv(stadium_track, opponents=[lambda obs: (0.0, 4.0)], start_slot=0,
                        off_track_penalty=2.0)
    env.reset(seed=0)
    w = env.world
    w.place(0, -1.5, origin=0.0)  # the slow ego ahead, the opponent behind at full speed
    w.place(1, -3.0, origin=0.0)
    w.observe()
    crashed = False
    for _ in range(60):
        _, reward, terminated, _, info = env.step(np.array([0.0, -1.0], np.float32))
        crashed |= info["params"]["is_crashed"]
        assert not terminated
        assert info["episode_status"] in ("in_progress", "lap_complete")
    assert crashed
    assert not w.frozen(0)


def test_start_states() -> None:
    # training: anywhere, within half the half width and 10 degrees, at rest
    env = TimeTrialEnv()
    starts = []
    for seed in range(40):
        obs, info = env.reset(seed=seed)
        p = info["params"]
        assert p["distance_from_center"] <= 0.5 * 0.535 + 1e-9
        assert abs(obs[observation.I_HEADING]) * 180.0 <= 10.0 + 1e-4
        assert obs[observation.I_SPEED] == 0.0
        assert p["progress"] == pytest.approx(0.0, abs=1e-9)
        starts.append(p["projection_distance"])
    assert max(starts) - min(starts) > 0.5 * env.track.length  # spread around the lap
    # race semantics: on the line, with the small jitter
    env = TimeTrialEnv(off_track_penalty=2.0)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        p = info["params"]
        assert p["distance_from_center"] <= 0.05 + 1e-9
        assert abs(obs[observation.I_HEADING]) * 180.0 <= 2.0 + 1e-4
        s = p["projection_distance"]
        assert min(s, env.track.length - s) < 1e-6
