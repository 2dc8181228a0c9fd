"""The compiled race-conditions step (``_sim.step_conditions``) against the rules written out
plainly: bias, latency, the commands kept and sensor noise, applied with numpy around the
unconditioned step. Every step of every case must match to the bit."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from evaluator import _sim
from evaluator._detmath import RAD_PER_DEG
from evaluator.conditions import PRESETS, Conditions, TrialConditions
from evaluator.drivers import PurePursuitDriver
from evaluator.errors import SimulationError
from evaluator.track_library import load_track
from evaluator.world import LOOKAHEAD, RAY_SLICE, RAYS, World

STEPS = 450  # crosses several noise blocks (8, 16, 32, ... rows)
EXTREME = Conditions(start_offset_m=0.3, start_heading_deg=20.0, ray_noise=0.1, grip_pct=25.0,
                     latency_steps=2, steering_bias_deg=5.0)
CASES = {**PRESETS, "extreme": EXTREME, "latency only": Conditions(latency_steps=2),
         "noise only": Conditions(ray_noise=0.05), "bias only": Conditions(steering_bias_deg=3.0)}


class Reference:
    """A world under race conditions, the rules in plain numpy around ``_sim.step_world``."""

    def __init__(self, world: World, drawn: TrialConditions) -> None:
        self.w = world
        self.drawn = drawn
        n = world.num_cars
        self.delayed = deque(np.zeros((n, 2)) for _ in range(drawn.latency_steps))
        self.rng = np.random.default_rng(drawn.noise_seed) if drawn.ray_noise > 0 else None
        self.noise()  # the start's observation is noisy too

    def noise(self) -> None:
        if self.rng is not None:
            rays = self.w.obs[:, RAY_SLICE]
            noisy = rays + self.rng.normal(0.0, self.drawn.ray_noise, rays.shape)
            self.w.obs[:, RAY_SLICE] = np.clip(noisy, 0.0, 1.0)

    def step(self, actions: np.ndarray) -> None:
        w, d = self.w, self.drawn
        if d.neutral:
            applied = actions
        else:
            if not np.isfinite(actions).all():
                raise SimulationError("actions must be finite numbers")
            moving = (w.cars[:, _sim.C_DONE] == 0.0) & (w.cars[:, _sim.C_FREEZE] <= 0.0)
            applied = actions.astype(np.float64, copy=True)
            applied[:, 0] += d.steering_bias_deg
            if d.latency_steps:
                self.delayed.append(applied)
                applied = self.delayed.popleft()
        k = w._k
        result = _sim.step_world(k.tseg, k.border, k.gmeta, k.gstart, k.gitems, k.length,
                                 w._obst, w.cars, applied, w.cfg, w.physics, RAYS, LOOKAHEAD,
                                 w.obs, w.events)
        assert not result & _sim.STEP_BAD_ACTION
        if not d.neutral:
            p = w.physics
            steer = np.clip(actions[:, 0] * RAD_PER_DEG, -p[_sim.P_MAX_STEER],
                            p[_sim.P_MAX_STEER])
            speed = np.clip(actions[:, 1], p[_sim.P_MIN_V], p[_sim.P_MAX_V])
            w.cars[moving, _sim.C_CMD_STEER] = steer[moving]
            w.cars[moving, _sim.C_CMD_SPEED] = speed[moving]
            self.noise()
        w.steps += 1
        for i in np.flatnonzero(w.events[:, _sim.E_LAP]):
            w._record_lap(int(i))


def pair(bounds: Conditions, seed: int, n: int, track: str = "oval"
         ) -> tuple[World, Reference, TrialConditions]:
    """The same start twice: a world stepping itself, and one the reference steps."""
    drawn = bounds.draw(seed)
    worlds = []
    for _ in range(2):
        w = World(load_track(track), n, race=[i % 2 == 0 for i in range(n)], laps=1,
                  off_track_penalty=1.0)
        w.set_conditions(bounds, drawn)
        worlds.append(w)
    fast, plain = worlds
    # The reference applies everything but the grip itself: its world only places the cars.
    plain.set_conditions(bounds, TrialConditions(grip_factor=drawn.grip_factor))
    for w in worlds:
        w.start_grid(list(range(n)), rng=np.random.default_rng(seed))
    return fast, Reference(plain, drawn), drawn


def same(a: World, b: World) -> None:
    assert a.obs.tobytes() == b.obs.tobytes()
    assert a.cars.tobytes() == b.cars.tobytes()
    assert a.events.tobytes() == b.events.tobytes()
    assert a.lap_times == b.lap_times and a.steps == b.steps


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize(("seed", "n"), [(1, 1), (2, 3), (5, 6)])
def test_fast_path_matches_the_plain_rules(name: str, seed: int, n: int) -> None:
    fast, ref, _ = pair(CASES[name], seed, n)
    same(fast, ref.w)
    rng = np.random.default_rng(seed + 100)
    driver = PurePursuitDriver(2.5)
    driver.reset(fast)
    acts = np.zeros((n, 2))
    frozen = 0
    for k in range(STEPS):
        acts[0] = driver.act(fast, 0)  # laps and finishes
        acts[1:, 0] = rng.uniform(-40.0, 40.0, n - 1)  # past the lock: off track, freezes
        acts[1:, 1] = rng.uniform(-0.5, 5.0, n - 1)  # past both speed limits
        if k % 37 == 3:
            acts[-1, 0] = -0.0
        fast.step(acts)
        ref.step(acts)
        same(fast, ref.w)
        frozen += sum(fast.frozen(i) for i in range(n))
    assert fast.done(0)  # the driver's car finished: parked cars were exercised
    assert frozen or n < 3  # ... and frozen ones, whose commands are not kept


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_other_action_dtypes_keep_their_arithmetic(dtype: type) -> None:
    fast, ref, _ = pair(PRESETS["hard"], 9, 2, track="royal-park")
    rng = np.random.default_rng(3)
    for _ in range(200):
        acts = np.stack([rng.uniform(-33.3, 33.3, 2), rng.uniform(0.0, 4.2, 2)], axis=1)
        acts = acts.astype(dtype)
        fast.step(acts)
        ref.step(acts)
        same(fast, ref.w)


def test_a_bad_action_changes_nothing_not_even_the_latency() -> None:
    fast, ref, _ = pair(PRESETS["hard"], 4, 2)
    good = np.array([[5.0, 1.5], [-3.0, 2.0]])
    for _ in range(3):
        fast.step(good)
        ref.step(good)
    before = (fast.cars.copy(), fast.obs.copy(), fast._delayed.copy(), fast._cond.copy())
    with pytest.raises(SimulationError, match="finite"):
        fast.step(np.array([[np.nan, 1.0], [0.0, 1.0]]))
    after = (fast.cars, fast.obs, fast._delayed, fast._cond)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, after, strict=True))
    for _ in range(20):
        fast.step(good)
        ref.step(good)
        same(fast, ref.w)


def test_noise_drawn_in_blocks_is_the_stream_drawn_per_step() -> None:
    """One ``normal`` call of many rows yields, bit for bit, the rows successive calls do."""
    for sigma, shape in ((0.02, (1, 22)), (0.1, (4, 22)), (0.05, (7, 22))):
        per_step = np.random.default_rng(17)
        block = np.random.default_rng(17).normal(0.0, sigma, (300, *shape))
        for row in block:
            assert row.tobytes() == per_step.normal(0.0, sigma, shape).tobytes()


def test_clip_is_numpys_clip() -> None:
    values = [-0.0, 0.0, 1.0, -1e-300, 1e-300, 0.5, 1.0000000000000002, -np.inf, np.inf,
              np.nan, 0.9999999999999999]
    for lo, hi in ((0.0, 1.0), (-0.0, 1.0), (-0.5235987755982988, 0.5235987755982988),
                   (0.1, 4.0)):
        for x in values:
            want = np.clip(np.array([x]), lo, hi)
            assert np.array([_sim._clip(x, lo, hi)]).tobytes() == want.tobytes(), (x, lo, hi)
