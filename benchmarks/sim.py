"""Benchmark of Paddock's simulator: prints one JSON object on stdout, progress on stderr.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/sim.py            # full run, about 1-2 minutes
    .venv/bin/python benchmarks/sim.py --quick    # smoke run, about 10 seconds
    .venv/bin/python benchmarks/sim.py --track oval

Every figure is measured on the real code paths: ``gymnasium.make`` (with the wrappers it
adds), ``gymnasium.make_vec`` (the native batched env) and :class:`evaluator.world.World`.
See ``benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import gymnasium as gym
import numba
import numpy as np

import evaluator
from evaluator import version
from evaluator.drivers import PurePursuitDriver
from evaluator.track_library import library_names, load_track
from evaluator.world import World

ENV_ID = "paddock/TimeTrial-v0"
# Straight ahead at 1.2 m/s: the car drives until it leaves the track, then the env is reset,
# so the figure includes the reset cost of short early-training episodes.
CONSTANT_ACTION = (0.0, -0.6)
DRIVER_MAX_SPEED = 2.0
VECTOR_BATCHES = (64, 256, 1024)
# Vector actions: steering uniform in [-1, 1], speed uniform in this range (0.5..1.375 m/s).
VECTOR_SPEED_RANGE = (-1.0, -0.5)
VECTOR_ACTION_POOL = 128  # precomputed action batches, cycled through
THREAD_VARS = ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS",
               "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

REFERENCE = {
    "carracing_v3_steps_per_s_measured_elsewhere": 150,
    "f1tenth_gym_1080_beams_steps_per_s": 3300,
    "f1tenth_gym_16_beams_steps_per_s": 8300,
    "deepracer_realtime_steps_per_s": 15,
}
CONDITIONS = "standard"  # the race conditions of the conditions figure (what new races use)
TARGETS = {"single_env_steps_per_s": 25000, "single_env_steps_per_s_conditions": 25000,
           "vector_car_steps_per_s": 150000}

# Runs in a fresh interpreter: time from the first import to the end of the first step, and
# count numba cache hits and misses of the simulator's compiled functions.
STARTUP_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import gymnasium as gym
import numpy as np
import evaluator
t1 = time.perf_counter()
env = gym.make("paddock/TimeTrial-v0", track=sys.argv[1])
t2 = time.perf_counter()
env.reset(seed=0)
t3 = time.perf_counter()
env.step(np.zeros(2, dtype=np.float32))
t4 = time.perf_counter()
from numba.core.registry import CPUDispatcher
hits = misses = 0
for name, mod in list(sys.modules.items()):
    if name == "evaluator" or name.startswith("evaluator."):
        for obj in list(vars(mod).values()):
            if isinstance(obj, CPUDispatcher):
                hits += sum(obj.stats.cache_hits.values())
                misses += sum(obj.stats.cache_misses.values())
print(json.dumps({"import_s": t1 - t0, "make_s": t2 - t1, "reset_s": t3 - t2,
                  "first_step_s": t4 - t3, "total_s": t4 - t0,
                  "numba_cache_hits": hits, "numba_cache_misses": misses}))
"""


def log(msg: str) -> None:
    print(f"[bench sim] {msg}", file=sys.stderr, flush=True)


def stats(values: list[float], digits: int = 1) -> dict[str, Any]:
    return {"median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits),
            "reps": len(values)}


# ---------------------------------------------------------------------- single env
def follow_centerline(params: dict[str, Any]) -> float:
    """A typical racer's reward: three bands around the centerline, widest band earns least."""
    width = params["track_width"]
    off_center = params["distance_from_center"]
    for share, reward in ((0.1, 1.0), (0.25, 0.5), (0.5, 0.1)):
        if off_center <= share * width:
            return reward
    return 1e-3  # at or past the border


def run_constant(env: gym.Env[Any, Any], steps: int, seed: int) -> tuple[float, int]:
    """Steps/s of ``steps`` steps with the constant action, resetting on episode end."""
    action = np.array(CONSTANT_ACTION, dtype=np.float32)
    step, reset = env.step, env.reset
    reset(seed=seed)
    episodes = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            reset()
            episodes += 1
    return steps / (time.perf_counter() - t0), episodes


def run_driven(env: gym.Env[Any, Any], steps: int, seed: int) -> tuple[float, int, int]:
    """Steps/s with a pure-pursuit driver choosing every action (its cost included)."""
    base: Any = env.unwrapped  # TimeTrialEnv; its world is rebuilt on reset with obstacles
    spec = base.actions
    lo, hi = spec.steering_range
    slo, shi = spec.speed_range
    driver = PurePursuitDriver(max_speed=DRIVER_MAX_SPEED)
    step, reset = env.step, env.reset
    reset(seed=seed)
    driver.reset(base.world)
    episodes = laps = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        steer, speed = driver.act(base.world, 0)
        action = np.array([2.0 * (steer - lo) / (hi - lo) - 1.0,
                           2.0 * (speed - slo) / (shi - slo) - 1.0], dtype=np.float32)
        _, _, terminated, truncated, info = step(action)
        if terminated or truncated:
            laps += info["laps"]
            reset()
            driver.reset(base.world)
            episodes += 1
    return steps / (time.perf_counter() - t0), episodes, laps


def bench_single(track: str, steps: int, reps: int) -> dict[str, Any]:
    env = gym.make(ENV_ID, track=track)
    renv = gym.make(ENV_ID, track=track, reward_function=follow_centerline)
    cenv = gym.make(ENV_ID, track=track, conditions=CONDITIONS)
    _, info = env.reset(seed=0)
    n_params = len(info["params"])
    warm = min(steps, 2000)  # warm-up: compiled code, caches
    run_constant(env, warm, seed=0)
    run_driven(env, warm, seed=0)
    run_constant(renv, warm, seed=0)
    run_constant(cenv, warm, seed=0)

    const: list[float] = []
    driven: list[float] = []
    with_reward: list[float] = []
    with_conditions: list[float] = []
    episodes_c = episodes_d = laps_d = 0
    for rep in range(reps):  # interleaved, so a busy moment of the machine hits all alike
        rate, eps = run_constant(env, steps, seed=rep)
        const.append(rate)
        episodes_c += eps
        rate, eps, laps = run_driven(env, steps, seed=rep)
        driven.append(rate)
        episodes_d += eps
        laps_d += laps
        with_reward.append(run_constant(renv, steps, seed=rep)[0])
        with_conditions.append(run_constant(cenv, steps, seed=rep)[0])
    env.close()
    renv.close()
    cenv.close()

    total = steps * reps
    return {
        "wrappers": str(env),
        "params_keys": n_params,
        "steps_per_rep": steps,
        "constant_action": {
            "action": list(CONSTANT_ACTION),
            **stats(const),
            "episodes_ended": episodes_c,
            "mean_episode_steps": round(total / max(episodes_c, 1), 1),
        },
        "driven": {
            "driver": f"PurePursuitDriver(max_speed={DRIVER_MAX_SPEED})",
            "note": "the driver's act() and the action mapping run inside the timed loop",
            **stats(driven),
            "episodes_ended": episodes_d,
            "laps_completed": laps_d,
        },
        "with_reward_function": {
            "reward_function": "DeepRacer example 1 (follow the centerline)",
            "action": list(CONSTANT_ACTION),
            **stats(with_reward),
        },
        "with_conditions": {
            "conditions": CONDITIONS,
            "action": list(CONSTANT_ACTION),
            **stats(with_conditions),
            "share_of_constant_action": round(statistics.median(with_conditions)
                                              / statistics.median(const), 3),
        },
    }


# ---------------------------------------------------------------------- vector env
def bench_vector(track: str, batch: int, car_steps: int, reps: int) -> dict[str, Any]:
    venv = gym.make_vec(ENV_ID, num_envs=batch, track=track)
    rng = np.random.default_rng(batch)
    pool = np.empty((VECTOR_ACTION_POOL, batch, 2), dtype=np.float32)
    pool[..., 0] = rng.uniform(-1.0, 1.0, size=(VECTOR_ACTION_POOL, batch))
    pool[..., 1] = rng.uniform(*VECTOR_SPEED_RANGE, size=(VECTOR_ACTION_POOL, batch))
    steps = max(car_steps // batch, 20)
    step = venv.step
    venv.reset(seed=0)
    for k in range(min(steps, 50)):  # warm-up
        step(pool[k % VECTOR_ACTION_POOL])
    rates: list[float] = []
    ended = 0
    for rep in range(reps):
        venv.reset(seed=rep)
        t0 = time.perf_counter()
        for k in range(steps):
            _, _, terminated, truncated, _ = step(pool[k % VECTOR_ACTION_POOL])
            ended += int(terminated.sum()) + int(truncated.sum())
        rates.append(steps * batch / (time.perf_counter() - t0))
    venv.close()
    return {"num_envs": batch, "steps_per_rep": steps, **stats(rates),
            "episodes_ended_per_1000_car_steps": round(1000.0 * ended / (steps * batch * reps),
                                                       2)}


# ---------------------------------------------------------------------- raw world
def new_world(track_name: str, n: int) -> World:
    """``n`` cars on the start grid, race semantics, seeing and touching each other."""
    world = World(load_track(track_name), n, race=True, interact=True)
    world.start_grid(list(range(n)))
    return world


def record(track_name: str, speeds: tuple[float, ...], steps: int) -> tuple[np.ndarray, World]:
    """Commands of pure-pursuit drivers (one per car) over ``steps`` steps of a fresh world,
    and that world at the end."""
    n = len(speeds)
    world = new_world(track_name, n)
    drivers = [PurePursuitDriver(max_speed=v) for v in speeds]
    acts = np.zeros((steps, n, 2))
    for k in range(steps):
        for i, d in enumerate(drivers):
            acts[k, i] = d.act(world, i)
        world.step(acts[k])
    return acts, world


def replay(track_name: str, acts: np.ndarray) -> tuple[float, World]:
    """Seconds to replay recorded actions on a fresh world (deterministic: same states)."""
    world = new_world(track_name, acts.shape[1])
    step = world.step
    t0 = time.perf_counter()
    for a in acts:
        step(a)
    return time.perf_counter() - t0, world


def bench_world(track_name: str, steps: int, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, speeds in (("one_car", (DRIVER_MAX_SPEED,)),
                          ("head_to_head", (DRIVER_MAX_SPEED, 1.6))):
        acts, recorded = record(track_name, speeds, steps)
        replay(track_name, acts[: min(steps, 2000)])  # warm-up
        times = []
        matches = True
        for _ in range(reps):
            dt, world = replay(track_name, acts)
            times.append(dt)
            matches &= bool(np.array_equal(world.cars, recorded.cars))
        out[label] = {
            "cars": len(speeds),
            "commands": "pure-pursuit commands recorded once, replayed (driver cost excluded)",
            "steps_per_rep": steps,
            "step_us": stats([dt / steps * 1e6 for dt in times], 2),
            "world_steps_per_s": stats([steps / dt for dt in times]),
            "replay_matches_recording": matches,
            "laps_per_car": [recorded.laps(i) for i in range(len(speeds))],
        }
    return out


# ---------------------------------------------------------------------- startup
def startup_run(track: str, cache_dir: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    pkg_root = str(Path(evaluator.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, track], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"startup subprocess failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    result["process_wall_s"] = round(wall, 3)
    return result


def count_index_files(path: str) -> int:
    return sum(1 for _ in Path(path).rglob("*.nbi"))


def bench_startup(track: str, cold: bool) -> dict[str, Any]:
    warm = startup_run(track, None)
    retried = False
    if warm["numba_cache_misses"]:  # the source changed since the cache was written
        warm = startup_run(track, None)
        retried = True
    out: dict[str, Any] = {"warm": warm, "warm_retried_after_cache_refresh": retried}
    if not cold:
        out["cold"] = None
        out["cold_note"] = "skipped with --quick"
        return out
    with tempfile.TemporaryDirectory(prefix="paddock-numba-cold-") as tmp:
        before = count_index_files(tmp)
        if before:
            raise RuntimeError(f"{tmp} already holds numba index files")
        cold_run = startup_run(track, tmp)
        cold_run["numba_cache_dir_index_files_before"] = before
        cold_run["numba_cache_dir_index_files_after"] = count_index_files(tmp)
    out["cold"] = cold_run
    return out


# ---------------------------------------------------------------------- CarRacing
def bench_carracing(steps: int) -> tuple[float | None, str | None]:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import Box2D  # noqa: F401
    except ImportError:
        return None, "gymnasium[box2d] not installed"
    env = gym.make("CarRacing-v3")
    env.reset(seed=0)
    action = np.array([0.0, 0.3, 0.0], dtype=np.float32)
    for _ in range(20):
        env.step(action)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate, f"CarRacing-v3 via gymnasium.make, no render_mode, {steps} steps, gas 0.3"


# ---------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(), "cpus_usable": affinity, "cpu_model": cpu_model,
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": np.__version__, "numba": numba.__version__, "gymnasium": gym.__version__,
        "load_average_1_5_15_min": ([round(x, 2) for x in os.getloadavg()]
                                    if hasattr(os, "getloadavg") else None),
    }


def json_stdout() -> TextIO:
    """Keep the real stdout for the JSON; route everything else written to fd 1 to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(saved, "w")


def main(argv: list[str] | None = None) -> int:
    names = library_names()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--track", default=names[0],
                        help=f"track to drive (default: {names[0]}; library: {', '.join(names)})")
    parser.add_argument("--quick", action="store_true", help="short smoke run (~10 s)")
    args = parser.parse_args(argv)
    out_stream = json_stdout()
    quick: bool = args.quick
    track = load_track(args.track)
    name = track.name

    single_steps, reps = (3000, 3) if quick else (20000, 7)
    vec_car_steps, vec_reps = (30000, 3) if quick else (300000, 5)
    world_steps = 3000 if quick else 20000
    carracing_steps = 200 if quick else 2000

    host = machine()  # before the run: the load average shows what else is running
    started = time.perf_counter()
    log(f"track {name} ({track.length:.2f} m), {'quick' if quick else 'full'} run")
    single = bench_single(name, single_steps, reps)
    log(f"single env: {single['constant_action']['median']:,.0f} steps/s constant, "
        f"{single['driven']['median']:,.0f} driven, "
        f"{single['with_reward_function']['median']:,.0f} with reward function, "
        f"{single['with_conditions']['median']:,.0f} with {CONDITIONS} conditions")
    vector = {}
    for batch in VECTOR_BATCHES:
        vector[str(batch)] = bench_vector(name, batch, vec_car_steps, vec_reps)
        log(f"vector B={batch}: {vector[str(batch)]['median']:,.0f} car-steps/s")
    world = bench_world(name, world_steps, reps)
    log(f"raw world: {world['one_car']['step_us']['median']} us/step, head-to-head "
        f"{world['head_to_head']['world_steps_per_s']['median']:,.0f} steps/s")
    startup = bench_startup(name, cold=not quick)
    cold = startup["cold"]
    log(f"startup: warm {startup['warm']['total_s']} s, "
        f"cold {str(cold['total_s']) + ' s' if cold else 'skipped'}")
    cr_rate, cr_note = bench_carracing(carracing_steps)
    log(f"CarRacing-v3: {cr_rate and round(cr_rate, 1)} steps/s ({cr_note})")

    single_rate = single["constant_action"]["median"]
    vector_rates = {b: v["median"] for b, v in vector.items()}
    best_batch = max(vector_rates, key=lambda b: vector_rates[b])
    result: dict[str, Any] = {
        "benchmark": "paddock simulator",
        "quick": quick,
        "paddock_version": version.PADDOCK_VERSION,
        "sim_version": version.SIM_VERSION,
        "observation_version": version.OBSERVATION_VERSION,
        "track": {"name": name, "length_m": round(track.length, 3)},
        "single_env_steps_per_s": single_rate,
        "single_env_steps_per_s_driven": single["driven"]["median"],
        "env_step_with_reward_function_steps_per_s": single["with_reward_function"]["median"],
        "single_env_steps_per_s_conditions": single["with_conditions"]["median"],
        "vector_car_steps_per_s": vector_rates,
        "raw_world_step_us": world["one_car"]["step_us"]["median"],
        "head_to_head_world_steps_per_s": world["head_to_head"]["world_steps_per_s"]["median"],
        "startup_warm_s": startup["warm"]["total_s"],
        "startup_cold_s": cold["total_s"] if cold else None,
        "numba_first_call_compile_s": (round(cold["total_s"] - startup["warm"]["total_s"], 3)
                                       if cold else None),
        "carracing_v3_steps_per_s": None if cr_rate is None else round(cr_rate, 1),
        "paddock_vs_carracing": None if cr_rate is None else round(single_rate / cr_rate, 1),
        "carracing_note": cr_note,
        "targets": TARGETS,
        "targets_met": {
            "single_env_steps_per_s": single_rate >= TARGETS["single_env_steps_per_s"],
            "single_env_steps_per_s_conditions": (
                single["with_conditions"]["median"]
                >= TARGETS["single_env_steps_per_s_conditions"]),
            "vector_car_steps_per_s": (vector_rates[best_batch]
                                       >= TARGETS["vector_car_steps_per_s"]),
            "vector_best_num_envs": int(best_batch),
        },
        "reference": REFERENCE,
        "machine": host,
        "threads": {
            **{var: os.environ.get(var) for var in THREAD_VARS},
            "numba_default_threads": numba.config.NUMBA_DEFAULT_NUM_THREADS,
            "note": "the simulator runs on one thread; nothing is pinned to a CPU",
        },
        "details": {"single_env": single, "vector": vector, "world": world,
                    "startup": startup},
        "duration_s": round(time.perf_counter() - started, 1),
    }
    out_stream.write(json.dumps(result, indent=2) + "\n")
    out_stream.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
