"""Race conditions: each variation does what it says, within its bounds, drawn from the trial
seed; ``none`` is the simulator as before; trials of a good policy now differ."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import evaluator  # noqa: F401  (registers the environments)
from evaluator import _sim, observation
from evaluator.conditions import (
    LIMITS,
    PRESETS,
    Conditions,
    ConditionsError,
    Preset,
    TrialConditions,
)
from evaluator.drivers import PurePursuitDriver
from evaluator.race import run_race, trial_seed
from evaluator.race_settings import RaceConfig, RaceConfigError
from evaluator.track_library import load_track
from evaluator.validate import load_policy_file
from evaluator.world import World

ROOT = Path(__file__).resolve().parents[2]
PRO = ROOT / "evaluator" / "bots" / "pro.onnx"


def world(drawn: TrialConditions, bounds: Conditions | None = None) -> World:
    w = World(load_track("oval"), 1, race=True, laps=1)
    w.set_conditions(bounds or Conditions(), drawn)
    w.start_grid([0])
    return w


def drive(w: World, steps: int, command: tuple[float, float] | None = None) -> None:
    """``steps`` control steps of a pure-pursuit driver (or of one fixed command)."""
    driver = PurePursuitDriver(2.5)
    driver.reset(w)
    act = np.zeros((1, 2))
    for _ in range(steps):
        act[0] = command if command is not None else driver.act(w, 0)
        w.step(act)


# ------------------------------------------------------------------------------ the bounds
def test_presets_are_within_the_bounds_and_named() -> None:
    assert list(PRESETS) == ["none", "standard", "hard"]
    for name, c in PRESETS.items():
        assert c.name == name and c.to_dict()["preset"] == name
    assert Conditions.parse({"preset": "standard", "grip_pct": 10.0}).name == "custom"
    assert Conditions.parse({"preset": "standard", "grip_pct": 5.0}).name == "standard"
    assert Conditions.parse(None) == Conditions() == PRESETS[Preset.NONE]


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_every_bound_is_checked(name: str) -> None:
    lo, hi = LIMITS[name]
    with pytest.raises(ConditionsError, match=name):
        Conditions(**{name: hi + 1})
    with pytest.raises(ConditionsError, match=name):
        Conditions(**{name: lo - 1})
    with pytest.raises(ConditionsError, match=name):
        Conditions(**{name: True})


def test_unknown_or_malformed_conditions_are_refused() -> None:
    with pytest.raises(ConditionsError, match="unknown race conditions: wind"):
        Conditions.parse({"wind": 3})
    with pytest.raises(ConditionsError, match="none, standard, hard"):
        Conditions.parse("stormy")
    with pytest.raises(ConditionsError, match="whole number"):
        Conditions(latency_steps=1.5)  # type: ignore[arg-type]
    with pytest.raises(RaceConfigError, match="grip_pct must be"):
        RaceConfig(conditions={"grip_pct": 90})  # type: ignore[arg-type]


def test_draws_are_seeded_bounded_and_differ_between_trials() -> None:
    hard = PRESETS[Preset.HARD]
    draws = [hard.draw(trial_seed(7, t)) for t in range(1, 201)]
    assert draws[0] == hard.draw(trial_seed(7, 1))
    assert len({d.grip_factor for d in draws}) == 200
    assert all(abs(d.grip_factor - 1) <= hard.grip_pct / 100 for d in draws)
    assert {d.latency_steps for d in draws} == {0, 1, 2}
    assert all(abs(d.steering_bias_deg) <= hard.steering_bias_deg for d in draws)
    assert PRESETS[Preset.NONE].draw(123).neutral


# ------------------------------------------------------------------- what each one does
def test_none_is_the_simulator_without_conditions() -> None:
    plain = World(load_track("oval"), 1, race=True, laps=1)
    plain.start_grid([0], rng=np.random.default_rng(3))
    neutral = world(PRESETS[Preset.NONE].draw(5))
    neutral.start_grid([0], rng=np.random.default_rng(3))
    drive(plain, 300)
    drive(neutral, 300)
    assert np.array_equal(plain.cars, neutral.cars) and np.array_equal(plain.obs, neutral.obs)


def test_grip_bounds_how_sharply_a_fast_car_turns() -> None:
    """Full lock at 3.5 m/s asks for more than the tyres give: the car turns as tightly as its
    grip allows, so more grip turns it further in the same time."""
    turned = {}
    for factor in (0.8, 1.0, 1.2):
        w = world(TrialConditions(grip_factor=factor))
        drive(w, 25, (0.0, 3.5))  # up to speed, straight
        start = w.cars[0, _sim.C_TH]
        drive(w, 6, (30.0, 3.5))
        turned[factor] = float(w.cars[0, _sim.C_TH] - start)
    assert 0 < turned[0.8] < turned[1.0] < turned[1.2]


def test_latency_delays_every_command() -> None:
    """Two steps of latency: exactly the car that got two idle commands first."""
    commands = [(10.0 * np.sin(k / 3), 1.0 + 0.1 * k) for k in range(20)]
    prompt, late = world(TrialConditions()), world(TrialConditions(latency_steps=2))
    for command in [(0.0, 0.0), (0.0, 0.0), *commands[:-2]]:
        prompt.step(np.array([command]))
    for command in commands:
        late.step(np.array([command]))
    moved = [_sim.C_X, _sim.C_Y, _sim.C_TH, _sim.C_V, _sim.C_DELTA]
    assert np.array_equal(late.cars[0, moved], prompt.cars[0, moved])
    # What the policy asked for is what the record (and the reward params) see.
    assert late.cars[0, _sim.C_CMD_SPEED] == commands[-1][1]


def test_steering_bias_turns_a_straight_command() -> None:
    straight, biased = world(TrialConditions()), world(TrialConditions(steering_bias_deg=3.0))
    drive(straight, 20, (0.0, 1.5))
    drive(biased, 20, (0.0, 1.5))
    turned = biased.heading_deg(0) - straight.heading_deg(0)
    assert turned > 1.0  # positive bias steers left
    assert biased.cars[0, _sim.C_CMD_STEER] == 0.0  # the command as given


def test_sensor_noise_touches_the_rays_only_and_is_seeded() -> None:
    clean = world(TrialConditions())
    noisy = world(TrialConditions(ray_noise=0.05, noise_seed=11))
    again = world(TrialConditions(ray_noise=0.05, noise_seed=11))
    for w in (clean, noisy, again):
        drive(w, 10, (0.0, 1.0))
    rays = slice(observation.I_TRACK_RAYS, observation.I_SPEED)
    diff = noisy.obs[0, rays] - clean.obs[0, rays]
    assert 0.01 < np.abs(diff).mean() < 0.1
    assert noisy.obs[0, rays].min() >= 0 and noisy.obs[0, rays].max() <= 1
    assert np.array_equal(noisy.obs[0, observation.I_SPEED:], clean.obs[0, observation.I_SPEED:])
    assert np.array_equal(noisy.obs, again.obs)


def test_start_jitter_follows_the_bounds() -> None:
    offsets = {}
    for across in (0.05, 0.25):
        bounds = Conditions(start_offset_m=across, start_heading_deg=10.0)
        spots = []
        for seed in range(40):
            w = World(load_track("oval"), 1, race=True, laps=1)
            w.set_conditions(bounds, TrialConditions())
            w.start_grid([0], rng=np.random.default_rng(seed))
            spots.append(abs(w.obs[0, observation.I_OFFSET]))
        offsets[across] = max(spots)
    assert offsets[0.25] > 3 * offsets[0.05]


# --------------------------------------------------------------------- races and the env
@pytest.fixture(scope="module")
def pro() -> object:
    return load_policy_file(PRO)


def test_trials_of_a_good_policy_differ_under_standard_conditions(pro: object) -> None:
    """The three trials of a time trial were the same time to the millisecond; with the
    default conditions of a new race they are not, and the result says how far apart."""
    def trials(conditions: str) -> list[float]:
        config = RaceConfig(track="royal-park", laps=1, trials=3, conditions=conditions)
        result = run_race(config, [pro]).to_dict()  # type: ignore[list-item]
        assert result["settings"]["conditions"]["preset"] == conditions
        if conditions != "none":
            assert result["spread"]["stdev_s"] > 0.05
            drawn = [t["conditions"] for t in result["trials"]]
            assert len({json.dumps(d, sort_keys=True) for d in drawn}) == 3
        return [t["total_time_s"] for t in result["trials"]]

    same = trials("none")
    assert max(same) - min(same) < 0.01  # the old behaviour, kept
    varied = trials("standard")
    assert max(varied) - min(varied) > 0.1
    assert varied == trials("standard")  # deterministic


def test_env_draws_conditions_per_episode() -> None:
    env = gym.make("paddock/TimeTrial-v0", conditions="standard")
    base = env.unwrapped
    env.reset(seed=1)
    first = base.world.conditions
    env.reset(seed=2)
    second = base.world.conditions
    env.reset(seed=1)
    assert base.world.conditions == first != second
    assert not first.neutral
    plain, none = gym.make("paddock/TimeTrial-v0"), gym.make("paddock/TimeTrial-v0",
                                                              conditions="none")
    a, _ = plain.reset(seed=4)
    b, _ = none.reset(seed=4)
    assert np.array_equal(a, b) and none.unwrapped.world.conditions.neutral
    with pytest.raises(ValueError, match="grip_pct"):
        gym.make("paddock/TimeTrial-v0", conditions={"grip_pct": 99})


def test_cli_flags(tmp_path: Path) -> None:
    def evaluate(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "evaluator.cli", "evaluate", str(PRO),
                               "--laps", "1", "--trials", "2", "--quiet", "--json", *flags],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)

    done = evaluate()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["settings"]["conditions"]["preset"] == "standard"
    custom = evaluate("--conditions", "none", "--condition", "grip_pct=8")
    assert json.loads(custom.stdout)["settings"]["conditions"] == {
        **PRESETS[Preset.NONE].to_dict(), "preset": "custom", "grip_pct": 8.0}
    bad = evaluate("--condition", "grip_pct=80")
    assert bad.returncode == 2 and "grip_pct must be a number from 0 to 25" in bad.stderr
    bad = evaluate("--condition", "wind=3")
    assert bad.returncode == 2 and "NAME one of start_offset_m" in bad.stderr
