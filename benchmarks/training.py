"""Benchmark of training speed: Stable-Baselines3 PPO on ``paddock/TimeTrial-v0`` with a
DeepRacer reward function. Prints one JSON object on stdout, progress on stderr.

    .venv/bin/python benchmarks/training.py                      # about 2 minutes
    .venv/bin/python benchmarks/training.py --quick              # about 20 seconds
    .venv/bin/python benchmarks/training.py --baseline CHECKOUT  # side by side with another

Needs the ``examples`` extra (``pip install -e ".[examples]"``). Two loops are timed, each
``model.learn`` only (environment construction and PPO's setup are not counted), with the
example's hyperparameters (``examples/train_sb3.py``: 8 environments in
``make_vec_env``'s ``DummyVecEnv``, 512 steps each per update, one torch thread):

- ``plain``: the environments as a racer writes them, ``gymnasium.make(ENV_ID,
  reward_function=...)`` and nothing else, so ``info["params"]`` reaches the vector env,
  which deep-copies every info on every step;
- ``example``: ``examples/train_sb3.py``'s own ``train()``, as shipped in that checkout.

Each runs in a fresh interpreter whose ``sys.path`` starts with the checkout measured, so
``--baseline`` (a ``git worktree`` or ``git archive`` of an older commit) measures the old
code on the same machine in the same run; the two checkouts alternate, ``--repeats`` times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRACK = "royal-park"

# Runs in the child: argv = checkout, loop ("plain" or "example"), timesteps.
CHILD = r"""
import importlib.util, json, sys, time
checkout, loop, timesteps = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, checkout)
spec = importlib.util.spec_from_file_location("train_sb3", f"{checkout}/examples/train_sb3.py")
ex = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ex)
import gymnasium, torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
import evaluator
assert evaluator.__file__.startswith(checkout), evaluator.__file__
torch.set_num_threads(1)
reward = ex.load_reward_function()
if loop == "plain":
    def make_env():
        return gymnasium.make(ex.ENV_ID, track=TRACK, reward_function=reward,
                              model_metadata=ex.DEFAULT_METADATA)
    env = make_vec_env(make_env, n_envs=ex.N_ENVS, seed=0)
    model = PPO("MlpPolicy", env, n_steps=ex.N_STEPS, batch_size=ex.BATCH_SIZE,
                gamma=ex.GAMMA, learning_rate=ex.LEARNING_RATE, seed=0, device="cpu")
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    seconds = time.perf_counter() - start
else:
    learn = PPO.learn
    timed = {}
    def timed_learn(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return learn(self, *args, **kwargs)
        finally:
            timed["s"] = time.perf_counter() - start
    PPO.learn = timed_learn
    ex.train(TRACK, timesteps=timesteps, seed=0)
    seconds = timed["s"]
print(json.dumps({"steps_per_s": timesteps / seconds, "seconds": seconds}))
""".replace("TRACK", repr(TRACK))


def log(message: str) -> None:
    """Progress, on stderr."""
    print(message, file=sys.stderr, flush=True)


def run(checkout: Path, loop: str, timesteps: int) -> float:
    """Steps per second of one loop in a fresh interpreter on ``checkout``'s code."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(checkout), loop, str(timesteps)],
                         capture_output=True, text=True, env=env, cwd=checkout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{loop} on {checkout} failed:\n{out.stderr[-2000:]}")
    figure: float = json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]
    return figure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured alongside")
    parser.add_argument("--repeats", type=int, default=None, help="runs per loop and checkout")
    args = parser.parse_args()
    timesteps = 8_192 if args.quick else 32_768
    repeats = args.repeats or (1 if args.quick else 3)
    sites = {"this": ROOT}
    if args.baseline is not None:
        sites["baseline"] = args.baseline.resolve()
    figures: dict[str, dict[str, list[float]]] = {
        site: {"plain": [], "example": []} for site in sites}
    for k in range(repeats):
        for loop in ("plain", "example"):
            for site, checkout in sites.items():
                value = run(checkout, loop, timesteps)
                figures[site][loop].append(value)
                log(f"[{k + 1}/{repeats}] {site} {loop}: {value:,.0f} steps/s")
    result: dict[str, Any] = {
        "track": TRACK, "timesteps": timesteps, "repeats": repeats,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1_5_15_min": list(os.getloadavg())},
    }
    for site in sites:
        result[site] = {f"{loop}_steps_per_s": round(statistics.median(values))
                        for loop, values in figures[site].items()}
        result[site]["runs"] = figures[site]
    if "baseline" in sites:
        result["ratio_this_to_baseline"] = {
            key: round(result["this"][key] / result["baseline"][key], 2)
            for key in ("plain_steps_per_s", "example_steps_per_s")}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
