"""Built-in drivers: opponents for head-to-head training and reference laps.

A driver sees the whole world (it is trusted code, unlike an uploaded policy) and returns a
command (steering degrees, speed m/s) for its car. Its arithmetic uses the simulator's
reproducible functions, because its commands feed back into the simulation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from evaluator import _geometry as geo
from evaluator import _sim, car, observation
from evaluator._detmath import DEG_PER_RAD, atan2, sincos
from evaluator.telemetry import CarLabel, Telemetry
from evaluator.track import Track, TrackKernel
from evaluator.world import World

SPEED_SAMPLES_M = (0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0)  # where corner speeds are checked
FORWARD_RAYS = (4, 5, 6)  # object rays at -18, 0 and +18 degrees: what is ahead
STOP_GAP_M = 0.25  # a follower stops this far behind a car ahead (front point to its body)
FOLLOW_GAIN_PER_S = 3.0  # m/s of allowed speed per metre of gap beyond the stop gap


class Driver:
    """A trusted driver: ``act(world, i)`` returns (steering degrees, speed m/s) for car i."""

    def reset(self, world: World) -> None:
        """Prepare for a new episode on ``world`` (default: nothing to do)."""

    def act(self, world: World, i: int) -> tuple[float, float]:
        """The command for car i."""
        raise NotImplementedError


class PurePursuitDriver(Driver):
    """Follows a line parallel to the centerline with pure-pursuit steering.

    Speed is the lowest of ``max_speed``, the cornering speed the curvature ahead allows at
    ``lateral_accel`` (math.inf: ignore corners), the speed from which it can still brake
    down to that in the distance left at ``braking``, and, with ``follow`` on, a speed that
    shrinks with the gap to a car or obstacle its forward object rays see (so it queues
    behind a slower car instead of running into it).
    """

    def __init__(self, max_speed: float = 2.0, *, lookahead_m: float = 0.35,
                 lookahead_gain_s: float = 0.15, lateral_accel: float = 4.0,
                 braking: float = 4.5, line_offset_m: float = 0.0,
                 follow: bool = True) -> None:
        if not car.MIN_SPEED_MPS <= max_speed <= car.MAX_SPEED_MPS:
            raise ValueError(f"max_speed must be within {car.MIN_SPEED_MPS}.."
                             f"{car.MAX_SPEED_MPS} m/s")
        self.max_speed = max_speed
        self.lookahead_m = lookahead_m
        self.lookahead_gain_s = lookahead_gain_s
        self.lateral_accel = lateral_accel
        self.braking = braking
        self.line_offset_m = line_offset_m
        self.follow = follow

    def act(self, world: World, i: int) -> tuple[float, float]:
        """Steer toward the point a speed-dependent distance ahead on the line."""
        k = world.track.kernel
        c = world.cars[i]
        s, v, seg = float(c[_sim.C_S]), float(c[_sim.C_V]), int(c[_sim.C_SEG])
        ahead = self.lookahead_m + self.lookahead_gain_s * v
        tx, ty, tseg = geo.point_at(k.tseg, k.length, s + ahead, seg)
        off = self.line_offset_m
        tx -= off * k.tseg[tseg, geo.TUY]
        ty += off * k.tseg[tseg, geo.TUX]
        sin_h, cos_h = sincos(float(c[_sim.C_TH]))
        dx = tx - float(c[_sim.C_X])
        dy = ty - float(c[_sim.C_Y])
        lx = cos_h * dx + sin_h * dy
        ly = -sin_h * dx + cos_h * dy
        steer = atan2(2.0 * car.WHEELBASE_M * ly, lx * lx + ly * ly) * DEG_PER_RAD
        steer = min(max(steer, -car.MAX_STEER_DEG), car.MAX_STEER_DEG)
        speed = self._speed(k, s, seg)
        if self.follow:
            gap = min(float(world.obs[i, observation.I_OBJECT_RAYS + r]) for r in FORWARD_RAYS)
            gap *= observation.RAY_RANGE_M
            speed = min(speed, max(car.MIN_SPEED_MPS, FOLLOW_GAIN_PER_S * (gap - STOP_GAP_M)))
        return steer, speed

    def _speed(self, k: TrackKernel, s: float, seg: int) -> float:
        target = self.max_speed
        if math.isinf(self.lateral_accel):
            return target
        for d in SPEED_SAMPLES_M:
            kappa = abs(geo.curvature_at(k.tseg, k.length, s + d, seg))
            if kappa <= 0.0:
                continue
            corner = math.sqrt(self.lateral_accel / kappa)
            allowed = math.sqrt(corner * corner + 2.0 * self.braking * d)
            if allowed < target:
                target = allowed
        return max(target, car.MIN_SPEED_MPS)


def record_drivers(track: Track, drivers: Sequence[Driver], max_steps: int, *, laps: int,
                   penalty_s: float, seed: int, labels: Sequence[CarLabel] | None = None,
                   action_index: Callable[[World], np.ndarray] | None = None) -> Telemetry:
    """Race ``drivers`` from a grid under race rules (off-track and collision penalties of
    ``penalty_s``), recording every step until all finish or ``max_steps`` have run.

    ``labels`` name the cars (default ``car 1``, ``car 2`` ...); ``action_index(world)``, if
    given, is the discrete action index recorded for every car after each step.
    """
    n = len(drivers)
    world = World(track, n, race=True, off_track_penalty=penalty_s,
                  collision_penalty=penalty_s, laps=laps)
    world.start_grid(list(range(n)), rng=np.random.default_rng(seed))
    names = list(labels) if labels is not None else [CarLabel(f"car {i + 1}") for i in range(n)]
    tel = Telemetry(track, seed, names, max_steps)
    tel.capture(world)
    for d in drivers:
        d.reset(world)
    actions = np.zeros((n, 2))
    for _ in range(max_steps):
        for i, d in enumerate(drivers):
            actions[i] = d.act(world, i)
        world.step(actions)
        tel.capture(world, None if action_index is None else action_index(world))
        if all(world.done(i) for i in range(n)):
            break
    return tel
