"""A world: cars on a track under the race rules, advanced one control step at a time.

:class:`World` is the one simulation both the Gymnasium environments and the race engine
drive, so a racer's training runs on exactly the physics and rules the league races on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluator import _sim, car, observation
from evaluator._detmath import DEG_PER_RAD, RAD_PER_DEG, sincos
from evaluator.conditions import Conditions, TrialConditions
from evaluator.errors import SimulationError
from evaluator.race_settings import DEFAULT_PENALTY_S
from evaluator.track import SEARCH_RADIUS_M, Track

GRID_GAP_M = 0.6  # distance between grid slots along the track
GRID_OFFSET_M = 0.22  # grid slots alternate this far left and right of the centerline
START_OFFSET_JITTER_M = Conditions().start_offset_m  # race starts: seeded lateral jitter
START_HEADING_JITTER_DEG = Conditions().start_heading_deg  # ... and heading jitter, either side
RAY_SLICE = slice(observation.I_TRACK_RAYS, observation.I_SPEED)  # the readings noise touches
# Sensor noise is drawn ahead in blocks of rows (one row: what one observation adds), the first
# block NOISE_FIRST_ROWS rows, each next one twice as many, up to about NOISE_BLOCK_VALUES
# numbers: short training episodes draw little ahead, long runs call the generator rarely.
NOISE_FIRST_ROWS = 8
NOISE_BLOCK_VALUES = 8192
TRAIN_OFFSET_JITTER = 0.5  # training starts: lateral jitter as a share of the half width
TRAIN_HEADING_JITTER_DEG = 10.0  # training starts: heading jitter, either side
OBSTACLE_OFFSET_M = 0.25  # obstacles sit this far left or right of the centerline
OBSTACLE_RADIUS_M = 0.12  # an obstacle box's contact radius


def physics_vector() -> np.ndarray:
    """The constants of :mod:`evaluator.car` and :mod:`evaluator.observation`, packed."""
    p = np.zeros(_sim.NUM_PHYS)
    p[_sim.P_SUB_DT] = car.SUB_DT_S
    p[_sim.P_SUBSTEPS] = car.SUBSTEPS
    p[_sim.P_WB] = car.WHEELBASE_M
    p[_sim.P_AHW] = car.AXLE_HALF_WIDTH_M
    p[_sim.P_FRONT] = car.FRONT_POINT_M
    p[_sim.P_MIN_V] = car.MIN_SPEED_MPS
    p[_sim.P_MAX_V] = car.MAX_SPEED_MPS
    p[_sim.P_MAX_STEER] = car.MAX_STEER_DEG * RAD_PER_DEG
    p[_sim.P_STEER_RATE] = car.STEER_RATE_DEG_S * RAD_PER_DEG
    p[_sim.P_ACCEL] = car.ACCEL_MPS2
    p[_sim.P_BRAKE] = car.BRAKE_MPS2
    p[_sim.P_GRIP] = car.GRIP_MPS2
    p[_sim.P_SCRUB] = car.SCRUB_MPS2
    p[_sim.P_COLL_R] = car.COLLISION_RADIUS_M
    p[_sim.P_DISC_REAR] = car.COLLISION_DISC_REAR_M
    p[_sim.P_DISC_FRONT] = car.COLLISION_DISC_FRONT_M
    p[_sim.P_RAY_RANGE] = observation.RAY_RANGE_M
    p[_sim.P_SEARCH_R] = SEARCH_RADIUS_M
    p[_sim.P_CURV_SCALE] = observation.CURVATURE_SCALE_M
    p[_sim.P_OFFSET_CLIP] = observation.OFFSET_CLIP
    p.setflags(write=False)
    return p


PHYSICS = physics_vector()
RAYS = observation.ray_directions()
LOOKAHEAD = np.array(observation.LOOKAHEAD_M)


@dataclass(frozen=True)
class Obstacle:
    """A static box on the track, modelled as a disc for contact and sensing."""

    x: float
    y: float
    radius: float = 0.12


def spread_obstacles(track: Track, count: int, rng: np.random.Generator) -> list[Obstacle]:
    """Place ``count`` boxes evenly round the track, each nudged along it and put on a seeded
    side of the centerline (object-avoidance races)."""
    out = []
    length = track.length
    for k in range(count):
        s = length * (k + 1) / (count + 1)
        s += float(rng.uniform(-0.1, 0.1)) * length / (count + 1)
        side = OBSTACLE_OFFSET_M if rng.random() < 0.5 else -OBSTACLE_OFFSET_M
        x, y, heading = track.point_at(s)
        sin_h, cos_h = sincos(heading)  # reproducible, unlike the C library's
        out.append(Obstacle(x - side * sin_h, y + side * cos_h, OBSTACLE_RADIUS_M))
    return out


def penalty_steps(seconds: float) -> int:
    """Convert a penalty in seconds to the whole control steps a car is frozen for.

    The one conversion of a penalty: cars freeze for whole control steps, so ``seconds`` is
    rounded to the nearest step (half to even), and that freeze is also the time a result
    charges (:attr:`World.off_track_penalty_s`): 2.5 s is 37.5 steps, served as 38 (2.533 s).
    """
    if not np.isfinite(seconds) or seconds < 0:
        raise SimulationError(f"a penalty must be a finite number of seconds >= 0, got {seconds}")
    return int(round(seconds * car.CONTROL_HZ))


class World:
    """Cars on one track, advanced together one control step (1/15 s) at a time.

    ``race`` gives each car race semantics (off track: freeze for the penalty, then back on
    the centerline) or training semantics (off track is only reported). ``laps`` > 0 parks a
    car once it has completed that many laps. With ``interact`` off, cars neither see nor
    touch each other: a batch of independent single-car runs. :meth:`set_conditions` makes
    the world a trial's race conditions (:mod:`evaluator.conditions`); without, nothing varies.
    """

    def __init__(
        self,
        track: Track,
        num_cars: int = 1,
        *,
        race: bool | Sequence[bool] = True,
        off_track_penalty: float = DEFAULT_PENALTY_S,
        collision_penalty: float = DEFAULT_PENALTY_S,
        laps: int = 0,
        interact: bool = True,
        obstacles: Sequence[Obstacle] = (),
    ) -> None:
        if num_cars < 1:
            raise SimulationError("a world needs at least one car")
        self.track = track
        self._k = track.kernel
        self.num_cars = num_cars
        self.cars = np.zeros((num_cars, _sim.NUM_STATE))
        flags = [race] * num_cars if isinstance(race, bool) else list(race)
        if len(flags) != num_cars:
            raise SimulationError(f"race flags for {len(flags)} cars, world has {num_cars}")
        self.cars[:, _sim.C_RACE] = np.array(flags, dtype=np.float64)
        self.cfg = np.zeros(_sim.NUM_CFG)
        self.cfg[_sim.K_OFF_PEN_STEPS] = penalty_steps(off_track_penalty)
        self.cfg[_sim.K_COL_PEN_STEPS] = penalty_steps(collision_penalty)
        self.cfg[_sim.K_INTERACT] = 1.0 if interact else 0.0
        self.cfg[_sim.K_LAPS] = float(laps)
        self.obstacles = tuple(obstacles)
        self._obst = np.array([[o.x, o.y, o.radius] for o in self.obstacles],
                              dtype=np.float64).reshape(-1, 3)
        self.obs = np.zeros((num_cars, observation.OBS_DIM))
        self.events = np.zeros((num_cars, _sim.NUM_EVENTS))
        self.steps = 0
        self.lap_times: list[list[float]] = [[] for _ in range(num_cars)]
        self._last_cross = [0.0] * num_cars
        self.set_conditions(Conditions(), TrialConditions())

    def set_conditions(self, bounds: Conditions, drawn: TrialConditions) -> None:
        """Race under ``drawn`` (one trial's draw of ``bounds``): the start jitter of the
        bounds, the drawn grip, latency, steering bias and sensor noise. Call before placing
        the cars; pending delayed commands are dropped."""
        self.start_jitter = (bounds.start_offset_m, bounds.start_heading_deg)
        self.conditions = drawn
        self._plain = drawn.neutral
        self.physics = PHYSICS
        if drawn.grip_factor != 1.0:
            physics = PHYSICS.copy()
            physics[_sim.P_GRIP] *= drawn.grip_factor
            physics.setflags(write=False)
            self.physics = physics
        # The state _sim.step_conditions keeps: bias, latency ring, noise block position.
        n = self.num_cars
        self._cond = np.zeros(_sim.NUM_COND)
        self._cond[_sim.Q_BIAS] = drawn.steering_bias_deg
        self._cond[_sim.Q_RAY0] = RAY_SLICE.start
        self._delayed = np.zeros((drawn.latency_steps, n, 2))
        self._applied = np.zeros((n, 2))
        self._moving = np.zeros(n)
        rays = RAY_SLICE.stop - RAY_SLICE.start
        self._noise_rows = 0
        self._noise_block = np.zeros((0, n, rays))
        self._noise = (np.random.default_rng(drawn.noise_seed) if drawn.ray_noise > 0
                       else None)
        if self._noise is not None:
            self._draw_noise()

    def _draw_noise(self) -> None:
        """Draw the next block of sensor noise: the numbers the next observations add, in the
        order one ``normal(0, ray_noise, (cars, rays))`` per observation would draw them."""
        assert self._noise is not None
        n, rays = self._noise_block.shape[1:]
        most = max(NOISE_FIRST_ROWS, NOISE_BLOCK_VALUES // (n * rays))
        self._noise_rows = min(max(2 * self._noise_rows, NOISE_FIRST_ROWS), most)
        self._noise_block = self._noise.normal(0.0, self.conditions.ray_noise,
                                               (self._noise_rows, n, rays))
        self._cond[_sim.Q_ROW] = 0.0

    # ------------------------------------------------------------------ placement
    def place(self, i: int, s: float, *, offset: float = 0.0, heading_offset_deg: float = 0.0,
              origin: float | None = None) -> None:
        """Put car i at rest, front point at progress ``s`` metres (may be negative: behind
        the line), ``offset`` metres left of the centerline; laps count from ``origin``."""
        c = self.cars[i]
        length = self._k.length
        race = c[_sim.C_RACE]
        c[:] = 0.0
        c[_sim.C_RACE] = race
        c[_sim.C_S] = s % length
        c[_sim.C_S_TOTAL] = s
        c[_sim.C_S_ORIGIN] = s if origin is None else origin
        k = self._k
        _sim.place_car(k.tseg, length, self.cars, i, s, offset,
                       heading_offset_deg * RAD_PER_DEG, self.physics)
        c[_sim.C_S_PREV] = c[_sim.C_S_TOTAL]
        self.lap_times[i] = []
        self._last_cross[i] = 0.0

    def start_grid(self, slots: Sequence[int], *, s0: float = 0.0,
                   rng: np.random.Generator | None = None) -> None:
        """Line cars up on the grid: car i in slot ``slots[i]`` behind progress ``s0``.

        Slot 0 is on the line; each further slot is ``GRID_GAP_M`` behind, alternating sides.
        A generator adds the seeded start jitter every entrant shares (within the bounds of
        the world's conditions; by default ±0.05 m across and ±2 degrees).
        """
        for i, slot in enumerate(slots):
            self.grid_place(i, slot, s0=s0, rng=rng)
        self.steps = 0
        self.observe()

    def grid_place(self, i: int, slot: int, *, s0: float = 0.0,
                   rng: np.random.Generator | None = None) -> None:
        """Put car i in grid slot ``slot`` behind progress ``s0`` (see :meth:`start_grid`)."""
        off = 0.0
        if self.num_cars > 1 and self.cfg[_sim.K_INTERACT]:
            off = GRID_OFFSET_M if slot % 2 == 0 else -GRID_OFFSET_M
        head = 0.0
        if rng is not None:
            across, heading = self.start_jitter
            off += float(rng.uniform(-across, across))
            head = float(rng.uniform(-heading, heading))
        self.place(i, s0 - slot * GRID_GAP_M, offset=off, heading_offset_deg=head, origin=s0)

    def random_start(self, i: int, rng: np.random.Generator) -> None:
        """Training start: anywhere on the track, jittered across and in heading."""
        s = float(rng.uniform(0.0, self._k.length))
        half = float(min(self.track.width_left.min(), self.track.width_right.min()))
        off = float(rng.uniform(-1.0, 1.0)) * TRAIN_OFFSET_JITTER * half
        head = float(rng.uniform(-TRAIN_HEADING_JITTER_DEG, TRAIN_HEADING_JITTER_DEG))
        self.place(i, s, offset=off, heading_offset_deg=head)

    def retire(self, i: int) -> None:
        """Take car i out of the race where it stands: parked, a ghost the others pass
        through (a car whose policy failed)."""
        self.cars[i, _sim.C_DONE] = 1.0
        self.cars[i, _sim.C_GHOST] = 1.0
        self.cars[i, _sim.C_V] = 0.0
        self.cars[i, _sim.C_FREEZE] = 0.0

    def observe(self) -> None:
        """Recompute every car's observation without moving anything."""
        k = self._k
        _sim.observe(k.tseg, k.border, k.gmeta, k.gstart, k.gitems, k.length, self._obst,
                     self.cars, self.cfg, self.physics, RAYS, LOOKAHEAD, self.obs)
        self._add_sensor_noise()

    def _add_sensor_noise(self) -> None:
        """The trial's sensor noise on every ray reading (none without conditions)."""
        if self._noise is not None and _sim.add_ray_noise(self.obs, self._noise_block,
                                                          self._cond):
            self._draw_noise()

    # ------------------------------------------------------------------ stepping
    def step(self, actions: np.ndarray) -> np.ndarray:
        """Advance one control step; ``actions`` is (num_cars, 2) float64 of (steering degrees,
        speed m/s).

        Returns the per-car event array (see ``_sim.E_*``).
        """
        if actions.shape != (self.num_cars, 2):
            raise SimulationError(f"actions must have shape ({self.num_cars}, 2), "
                                  f"got {actions.shape}")
        k = self._k
        if self._plain:
            result = _sim.step_world(k.tseg, k.border, k.gmeta, k.gstart, k.gitems, k.length,
                                     self._obst, self.cars, actions, self.cfg, self.physics,
                                     RAYS, LOOKAHEAD, self.obs, self.events)
        else:
            # The trial's conditions, in one compiled call: bias, latency, the commands kept,
            # sensor noise (see _sim.step_conditions).
            exact = actions.dtype == np.float64
            result = _sim.step_conditions(
                k.tseg, k.border, k.gmeta, k.gstart, k.gitems, k.length, self._obst, self.cars,
                actions if exact else actions.astype(np.float64), self.cfg, self.physics,
                RAYS, LOOKAHEAD, self.obs, self.events, self._cond, self._delayed,
                self._applied, self._moving, self._noise_block)
            if result & _sim.STEP_NOISE_SPENT:
                self._draw_noise()
            if not exact and not result & _sim.STEP_BAD_ACTION:
                self._record_commands(actions, self._moving != 0.0)
        if result:
            if result & _sim.STEP_BAD_ACTION:
                raise SimulationError(f"actions must be finite numbers, got {actions.tolist()}")
            self.steps += 1
            for i in np.flatnonzero(self.events[:, _sim.E_LAP]):
                self._record_lap(int(i))
        else:
            self.steps += 1
        return self.events

    def _record_commands(self, actions: np.ndarray, moving: np.ndarray) -> None:
        """Keep what the policy commanded in the cars' command state (the replay's and the
        reward ``params``' steering and speed), not what latency and bias made of it.

        ``_sim.step_conditions`` does this for float64 actions; for other dtypes it is redone
        here, in the actions' own dtype, as the arithmetic always was."""
        p = self.physics
        steer = np.clip(actions[:, 0] * RAD_PER_DEG, -p[_sim.P_MAX_STEER], p[_sim.P_MAX_STEER])
        speed = np.clip(actions[:, 1], p[_sim.P_MIN_V], p[_sim.P_MAX_V])
        self.cars[moving, _sim.C_CMD_STEER] = steer[moving]
        self.cars[moving, _sim.C_CMD_SPEED] = speed[moving]

    def _record_lap(self, i: int) -> None:
        """Time the line crossing within the step by interpolating the progress."""
        c = self.cars[i]
        target = c[_sim.C_S_ORIGIN] + c[_sim.C_LAPS] * self._k.length
        before, after = c[_sim.C_S_PREV], c[_sim.C_S_TOTAL]
        frac = 1.0 if after <= before else min(max((target - before) / (after - before), 0.0),
                                                1.0)
        t = (self.steps - 1 + frac) / car.CONTROL_HZ
        self.lap_times[i].append(float(t - self._last_cross[i]))
        self._last_cross[i] = float(t)

    # ------------------------------------------------------------------ queries
    @property
    def off_track_penalty_s(self) -> float:
        """Seconds an off-track car with race semantics is frozen for (whole steps)."""
        return float(self.cfg[_sim.K_OFF_PEN_STEPS]) / car.CONTROL_HZ

    @property
    def collision_penalty_s(self) -> float:
        """Seconds a car with race semantics blamed for a collision is frozen for."""
        return float(self.cfg[_sim.K_COL_PEN_STEPS]) / car.CONTROL_HZ

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the start."""
        return self.steps / car.CONTROL_HZ

    @property
    def length(self) -> float:
        """Track length, metres."""
        return self._k.length

    def laps(self, i: int) -> int:
        """Completed laps of car i."""
        return int(self.cars[i, _sim.C_LAPS])

    def done(self, i: int) -> bool:
        """Whether car i has completed the world's laps."""
        return bool(self.cars[i, _sim.C_DONE])

    def frozen(self, i: int) -> bool:
        """Whether car i is serving a penalty."""
        return bool(self.cars[i, _sim.C_FREEZE] > 0)

    def lap_progress(self, i: int) -> float:
        """Share of the current lap done by car i, 0 to 1 (1 once it has finished)."""
        c = self.cars[i]
        if c[_sim.C_DONE]:
            return 1.0
        length = self._k.length
        frac = float(c[_sim.C_S_TOTAL] - c[_sim.C_S_ORIGIN] - c[_sim.C_LAPS] * length) / length
        return min(max(frac, 0.0), 1.0)

    def lap_progress_all(self) -> np.ndarray:
        """:meth:`lap_progress` of every car at once (same arithmetic, as an array)."""
        c = self.cars
        length = self._k.length
        frac = (c[:, _sim.C_S_TOTAL] - c[:, _sim.C_S_ORIGIN] - c[:, _sim.C_LAPS] * length) / length
        progress: np.ndarray = np.where(c[:, _sim.C_DONE] > 0.0, 1.0, np.clip(frac, 0.0, 1.0))
        return progress

    def race_distance(self, i: int) -> float:
        """Metres of track car i has covered from its origin (negative on a back grid slot)."""
        return float(self.cars[i, _sim.C_S_TOTAL] - self.cars[i, _sim.C_S_ORIGIN])

    def heading_deg(self, i: int) -> float:
        """Car i's heading, degrees in (-180, 180]."""
        return float(self.cars[i, _sim.C_TH] * DEG_PER_RAD)

    def front_point(self, i: int) -> tuple[float, float]:
        """DeepRacer's (x, y) of car i: the point 0.14 m ahead of the rear axle."""
        return float(self.cars[i, _sim.C_FX]), float(self.cars[i, _sim.C_FY])
