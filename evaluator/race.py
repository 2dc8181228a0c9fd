"""The race engine: time trials, head-to-bot trials and head-to-head heats of sandboxed
policies.

The simulator, the clock and the rules run here, in the trusted process; each policy runs in
its own :class:`~evaluator.sandbox.PolicyProcess`, started once per evaluation and kept alive
across its trials (or, given a :class:`~evaluator.policy_pool.PolicyPool`, taken warm from it
and given back: the result is the same). ``run_race(config, policies)`` returns a
:class:`RaceResult` whose JSON is the same on every machine for the same policies, settings
and seed.

Rules (DeepRacer's; docs/ORGANIZERS.md states them for organizers): N continuous laps from a
standing start; off track (all four wheels out) freezes the car for the off-track penalty while
the clock runs, then it is put back at the progress it had, facing the track; the car that hits
another from behind (or an obstacle) is frozen for the collision penalty; the run ends when
every car has completed its laps or at the time cap. Trial seeds derive from the race seed, so
every entrant meets the same start jitter, obstacle layout and race conditions (grip, latency,
steering bias, sensor noise: :mod:`evaluator.conditions`), and every car of a heat the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluator import _sim, car
from evaluator.bots_race import bot_labels, drive_bots, start_with_bots
from evaluator.drivers import PurePursuitDriver
from evaluator.errors import PolicyFailed, TimeBudgetExceeded
from evaluator.heat_order import head_to_head_order, heat_order
from evaluator.policy_pool import PolicyPool
from evaluator.race_settings import MAX_CARS, MIN_CARS, RaceConfig, RaceConfigError
from evaluator.results import (
    DNF,
    FINISHED,
    INVALID_POLICY,
    POLICY_ERROR,
    CarResult,
    TrialResult,
    rank_trials,
    trial_spread,
)
from evaluator.sandbox import (
    PolicyProcess,
    SandboxOptions,
    available_cores,
    await_answers,
    evaluation_cpu_s,
    inference_budget_s,
)
from evaluator.telemetry import CarLabel, Telemetry
from evaluator.track import Track
from evaluator.track_library import load_track
from evaluator.validate import ValidatedPolicy
from evaluator.version import PADDOCK_VERSION, SIM_VERSION
from evaluator.world import World, spread_obstacles

Progress = Callable[[int, int], None]  # (steps done, steps at most) over the whole evaluation


def trial_seed(race_seed: int, trial: int) -> int:
    """The seed of trial (or head-to-head round) ``trial`` (1-based) of a race."""
    seq = np.random.SeedSequence(race_seed, spawn_key=(trial,))
    return int(seq.generate_state(1, dtype=np.uint32)[0])


@dataclass
class RaceResult:
    """The outcome of one evaluation: a car block per entrant and the recorded runs."""

    config: RaceConfig
    track: Track
    cars: list[CarResult]
    positions: list[int] = field(default_factory=list)  #: head-to-head: car indices, best first
    telemetry: list[Telemetry] = field(default_factory=list)  #: one per trial / heat
    sandbox: dict[str, Any] = field(default_factory=dict)  #: layers, runtime version, timings

    @property
    def status(self) -> str:
        """The first car's status: the entrant being evaluated."""
        return self.cars[0].status

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``paddock evaluate --json`` and stored by the league."""
        first = self.cars[0]
        h2h = self.config.head_to_head
        out: dict[str, Any] = {
            "paddock_version": PADDOCK_VERSION, "sim_version": SIM_VERSION,
            "track": self.track.name, "track_digest": self.track.digest,
            "format": self.config.format, "seed": self.config.seed, "status": first.status,
            "ranking": self.config.ranking, "ranking_time_s": first.ranking_time_s,
            "ranking_laps": first.ranking_laps, "ranked_trial": first.ranked_trial,
            "settings": self.config.to_dict(),
            "trials": [t.to_dict() for t in first.trials],
            "spread": trial_spread(first.trials, self.config.ranking),
            "error": first.error or None}
        if h2h:
            out["cars"] = [c.to_dict(head_to_head=True) for c in self.cars]
            out["positions"] = list(self.positions)
        return out


def invalid_result(config: RaceConfig, track: Track, error: str) -> dict[str, Any]:
    """The result JSON of an evaluation that could not run because a policy was refused:
    the same keys as :meth:`RaceResult.to_dict`, status ``invalid_policy``."""
    return {"paddock_version": PADDOCK_VERSION, "sim_version": SIM_VERSION,
            "track": track.name, "track_digest": track.digest, "format": config.format,
            "seed": config.seed, "status": INVALID_POLICY, "ranking": config.ranking,
            "ranking_time_s": None, "ranking_laps": 0, "ranked_trial": None,
            "settings": config.to_dict(), "trials": [],
            "spread": trial_spread([], config.ranking), "error": error}


def run_race(config: RaceConfig, policies: Sequence[ValidatedPolicy], *,
             options: SandboxOptions | None = None, track: Track | None = None,
             progress: Progress | None = None, record: bool = True,
             pool: PolicyPool | None = None) -> RaceResult:
    """Evaluate ``policies`` under ``config``: one policy for a time trial or a head-to-bot
    race (its bots are built in: :mod:`evaluator.bots_race`), two or more (the first is the
    entrant, the rest its opponents) for head-to-head.

    Each policy has an inference-time budget (:func:`evaluator.sandbox.inference_budget_s`).
    A time trial's policy past it stops the evaluation with
    :class:`~evaluator.errors.TimeBudgetExceeded` (there is no result); a car past it in a
    head-to-head is retired with the reason, as for a missed deadline, and the others race on.

    With a ``pool`` the policy processes are taken from it (warm when it holds the same
    model under the same limits) and given back after the race, closed when anything went
    wrong (:mod:`evaluator.policy_pool`); the result is the same as without one. The
    ``sandbox`` block's ``warm`` says, per car, whether its process was reused.
    """
    if not config.head_to_head and len(policies) != 1:
        raise RaceConfigError(f"a time trial races one policy, got {len(policies)}")
    if config.head_to_head and not MIN_CARS <= len(policies) <= MAX_CARS:
        raise RaceConfigError(f"head-to-head races {MIN_CARS} to {MAX_CARS} policies, "
                              f"got {len(policies)}")
    trk = track if track is not None else load_track(config.track)
    opts = _spin_policy(options or SandboxOptions(), len(policies))
    opts = dataclasses.replace(opts, inference_budget_s=inference_budget_s(config, len(policies),
                                                                           opts))
    procs: list[PolicyProcess] = []
    failures: list[str] = [""] * len(policies)
    clean = [False]  # whether the race ended without an exception (the pool keeps processes)
    with contextlib.ExitStack() as stack:
        if pool is not None:
            stack.callback(_give_back, pool, procs, failures, clean)
        reserve_s = evaluation_cpu_s(config, len(policies), opts)
        for p in policies:  # start every child before waiting: they load in parallel
            try:
                if pool is None:
                    procs.append(stack.enter_context(PolicyProcess(p, opts, wait=False)))
                else:
                    procs.append(pool.acquire(p, opts, cpu_reserve_s=reserve_s, wait=False))
            except PolicyFailed as err:
                raise PolicyFailed(f"could not start the policy process: {err.reason}") from err
        for i, proc in enumerate(procs):
            try:
                proc.wait_ready()
            except PolicyFailed as err:
                failures[i] = err.reason
        runner = _Runner(config, trk, procs, failures, progress, record)
        result = runner.run()
        result.sandbox = {"layers": procs[0].layers, "missing": procs[0].missing_layers(),
                          "onnxruntime": procs[0].onnxruntime_version,
                          "load_time_s": [round(p.load_time_s, 4) for p in procs],
                          "actions": [p.actions for p in procs],
                          "inference_s": [round(p.inference_s, 3) for p in procs],
                          "inference_budget_s": opts.inference_budget_s,
                          "warm": [p.warm for p in procs]}
        clean[0] = True
    return result


def _give_back(pool: PolicyPool, procs: list[PolicyProcess], failures: list[str],
               clean: list[bool]) -> None:
    """Return a race's processes to its pool: kept only when the race ended cleanly and the
    car raced without a failure."""
    for proc, failure in zip(procs, failures, strict=False):
        pool.release(proc, healthy=clean[0] and not failure)


def _spin_policy(opts: SandboxOptions, children: int) -> SandboxOptions:
    """Busy-wait only where it gives the core away or there is a core to spare.

    Both sides busy-wait briefly before sleeping, because waking a sleeping process costs
    more than the inference. Over the shared buffer (``SandboxOptions.shared_buffer``) each
    side's busy wait yields the core between its looks, so the parent watches for answers
    even with more processes than cores: a child sharing its core runs in its yields (a
    2-car heat on 2 cores: 1.4 to 1.8 times the race steps per second of a parent that
    sleeps every step, 4 cars 1.3 to 1.8 times, with a CPU-bound process beside them too).
    Over the pipes the parent's busy wait keeps its core, so with more processes than cores
    only the children spin there.
    """
    if children + 1 > available_cores() and not opts.shared_buffer:
        return dataclasses.replace(opts, spin_s=0.0)
    return opts


class _Runner:
    """Runs the trials or heats of one evaluation with already started policy processes."""

    def __init__(self, config: RaceConfig, track: Track, procs: list[PolicyProcess],
                 failures: list[str], progress: Progress | None, record: bool) -> None:
        self.config = config
        self.track = track
        self.procs = procs
        self.failures = failures
        self.progress = progress
        self.record = record
        self.cap_steps = int(round(config.time_cap * car.CONTROL_HZ))
        self.telemetry: list[Telemetry] = []
        self.done_steps = 0
        self.labels = [CarLabel(p.policy.metadata.name or f"car {i + 1}", p.policy.sha256,
                                p.policy.metadata.action_spec.kind == "discrete")
                       for i, p in enumerate(procs)]

    # ------------------------------------------------------------------ helpers
    def _world(self, num_cars: int, seed: int) -> tuple[World, np.random.Generator]:
        rng = np.random.default_rng(seed)
        obstacles = spread_obstacles(self.track, self.config.obstacles, rng)
        world = World(self.track, num_cars, race=True,
                      off_track_penalty=self.config.off_track_penalty,
                      collision_penalty=self.config.collision_penalty, laps=self.config.laps,
                      interact=True, obstacles=obstacles)
        world.set_conditions(self.config.conditions, self.config.conditions.draw(seed))
        return world, rng

    def _actions(self, proc: PolicyProcess, outputs: np.ndarray
                 ) -> tuple[list[tuple[float, float]], list[int]]:
        """Map raw outputs to (steering, speed) pairs and the discrete indices (-1 if none).

        Continuous outputs are clipped to [-1, 1] and mapped linearly onto the ranges; a
        discrete policy's largest logit wins (the first one on a tie).
        """
        spec = proc.policy.metadata.action_spec
        if spec.kind == "continuous":
            rows = outputs.astype(np.float64).tolist()
            return [spec.map_unit(u0, u1) for u0, u1 in rows], [-1] * len(rows)
        idx = [int(i) for i in np.argmax(outputs, axis=1)]
        return [spec.choices[i] for i in idx], idx

    def _tick(self, steps: int) -> None:
        self.done_steps += steps
        if self.progress is not None:
            self.progress(self.done_steps, self._total_steps())

    def _total_steps(self) -> int:
        heats = self.config.trials * (len(self.procs) if self.config.head_to_head
                                      else 1)
        return heats * self.cap_steps

    def run(self) -> RaceResult:
        """Run every trial or heat and rank the cars."""
        if not self.config.head_to_head:
            trials = self._time_trial()
            cars = [self._car(0, trials)]
            return RaceResult(self.config, self.track, cars, [0], self.telemetry)
        return self._head_to_head()

    def _car(self, i: int, trials: list[TrialResult]) -> CarResult:
        p = self.procs[i].policy
        res = CarResult(self.labels[i].name, p.sha256, trials)
        if self.failures[i]:
            res.status, res.error = POLICY_ERROR, self.failures[i]
            return res
        best, value = rank_trials(trials, self.config.ranking, self.config.required_laps)
        if best is None:
            res.status = DNF
        else:
            res.ranking_time_s = round(value, 6) if value is not None else None
            res.ranking_laps = best.laps_completed
            res.ranked_trial = best.trial
        return res

    # ------------------------------------------------------------------ time trial
    def _time_trial(self) -> list[TrialResult]:
        """All trials at once, in lockstep, one world each: one message to the policy per
        step carries every running trial's observation. A head-to-bot trial's world also
        holds the bot cars (:mod:`evaluator.bots_race`), driven here between the steps."""
        cfg = self.config
        runs = []
        bots: list[list[PurePursuitDriver]] = []  # per trial: its bots' drivers (or none)
        labels = self.labels[:1] + bot_labels(cfg.bots)
        for t in range(1, cfg.trials + 1):
            seed = trial_seed(cfg.seed, t)
            world, rng = self._world(len(labels), seed)
            if cfg.bots:
                bots.append(start_with_bots(world, cfg.bots, rng))
            else:
                world.start_grid([0], rng=rng)
                bots.append([])
            res = TrialResult(t, seed, conditions=world.conditions.to_dict())
            tel = Telemetry(self.track, seed, labels, self.cap_steps)
            if self.record:
                tel.capture(world)
            runs.append((world, res, tel))
            if self.record:
                self.telemetry.append(tel)
        proc = self.procs[0]
        if self.failures[0]:
            for _, res, _ in runs:
                res.status, res.reason = POLICY_ERROR, self.failures[0]
            return [r for _, r, _ in runs]
        active = list(range(len(runs)))
        act = np.zeros((len(labels), 2))
        no_index = np.full(len(labels), -1, dtype=np.int16)
        while active:
            asking = [k for k in active if not runs[k][0].frozen(0)]
            if asking:
                obs = np.stack([runs[k][0].obs[0] for k in asking])
                try:
                    out = proc.act(obs)
                except TimeBudgetExceeded:
                    raise  # the evaluation stops: a time trial has no result past its budget
                except PolicyFailed as err:
                    self.failures[0] = err.reason
                    for k in active:
                        _close(runs[k][0], runs[k][1], 0, POLICY_ERROR,
                               f"{err.reason} (at {runs[k][0].sim_time:.2f} s)")
                    break
                phys, idx = self._actions(proc, out)
            for k in list(active):
                world, res, tel = runs[k]
                ai = None
                if k in asking:
                    j = asking.index(k)
                    act[0] = phys[j]
                    ai = no_index.copy()
                    ai[0] = idx[j]
                drive_bots(world, bots[k], act)
                events = world.step(act)
                _count(world, events, 0, res)
                if self.record:
                    tel.capture(world, ai)
                if world.done(0):
                    _close(world, res, 0, FINISHED, "")
                    active.remove(k)
                elif world.steps >= self.cap_steps:
                    _close(world, res, 0, DNF, _time_up(world, 0, cfg))
                    active.remove(k)
            self._tick(1)
        return [r for _, r, _ in runs]

    # ------------------------------------------------------------------ head-to-head
    def _head_to_head(self) -> RaceResult:
        """Rounds of heats: in round r every car starts once from every grid slot (cars
        rotate through the slots), all heats of a round share its seed, so the start is fair.

        Every heat runs at once, in lockstep, one world each (as a time trial's trials do):
        one message to each car's policy per step carries its observation in every heat it
        is racing in, so a race of h heats costs the round trips of one. A policy's answer
        to each observation does not depend on the others in the message (its process runs
        them one by one and holds no state), so each heat is what it would be raced alone;
        a policy that fails is retired from every heat it is still racing in."""
        cfg = self.config
        n = len(self.procs)
        runs: list[_HeatRun] = []
        for r in range(1, cfg.trials + 1):
            seed = trial_seed(cfg.seed, r)
            for rot in range(n):
                runs.append(self._start_heat(len(runs) + 1, seed,
                                             [(i + rot) % n for i in range(n)]))
        self._race_heats(runs)
        per_car = [[run.results[i] for run in runs] for i in range(n)]
        cars = [self._car(i, per_car[i]) for i in range(n)]
        for i, c in enumerate(cars):
            c.points = sum(t.position or n for t in per_car[i])
            c.wins = sum(1 for t in per_car[i] if t.position == 1)
        positions = head_to_head_order([c.status == POLICY_ERROR for c in cars],
                                       [c.points for c in cars],
                                       [c.ranking_time_s for c in cars])
        return RaceResult(cfg, self.track, cars, positions, self.telemetry)

    def _start_heat(self, heat: int, seed: int, slots: list[int]) -> _HeatRun:
        """A heat's world on its grid, its cars' results and its telemetry; cars whose
        policy has already failed are retired at the start."""
        n = len(self.procs)
        world, rng = self._world(n, seed)
        # Place in slot order so the seeded jitter belongs to the slot, not the car.
        for slot in range(n):
            world.grid_place(slots.index(slot), slot, rng=rng)
        world.steps = 0
        world.observe()
        run = _HeatRun(world, [TrialResult(heat, seed, grid_slot=slots[i],
                                           conditions=world.conditions.to_dict())
                               for i in range(n)],
                       Telemetry(self.track, seed, self.labels, self.cap_steps),
                       set(range(n)), np.zeros((n, 2)), np.full(n, -1, dtype=np.int16))
        if self.record:
            run.tel.capture(world)
            self.telemetry.append(run.tel)
        for i in range(n):
            if self.failures[i]:
                world.retire(i)
                _close(world, run.results[i], i, POLICY_ERROR, self.failures[i])
                run.racing.discard(i)
        return run

    def _race_heats(self, runs: list[_HeatRun]) -> None:
        """Step every unfinished heat once per loop until all are over."""
        live = [run for run in runs if not self._close_if_over(run)]
        while live:
            asked: dict[int, list[_HeatRun]] = {}
            for i in range(len(self.procs)):  # send to everyone first: they think in parallel
                rows = [run for run in live
                        if i in run.racing and not run.world.frozen(i)]
                if not rows:
                    continue
                try:
                    self.procs[i].send(np.stack([run.world.obs[i] for run in rows]))
                    asked[i] = rows
                except PolicyFailed as err:
                    self._fail(live, i, err)
            # Each car is charged its own thinking time; one past its budget is retired like
            # one past a deadline, and the others race on.
            await_answers([self.procs[i] for i in asked])
            for i, rows in asked.items():
                try:
                    out = self.procs[i].receive()
                except PolicyFailed as err:
                    self._fail(live, i, err)
                    continue
                phys, idx = self._actions(self.procs[i], out)
                for run, act, index in zip(rows, phys, idx, strict=True):
                    run.acts[i] = act
                    run.indices[i] = index
            for run in live:
                self._step_heat(run)
            self._tick(len(live))
            live = [run for run in live if not self._close_if_over(run)]

    def _step_heat(self, run: _HeatRun) -> None:
        world, results = run.world, run.results
        events = world.step(run.acts)
        for i in range(len(results)):
            _count(world, events, i, results[i])
        if self.record:
            run.tel.capture(world, run.indices)
        for i in sorted(run.racing):
            if world.done(i):
                run.finished.add(i)
                _close(world, results[i], i, FINISHED, "")
                run.racing.discard(i)

    def _close_if_over(self, run: _HeatRun) -> bool:
        """Whether a heat is over (no car racing, or the time cap reached), closing one that
        is: the cars still racing did not finish, and the cars get their positions."""
        if run.racing and run.world.steps < self.cap_steps:
            return False
        world, results = run.world, run.results
        n = len(results)
        for i in sorted(run.racing):
            _close(world, results[i], i, DNF, _time_up(world, i, self.config))
        run.racing.clear()
        order = heat_order(
            [(results[i].total_time_s or 0.0) if i in run.finished else None for i in range(n)],
            [world.race_distance(i) for i in range(n)],
            [results[i].status == POLICY_ERROR for i in range(n)])
        for pos, i in enumerate(order, start=1):
            results[i].position = pos
        return True

    def _fail(self, live: list[_HeatRun], i: int, err: PolicyFailed) -> None:
        """Car i's policy failed: retire it from every heat it is still racing in."""
        self.failures[i] = err.reason
        for run in live:
            if i in run.racing:
                run.world.retire(i)
                _close(run.world, run.results[i], i, POLICY_ERROR,
                       f"{err.reason} (at {run.world.sim_time:.2f} s)")
                run.racing.discard(i)


@dataclass
class _HeatRun:
    """One heat of a head-to-head race while it is raced."""

    world: World
    results: list[TrialResult]  #: per car
    tel: Telemetry
    racing: set[int]  #: the cars still racing
    acts: np.ndarray  #: each car's last (steering, speed)
    indices: np.ndarray  #: each car's last discrete action index (-1: none)
    finished: set[int] = field(default_factory=set)


def _count(world: World, events: np.ndarray, i: int, res: TrialResult) -> None:
    """Add car i's incidents of the last step to its result (one per incident).

    A penalty is charged as the freeze the world imposes, a whole number of control steps
    (:func:`evaluator.world.penalty_steps`), so ``penalty_s`` is the time actually lost even
    for a penalty like 2.5 s (38 steps)."""
    if events[i, _sim.E_OFFTRACK]:
        res.off_track_count += 1
        res.penalty_s += world.off_track_penalty_s
    if events[i, _sim.E_BLAME]:
        res.collision_count += 1
        res.penalty_s += world.collision_penalty_s


def _close(world: World, res: TrialResult, i: int, status: str, reason: str) -> None:
    """Fill in the end of car i's run."""
    res.status = status
    res.reason = reason
    res.lap_times_s = list(world.lap_times[i])
    res.laps_completed = world.laps(i)
    res.elapsed_s = world.sim_time
    laps = world.cfg[_sim.K_LAPS]
    covered = world.laps(i) + (0.0 if world.done(i) else world.lap_progress(i))
    res.completion_pct = float(min(100.0, covered / laps * 100.0))


def _time_up(world: World, i: int, cfg: RaceConfig) -> str:
    return (f"time cap of {cfg.time_cap:g} s reached after {world.laps(i)} of {cfg.laps} "
            "laps")
