"""Benchmark of sandboxed evaluation: prints one JSON object on stdout, progress on stderr.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/evaluate.py            # full run, about a minute
    .venv/bin/python benchmarks/evaluate.py --quick    # smoke run, a few seconds

Everything goes through the real path a league evaluation takes: the shipped demo bots are
validated, started in sandboxed policy processes (:mod:`evaluator.sandbox`) and raced by
:func:`evaluator.race.run_race`. Wall times include starting the policy processes unless a
figure's name says otherwise; ``warm_vs_fresh`` races the same evaluations back to back
with a fresh policy process each and with warm processes from a
:class:`~evaluator.policy_pool.PolicyPool`, as a league worker does; ``channels`` measures the
same round trips and races over the pipes and over the shared buffer
(:mod:`evaluator.channel`), alternating, in one run. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from evaluator import car, version
from evaluator.conditions import PRESETS
from evaluator.policy_pool import PolicyPool
from evaluator.race import RaceResult, run_race, trial_seed
from evaluator.race_settings import RaceConfig
from evaluator.sandbox import PolicyProcess, SandboxOptions, bwrap_works
from evaluator.track_library import load_track
from evaluator.validate import ValidatedPolicy, load_policy_file
from evaluator.world import World, spread_obstacles

BOTS = Path(__file__).resolve().parents[1] / "evaluator" / "bots"
TRACK = "royal-park"  # 61 m, the library track closest to 60 m
TARGETS = {"time_trial_steps_per_s": 30000, "time_trial_3x3_wall_s": 0.5,
           "time_trial_3x3_fraction_of_in_process_forked": 0.5,
           "head_to_head_heat_race_steps_per_s": 10000}
REFERENCE = {"deepracer_realtime_steps_per_s": 15}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _median(fn: Callable[[], float], reps: int) -> dict[str, float]:
    vals = [fn() for _ in range(reps)]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def _median_call_us(fn: Callable[[], object], calls: int) -> float:
    """Median microseconds of one call of ``fn``."""
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def _car_steps(result: RaceResult) -> int:
    """Simulated car-steps: every recorded frame after the start, per car."""
    return sum((tel.frames - 1) * len(tel.cars) for tel in result.telemetry)


def _race_steps(result: RaceResult) -> int:
    """World steps (one advances every car of a heat)."""
    return sum(tel.frames - 1 for tel in result.telemetry)


def bench_start(policy: ValidatedPolicy, reps: int, use_bwrap: bool) -> dict[str, float]:
    """Seconds from spawning a policy process to its model being loaded."""
    def once() -> float:
        t = time.perf_counter()
        with PolicyProcess(policy, SandboxOptions(use_bwrap=use_bwrap)):
            return time.perf_counter() - t
    return _median(once, reps)


def bench_round_trip(policy: ValidatedPolicy, calls: int, batch: int) -> float:
    """Median microseconds of one ``act`` call (observations out, actions back)."""
    return bench_round_trips(policy, calls, batch, {"default": SandboxOptions()})["default"]


def bench_round_trips(policy: ValidatedPolicy, calls: int, batch: int,
                      options: dict[str, SandboxOptions]) -> dict[str, float]:
    """Median microseconds of one ``act`` call under each of ``options``: one process each,
    all alive at once and called in alternating blocks, so a busy moment of the machine
    falls on every one alike."""
    world = World(load_track(TRACK))
    world.start_grid([0])
    obs = np.repeat(world.obs[:1].astype(np.float32), batch, axis=0)
    procs = {name: PolicyProcess(policy, opts) for name, opts in options.items()}
    times: dict[str, list[float]] = {name: [] for name in procs}
    try:
        for proc in procs.values():
            for _ in range(200):
                proc.act(obs)
        block = max(calls // 10, 1)
        for _ in range(10):
            for name, proc in procs.items():
                for _ in range(block):
                    t = time.perf_counter()
                    proc.act(obs)
                    times[name].append(time.perf_counter() - t)
    finally:
        for proc in procs.values():
            proc.close()
    return {name: statistics.median(ts) * 1e6 for name, ts in times.items()}


def _bound_session(policy: ValidatedPolicy) -> tuple[Callable[[], None], np.ndarray,
                                                     np.ndarray]:
    """``policy`` in this process, one thread, its input and output bound to two buffers:
    the call running it, and the flat input and output."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(policy.data, opts, providers=["CPUExecutionProvider"])
    x = np.zeros(policy.input_shape, dtype=np.float32)
    y = np.zeros(policy.output_shape, dtype=np.float32)
    io = sess.io_binding()
    io.bind_cpu_input(policy.input_name, x)
    io.bind_output(policy.output_name, "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
    return lambda: sess.run_with_iobinding(io), x.reshape(-1), y.reshape(-1)


def bench_inference(policy: ValidatedPolicy, calls: int) -> float:
    """Median microseconds of one in-process onnxruntime call on bound buffers (the floor)."""
    run, _, _ = _bound_session(policy)
    return _median_call_us(run, calls)


def bench_in_process(config: RaceConfig, policy: ValidatedPolicy, reps: int
                     ) -> dict[str, Any]:
    """The limit a time trial's evaluation is held against: the same worlds (built as a race
    builds them, with each trial's seed) stepped with onnxruntime in this process, one
    observation per call on bound buffers, no sandbox, no telemetry, no checks. Car-steps
    per second, median of ``reps``; the run's car-steps are returned to be compared with the
    sandboxed race's (the same model on the same worlds drives the same steps)."""
    track = load_track(config.track)
    run, flat_x, flat_y = _bound_session(policy)
    spec = policy.metadata.action_spec
    cap = int(round(config.time_cap * car.CONTROL_HZ))

    def once() -> tuple[float, int]:
        steps = 0
        t = time.perf_counter()
        for trial in range(1, config.trials + 1):
            seed = trial_seed(config.seed, trial)
            rng = np.random.default_rng(seed)
            world = World(track, 1, race=True, off_track_penalty=config.off_track_penalty,
                          collision_penalty=config.collision_penalty, laps=config.laps,
                          interact=True,
                          obstacles=spread_obstacles(track, config.obstacles, rng))
            world.set_conditions(config.conditions, config.conditions.draw(seed))
            world.start_grid([0], rng=rng)
            act = np.zeros((1, 2))
            while not world.done(0) and world.steps < cap:
                if not world.frozen(0):
                    flat_x[:] = world.obs[0]
                    run()
                    if spec.kind == "continuous":
                        act[0] = spec.map_unit(float(flat_y[0]), float(flat_y[1]))
                    else:
                        act[0] = spec.choices[int(np.argmax(flat_y))]
                world.step(act)
                steps += 1
        return time.perf_counter() - t, steps

    runs = [once() for _ in range(reps)]
    wall = statistics.median(w for w, _ in runs)
    return {"wall_s": wall, "car_steps": runs[0][1], "car_steps_per_s": runs[0][1] / wall}


def bench_race(config: RaceConfig, policies: list[ValidatedPolicy], reps: int,
               options: SandboxOptions | None = None,
               pool: PolicyPool | None = None) -> dict[str, Any]:
    """Wall time of whole evaluations, and simulated steps per second with and without the
    policy processes' start-up; with a ``pool``, of warm processes (as a league worker
    races: one evaluation first starts them, and is not counted)."""
    walls, loads, last = [], [], None
    if pool is not None:
        run_race(config, policies, options=options, pool=pool)
    for _ in range(reps):
        t = time.perf_counter()
        last = run_race(config, policies, options=options, pool=pool)
        walls.append(time.perf_counter() - t)
        loads.append(max(last.sandbox["load_time_s"]))
    assert last is not None
    wall = statistics.median(walls)
    load = statistics.median(loads)
    car_steps, race_steps = _car_steps(last), _race_steps(last)
    first = last.cars[0]
    return {
        "wall_s": {"median": wall, "min": min(walls), "max": max(walls)},
        "process_start_s": load,
        "car_steps": car_steps, "race_steps": race_steps,
        "car_steps_per_s": car_steps / wall,
        "car_steps_per_s_after_start": car_steps / max(wall - load, 1e-9),
        "race_steps_per_s": race_steps / wall,
        "race_steps_per_s_after_start": race_steps / max(wall - load, 1e-9),
        "status": first.status, "ranking_time_s": first.ranking_time_s,
        "simulated_s": sum(t.elapsed_s for t in first.trials),
    }


def bench_limit(policy: ValidatedPolicy, reps: int) -> dict[str, Any]:
    """A 3-lap, 3-trial time trial in this process (:func:`bench_in_process`) and through the
    sandbox, in one run: with a policy process started for it (as ``paddock evaluate`` at
    home), forked for it by a pool's fork server (a league worker's new model) and warm (a
    model the worker raced before), each start included; each sandboxed figure's car-steps
    per second as a fraction of the in-process limit."""
    config = RaceConfig(track=TRACK, laps=3, trials=3)
    limit = bench_in_process(config, policy, reps)
    fresh = bench_race(config, [policy], reps)
    with PolicyPool(max_processes=0) as pool:  # keeps none: each evaluation forks its own
        forked = bench_race(config, [policy], reps, pool=pool)
    with PolicyPool() as pool:
        warm = bench_race(config, [policy], reps, pool=pool)
    rate = limit["car_steps_per_s"]
    figures = {"sandboxed_started": fresh, "sandboxed_forked": forked, "sandboxed_warm": warm}
    out: dict[str, Any] = {"in_process": limit, **figures, "same_car_steps": all(
        f["car_steps"] == limit["car_steps"] for f in figures.values())}
    for name, figure in figures.items():
        out["fraction_" + name.removeprefix("sandboxed_")] = figure["car_steps_per_s"] / rate
    return out


def bench_warm(config: RaceConfig, policies: list[ValidatedPolicy], runs: int
               ) -> dict[str, Any]:
    """``runs`` consecutive evaluations of the same policies, each with fresh policy
    processes, then with processes forked for each by a pool's fork server (which keeps
    none), then with warm ones from one pool (the first run of each pool starts its server
    or its processes, and is not counted): median wall seconds per evaluation, and how many
    times faster warm is than fresh."""
    def walls(pool: PolicyPool | None) -> tuple[list[float], list[list[bool]]]:
        times, warm = [], []
        for _ in range(runs):
            t = time.perf_counter()
            result = run_race(config, policies, pool=pool)
            times.append(time.perf_counter() - t)
            warm.append(result.sandbox["warm"])
        return times, warm

    fresh, _ = walls(None)
    with PolicyPool(max_processes=0) as pool:
        forked, _ = walls(pool)
    with PolicyPool() as pool:
        times, reused = walls(pool)
    assert all(all(w) for w in reused[1:]), reused  # the first run started the processes
    warm = times[1:]
    fresh_s, forked_s = statistics.median(fresh), statistics.median(forked[1:])
    warm_s = statistics.median(warm)
    return {"runs": runs, "fresh_s": fresh_s, "forked_s": forked_s, "warm_s": warm_s,
            "speedup": fresh_s / max(warm_s, 1e-9),
            "forked_speedup": fresh_s / max(forked_s, 1e-9),
            "evaluations_per_hour_fresh": 3600.0 / fresh_s,
            "evaluations_per_hour_forked": 3600.0 / max(forked_s, 1e-9),
            "evaluations_per_hour_warm": 3600.0 / max(warm_s, 1e-9)}


def bench_conditions(config: RaceConfig, policies: list[ValidatedPolicy], reps: int
                     ) -> dict[str, Any]:
    """The same evaluation under the ``none`` and the ``standard`` race conditions,
    alternating, ``reps`` times each: simulated car-steps per second once the policy process
    has started (the conditions change the runs, so steps, not seconds, are compared), and
    how much slower ``standard`` is."""
    rates: dict[str, list[float]] = {"none": [], "standard": []}
    for _ in range(reps):
        for preset in rates:
            cfg = dataclasses.replace(config, conditions=PRESETS[preset])
            t = time.perf_counter()
            result = run_race(cfg, policies)
            wall = time.perf_counter() - t - max(result.sandbox["load_time_s"])
            rates[preset].append(_car_steps(result) / max(wall, 1e-9))
    none, standard = statistics.median(rates["none"]), statistics.median(rates["standard"])
    return {"reps": reps, "none_car_steps_per_s": none,
            "standard_car_steps_per_s": standard,
            "standard_slower_pct": 100.0 * (none / standard - 1.0)}


#: the two channels compared; a generous deadline, so a busy moment of a shared machine
#: slows a figure down rather than ending the run
CHANNELS = {"pipe": SandboxOptions(shared_memory=False, action_timeout_s=1.0),
            "shared": SandboxOptions(shared_memory=True, action_timeout_s=1.0)}


def bench_channels(ace: ValidatedPolicy, pro: ValidatedPolicy, reps: int, calls: int,
                   laps: int) -> dict[str, Any]:
    """The pipes against the shared buffer, side by side: round trips (alternating blocks),
    and races run alternately over each, ``reps`` times: steps per second after the policy
    processes' start, medians, and how many times faster the shared buffer is."""
    out: dict[str, Any] = {"round_trip_us": {
        f"batch_{b}": bench_round_trips(ace, calls, b, CHANNELS) for b in (1, 3)}}
    races = {
        "time_trial_3x3_pro_car_steps_per_s": (RaceConfig(track=TRACK, laps=3, trials=3),
                                               [pro], _car_steps),
        "time_trial_long_car_steps_per_s": (RaceConfig(track=TRACK, laps=laps, trials=3,
                                                       time_cap=600.0), [ace], _car_steps),
        "head_to_head_race_steps_per_s": (RaceConfig(track=TRACK, format="head-to-head",
                                                     laps=3, trials=1), [ace, pro],
                                          _race_steps)}
    for key, (config, policies, steps) in races.items():
        rates: dict[str, list[float]] = {name: [] for name in CHANNELS}
        for _ in range(reps):
            for name, opts in CHANNELS.items():
                t = time.perf_counter()
                result = run_race(config, policies, options=opts)
                wall = time.perf_counter() - t - max(result.sandbox["load_time_s"])
                rates[name].append(steps(result) / max(wall, 1e-9))
        out[key] = {name: statistics.median(r) for name, r in rates.items()}
    for figures in out["round_trip_us"].values():
        figures["shared_speedup"] = figures["pipe"] / figures["shared"]
    for key in races:
        out[key]["shared_speedup"] = out[key]["shared"] / out[key]["pipe"]
    return out


def main() -> int:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke run)")
    args = parser.parse_args()
    reps = 2 if args.quick else 7
    calls = 300 if args.quick else 5000
    ace = load_policy_file(BOTS / "ace.onnx")
    pro = load_policy_file(BOTS / "pro.onnx")
    run_race(RaceConfig(track=TRACK, laps=1, trials=1), [ace])  # warm caches and imports
    out: dict[str, Any] = {
        "paddock_version": version.PADDOCK_VERSION, "sim_version": version.SIM_VERSION,
        "onnxruntime": ort.__version__, "python": platform.python_version(),
        "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()[0],
        "bubblewrap": bwrap_works(), "track": TRACK, "policy": "ace (shipped demo bot)",
        "quick": args.quick, "targets": TARGETS, "reference": REFERENCE,
    }
    _log("process start ...")
    out["process_start_s"] = {"with_bubblewrap": bench_start(ace, reps, True),
                              "without_bubblewrap": bench_start(ace, reps, False)}
    _log("round trips ...")
    out["act_round_trip_us"] = {"batch_1": bench_round_trip(ace, calls, 1),
                                "batch_3": bench_round_trip(ace, calls, 3)}
    out["inference_in_process_us"] = bench_inference(ace, calls)
    _log("time trial 3 laps x 3 trials ...")
    out["time_trial_3x3"] = bench_race(RaceConfig(track=TRACK, laps=3, trials=3), [ace], reps)
    _log("time trial 3 laps x 3 trials of pro: in process, sandboxed fresh and warm ...")
    out["in_process_limit"] = bench_limit(pro, reps)
    _log("long time trial (steady state) ...")
    laps = 3 if args.quick else 10
    out["time_trial_long"] = bench_race(RaceConfig(track=TRACK, laps=laps, trials=3,
                                                   time_cap=600.0), [ace], max(reps // 2, 1))
    _log("long time trial, warm policy process ...")
    with PolicyPool() as pool:
        out["time_trial_long_warm"] = bench_race(
            RaceConfig(track=TRACK, laps=laps, trials=3, time_cap=600.0), [ace],
            max(reps // 2, 1), pool=pool)
    _log("head-to-head ...")
    out["head_to_head"] = bench_race(RaceConfig(track=TRACK, format="head-to-head", laps=3,
                                                trials=1 if args.quick else 2), [ace, pro],
                                     max(reps // 2, 1))
    _log("race conditions: none vs standard ...")
    out["conditions"] = bench_conditions(
        RaceConfig(track=TRACK, laps=laps, trials=3, time_cap=600.0), [ace],
        max(reps // 2, 1))
    _log("warm vs fresh policy processes ...")
    runs = 4 if args.quick else 20
    out["warm_vs_fresh"] = {
        "time_trial_1_lap": bench_warm(RaceConfig(track=TRACK, laps=1, trials=1), [ace], runs),
        "head_to_head_heat_1_lap": bench_warm(
            RaceConfig(track=TRACK, format="head-to-head", laps=1, trials=1), [ace, pro], runs)}
    _log("pipes vs shared buffer ...")
    out["channels"] = bench_channels(ace, pro, max(reps // 2, 2), calls, laps)
    out["load_average_at_end"] = os.getloadavg()[0]
    out["summary"] = {
        "time_trial_steps_per_s": out["time_trial_long"]["car_steps_per_s"],
        "time_trial_steps_per_s_warm": out["time_trial_long_warm"]["car_steps_per_s"],
        "time_trial_3x3_wall_s": out["time_trial_3x3"]["wall_s"]["median"],
        "time_trial_3x3_fraction_of_in_process_started":
            out["in_process_limit"]["fraction_started"],
        "time_trial_3x3_fraction_of_in_process_forked":
            out["in_process_limit"]["fraction_forked"],
        "time_trial_3x3_fraction_of_in_process_warm": out["in_process_limit"]["fraction_warm"],
        "head_to_head_heat_race_steps_per_s":
            out["head_to_head"]["race_steps_per_s_after_start"],
        "head_to_head_race_steps_per_s_including_start": out["head_to_head"]["race_steps_per_s"],
        "warm_time_trial_speedup": out["warm_vs_fresh"]["time_trial_1_lap"]["speedup"],
        "warm_heat_speedup": out["warm_vs_fresh"]["head_to_head_heat_1_lap"]["speedup"],
        "standard_conditions_slower_pct": out["conditions"]["standard_slower_pct"],
        "round_trip_us_pipe_vs_shared": [out["channels"]["round_trip_us"]["batch_1"][name]
                                         for name in CHANNELS],
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
