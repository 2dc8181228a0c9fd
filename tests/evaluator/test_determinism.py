"""Determinism: same seed and actions give the same bits; a golden rollout pins the simulation."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluator import _sim
from evaluator.env import HeadToHeadEnv, TimeTrialEnv
from evaluator.track import Track
from evaluator.vector import TimeTrialVectorEnv
from evaluator.version import SIM_VERSION

# ----------------------------------------------------------------------------- GOLDEN
# sha256 of the float64 observations of fixed 600-step rollouts (see golden_rollout). If one of
# these changes, the simulation changed: results are no longer comparable with those recorded
# before. Bump evaluator.version.SIM_VERSION and update the constants (and GOLDEN_SIM_VERSION)
# in the same change.
GOLDEN_SIM_VERSION = "1"
GOLDEN = {
    "time-trial": "248b86b23fcc95dcbf25935dfade2224ef0f0c28f7e9f37b228d13bb9f6302dc",
    "head-to-head": "9c70863566b944ea88fbd4c68ca6a580c2da9ecae9c8c6883352fa93fe0e7642",
}
GOLDEN_STEPS = 600


def reward_probe(params: dict[str, Any]) -> float:
    """A reward function reading many params, so that rewards compare them too."""
    return (params["progress"] + params["steps"] + params["sim_time"] + params["speed"]
            + params["distance_from_center"] + float(params["all_wheels_on_track"])
            + params["projection_distance"] + params["x"] + params["y"] + params["heading"])


def formula_action(k: int) -> np.ndarray:
    """A fixed, platform-independent action sequence: triangle waves, rational arithmetic."""
    steer = ((k * 7) % 40 - 20) / 25.0  # -0.8 .. 0.76
    speed = ((k * 3) % 50) / 25.0 - 0.6  # -0.6 .. 1.36 (clipped at 1)
    return np.array([steer, speed], dtype=np.float32)


def golden_rollout(kind: str, track: Track, steps: int = GOLDEN_STEPS
                   ) -> tuple[str, dict[str, int]]:
    """Hash the float64 observations of a fixed rollout; also count what happened in it."""
    if kind == "time-trial":
        env: TimeTrialEnv = TimeTrialEnv(track, off_track_penalty=2.0, laps=10, obstacles=2)
    else:
        env = HeadToHeadEnv(track, off_track_penalty=1.0, laps=10, start_slot=1)
    env.reset(seed=12345)
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(env.world.obs, dtype="<f8").tobytes())
    counts = {"off_track": 0, "crash": 0, "lap": 0, "reset": 0}
    for k in range(steps):
        _, _, terminated, truncated, _ = env.step(formula_action(k))
        assert not (terminated or truncated)
        ev = env.world.events
        counts["off_track"] += int(ev[:, _sim.E_OFFTRACK].sum())
        counts["crash"] += int(ev[:, _sim.E_CRASH].sum())
        counts["lap"] += int(ev[:, _sim.E_LAP].sum())
        counts["reset"] += int(ev[:, _sim.E_RESET].sum())
        h.update(np.ascontiguousarray(env.world.obs, dtype="<f8").tobytes())
    return h.hexdigest(), counts


def test_golden_is_recorded_for_this_sim_version() -> None:
    assert SIM_VERSION == GOLDEN_SIM_VERSION, (
        "SIM_VERSION changed: re-record the golden hashes below for the new version")


@pytest.mark.parametrize("kind", sorted(GOLDEN))
def test_golden_rollout(kind: str, stadium_track: Track) -> None:
    # The track comes from a formula (conftest.stadium), not from the library file that may be
    # regenerated; its digest pins the geometry so a changed formula is told apart.
    assert stadium_track.digest == STADIUM_DIGEST
    digest, counts = golden_rollout(kind, stadium_track)
    # the rollout exercises the rules, not only free driving
    assert counts["off_track"] > 0 and counts["reset"] > 0 and counts["lap"] > 0
    if kind == "head-to-head":
        assert counts["crash"] > 0
    assert digest == GOLDEN[kind], (
        f"{kind}: the simulation changed (observation hash {digest}). If intended, bump "
        "evaluator.version.SIM_VERSION and update GOLDEN and GOLDEN_SIM_VERSION.")


STADIUM_DIGEST = "1a1b0af4e6db7482a994df63af485583b2c9666a2cbe05c89c128d45d50e6a39"


_INTERPRETED = """
import sys
import numba
assert numba.config.DISABLE_JIT
sys.path[:0] = [{tests!r}, {here!r}]
import evaluator
assert evaluator.__file__, "the evaluator package, not the tests/evaluator directory"
from conftest import stadium
from test_determinism import golden_rollout
for kind in ("time-trial", "head-to-head"):
    print(kind, golden_rollout(kind, stadium(), {steps})[0])
"""


def test_compiled_kernels_compute_like_plain_python(stadium_track: Track) -> None:
    """The compiled simulation gives the bits the same code gives interpreted by Python.

    Python's float arithmetic is plain IEEE double, one rounding per operation. Equality
    shows the kernels are compiled without fast-math (no fused multiply-add, no
    reassociation), which is what makes results equal on every machine.
    """
    steps = 200
    here = Path(__file__).resolve().parent
    code = _INTERPRETED.format(tests=str(here.parent), here=str(here), steps=steps)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=here.parents[1], timeout=300).stdout.split()
    interpreted = dict(zip(out[::2], out[1::2], strict=True))
    for kind in ("time-trial", "head-to-head"):
        assert interpreted[kind] == golden_rollout(kind, stadium_track, steps)[0], kind


# ----------------------------------------------------------------------------- same seed
def rollout(env: Any, seed: int, steps: int, actions: np.ndarray) -> list[bytes]:
    """Serialized (obs, reward, terminated, truncated, info) of every step, resets included."""
    out = []
    obs, info = env.reset(seed=seed)
    out.append(obs.tobytes() + pickle.dumps(info))
    for k in range(steps):
        obs, reward, terminated, truncated, info = env.step(actions[k])
        out.append(obs.tobytes() + pickle.dumps((reward, terminated, truncated, info)))
        if terminated or truncated:
            obs, info = env.reset()
            out.append(obs.tobytes() + pickle.dumps(info))
    return out


@pytest.mark.parametrize(
    "make",
    [
        lambda: TimeTrialEnv(reward_function=reward_probe),
        lambda: TimeTrialEnv(off_track_penalty=2.0, obstacles=2, reward_function=reward_probe),
        lambda: HeadToHeadEnv(off_track_penalty=1.0, reward_function=reward_probe),
        lambda: HeadToHeadEnv(),
    ],
    ids=["train", "race", "h2h-race", "h2h-train"],
)
def test_same_seed_same_bits(make: Any) -> None:
    actions = np.random.default_rng(99).uniform(-1, 1, (800, 2)).astype(np.float32)
    a = rollout(make(), 7, 800, actions)
    b = rollout(make(), 7, 800, actions)
    assert len(a) == len(b) > 800
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, f"step {k} differs"
    # a different seed: a different start, so different numbers
    c = rollout(make(), 8, 800, actions)
    assert a[0] != c[0]
    # the same env object reset with the seed again repeats itself too
    env = make()
    first = rollout(env, 7, 300, actions)
    assert rollout(env, 7, 300, actions) == first == a[: len(first)]


def test_sim_is_independent_of_the_other_world_objects(stadium_track: Track) -> None:
    """Running another world in between (compiled code state, caches) changes nothing."""
    actions = np.random.default_rng(1).uniform(-1, 1, (300, 2)).astype(np.float32)
    first = rollout(TimeTrialEnv(stadium_track), 3, 300, actions)
    other = TimeTrialEnv(stadium_track, off_track_penalty=1.0)
    rollout(other, 4, 200, actions)
    again = rollout(TimeTrialEnv(stadium_track), 3, 300, actions)
    assert first == again


# ----------------------------------------------------------------------------- vector env
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"reward_function": reward_probe, "time_cap": 4.0},
        {"off_track_penalty": 1.0, "laps": 1, "time_cap": 20.0},
        {"model_metadata": {"action_space_type": "discrete", "action_space": [
            {"steering_angle": -30, "speed": 2.0}, {"steering_angle": 0, "speed": 4.0},
            {"steering_angle": 20, "speed": 1.0}]}, "reward_function": reward_probe},
    ],
    ids=["default", "reward-fn", "race", "discrete"],
)
def test_native_vector_env_equals_single_envs(kwargs: dict[str, Any]) -> None:
    n, seed, steps = 4, 21, 400
    venv = TimeTrialVectorEnv(n, **kwargs)
    envs = [TimeTrialEnv(**kwargs) for _ in range(n)]
    rng = np.random.default_rng(5)
    if "model_metadata" in kwargs:
        actions = rng.integers(0, 3, (steps, n))
    else:
        actions = rng.uniform(-1, 1, (steps, n, 2)).astype(np.float32)
    vobs, _ = venv.reset(seed=seed)
    for i, env in enumerate(envs):
        obs, _ = env.reset(seed=seed + i)
        assert vobs[i].tobytes() == obs.tobytes()
    pending = [False] * n  # sub-environment i resets on this step (NEXT_STEP autoreset)
    resets = 0
    for k in range(steps):
        vobs, vrew, vterm, vtrunc, _ = venv.step(actions[k])
        for i, env in enumerate(envs):
            if pending[i]:
                obs, _ = env.reset()
                reward, terminated, truncated = 0.0, False, False
                pending[i] = False
                resets += 1
            else:
                obs, reward, terminated, truncated, _ = env.step(actions[k][i])
                pending[i] = terminated or truncated
            assert vobs[i].tobytes() == obs.tobytes(), (k, i)
            assert vrew[i] == reward, (k, i)
            assert (bool(vterm[i]), bool(vtrunc[i])) == (terminated, truncated), (k, i)
    assert resets >= 2  # the comparison went through autoresets
