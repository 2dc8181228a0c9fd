"""Gymnasium environments: ``paddock/TimeTrial-v0`` and ``paddock/HeadToHead-v0``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from evaluator import _sim, car, observation
from evaluator.actions import ActionSpec
from evaluator.conditions import PRESETS, Conditions, ConditionsError, Preset
from evaluator.drivers import Driver, PurePursuitDriver
from evaluator.errors import SimulationError
from evaluator.params import ParamsBuilder, RewardFunction, call_reward_function
from evaluator.race_settings import DEFAULT_PENALTY_S, DEFAULT_TRACK
from evaluator.track import Track
from evaluator.track_library import load_track
from evaluator.world import Obstacle, World, spread_obstacles

MAX_EPISODE_STEPS = 2700  # registered step limit: 3 minutes of simulated time
OFF_TRACK_REWARD = -1.0  # default reward on the step a car leaves the track or crashes
DEFAULT_OPPONENT_SPEEDS = (1.6, 2.2)  # built-in opponents' top speeds, m/s

Opponent = Driver | Callable[[np.ndarray], Any]
ConditionsArg = Conditions | str | dict[str, Any] | None
ModelMetadata = Mapping[str, Any] | str | os.PathLike[str] | ActionSpec | None


def _action_spec(model_metadata: ModelMetadata) -> ActionSpec:
    if isinstance(model_metadata, ActionSpec):
        return model_metadata
    if isinstance(model_metadata, str | os.PathLike):
        return ActionSpec.from_metadata(json.loads(Path(model_metadata).read_text("utf-8")))
    return ActionSpec.from_metadata(model_metadata)


class _RacingEnv(gym.Env[np.ndarray, Any]):
    """What both environments share; see their docstrings for the specification."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": car.CONTROL_HZ}

    def __init__(
        self,
        track: str | os.PathLike[str] | Track,
        num_cars: int,
        *,
        model_metadata: ModelMetadata,
        reward_function: RewardFunction | None,
        laps: int,
        off_track_penalty: float | None,
        collision_penalty: float | None,
        time_cap: float | None,
        random_start: bool | None,
        obstacles: int,
        conditions: ConditionsArg,
        render_mode: str | None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        if laps < 1:
            raise ValueError("laps must be at least 1")
        if obstacles < 0:
            raise ValueError("obstacles must be >= 0")
        self.track = load_track(track)
        self.actions = _action_spec(model_metadata)
        self.reward_function = reward_function
        self.laps = laps
        self.race = off_track_penalty is not None
        self.time_cap = time_cap
        self.random_start = (not self.race) if random_start is None else random_start
        self.num_obstacles = obstacles
        try:
            self.conditions = Conditions.parse(conditions)
        except ConditionsError as err:
            raise ValueError(str(err)) from err
        self.render_mode = render_mode
        self._off_pen = off_track_penalty
        self._col_pen = collision_penalty
        self.num_cars = num_cars
        self.action_space = self.actions.gym_space()
        low, high = observation.bounds()
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._acts = np.zeros((num_cars, 2))
        self._renderer: Any = None
        self.world = self._make_world([])
        self._params = ParamsBuilder(self.world)
        self._steps = 0
        self._ended = True
        self._status = "prepare"

    # -------------------------------------------------------------- construction
    def _make_world(self, obstacles: Sequence[Obstacle]) -> World:
        pen = DEFAULT_PENALTY_S if self._off_pen is None else self._off_pen
        col = self._col_pen if self._col_pen is not None else DEFAULT_PENALTY_S
        race = [self.race] + [True] * (self.num_cars - 1)
        return World(self.track, self.num_cars, race=race, off_track_penalty=pen,
                     collision_penalty=col, laps=self.laps, obstacles=obstacles)

    # -------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.num_obstacles:
            self.world = self._make_world(spread_obstacles(self.track, self.num_obstacles,
                                                            self.np_random))
            self._params = ParamsBuilder(self.world)
        self._draw_conditions()
        self._start()
        self._steps = 0
        self._ended = False
        self._status = "prepare"
        self._reset_opponents()
        return self.world.obs[0].astype(np.float32), self._info(self._params.build(0, 0))

    def _draw_conditions(self) -> None:
        """This episode's race conditions, drawn from ``np_random`` (with ``none``, nothing is
        drawn: the episode's other draws are as they were before conditions existed)."""
        if self.conditions == PRESETS[Preset.NONE]:
            return
        self.world.set_conditions(self.conditions,
                                  self.conditions.draw(int(self.np_random.integers(0, 2**32))))

    def _start(self) -> None:
        self.world.start_grid([0], rng=self.np_random)
        if self.random_start:
            self.world.random_start(0, self.np_random)
            self.world.observe()

    def _reset_opponents(self) -> None:
        """Hook for environments with opponents."""

    def _opponent_actions(self) -> None:
        """Hook for environments with opponents: fill ``self._acts[1:]``."""

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._ended:
            raise SimulationError("the episode has ended; call reset() before step()")
        if self.actions.kind == "continuous":
            a = np.asarray(action).reshape(-1)
            if a.shape != (2,):
                raise SimulationError(f"expected a continuous action of 2 values, got {action!r}")
            self._acts[0] = self.actions.map_unit(float(a[0]), float(a[1]))
        else:
            self._acts[0] = self.actions.to_physical(action)
        if self.num_cars > 1:
            self._opponent_actions()
        w = self.world
        ev = w.step(self._acts)
        self._steps += 1
        params = self._params.build(0, self._steps)
        off = bool(ev[0, _sim.E_OFFTRACK])
        crash = bool(ev[0, _sim.E_BLAME]) if self.race else bool(ev[0, _sim.E_CRASH])
        terminated = w.done(0) or (not self.race and (off or crash))
        truncated = (not terminated and self.time_cap is not None
                     and w.sim_time >= self.time_cap - 1e-9)
        if self.reward_function is not None:
            reward = call_reward_function(self.reward_function, params)
        elif off or crash:
            reward = OFF_TRACK_REWARD
        else:
            c = w.cars[0]
            reward = (c[_sim.C_S_TOTAL] - c[_sim.C_S_PREV]) / (car.MAX_SPEED_MPS * car.DT_S)
        self._status = _status(w, ev, off, crash, terminated, truncated)
        self._ended = terminated or truncated
        return (w.obs[0].astype(np.float32), float(reward), terminated, truncated,
                self._info(params))

    def _info(self, params: dict[str, Any]) -> dict[str, Any]:
        w = self.world
        return {
            "params": params,
            "episode_status": self._status,
            "laps": w.laps(0),
            "lap_times": list(w.lap_times[0]),
            "sim_time": w.sim_time,
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from evaluator.render import CarPose, Renderer

        if self._renderer is None:
            self._renderer = Renderer(self.track)
        cars = [CarPose(float(c[_sim.C_X]), float(c[_sim.C_Y]), float(c[_sim.C_TH]), i)
                for i, c in enumerate(self.world.cars)]
        obst = [(o.x, o.y, o.radius) for o in self.world.obstacles]
        frame: np.ndarray = self._renderer.frame(cars, obst)
        return frame


def _status(w: World, ev: np.ndarray, off: bool, crash: bool, terminated: bool,
            truncated: bool) -> str:
    """DeepRacer's episode_status for the ego car after a step."""
    if w.done(0):
        return "lap_complete"
    if off:
        return "off_track"
    if crash:
        return "crashed"
    if truncated:
        return "time_up"
    if w.frozen(0):
        return "pause"
    if ev[0, _sim.E_LAP]:
        return "lap_complete"
    return "in_progress"


class TimeTrialEnv(_RacingEnv):
    """One car against the clock on a Paddock track.

    ## Description
    A 1/18-scale car (wheelbase 0.165 m, speed 0.1-4 m/s, steering +-30 degrees) drives a
    closed track 1.07 m wide, controlled at 15 Hz like DeepRacer. The physics is a kinematic
    bicycle with steering-rate, acceleration and braking limits and a grip limit of 5 m/s^2
    lateral: ask for more and the car runs wide and scrubs speed, so cornering speed is a real
    trade-off. The simulation is deterministic: the same actions from the same seed give the
    same numbers, bit for bit, on any machine.

    ## Action Space
    Declared like DeepRacer's ``model_metadata.json`` (``model_metadata=``):

    * continuous (default): ``Box(-1, 1, (2,), float32)``; element 0 maps linearly onto the
      steering range (default -30..30 degrees, positive left), element 1 onto the speed range
      (default 0.5..4 m/s); values outside [-1, 1] are clipped.
    * discrete: ``Discrete(n)``, action k is the k-th ``{"steering_angle", "speed"}`` pair.

    The action is a command: the steering servo turns at most 360 degrees/s and the car
    accelerates at most 3.5 m/s^2 and brakes at most 6 m/s^2 toward the commanded speed.

    ## Observation Space
    ``Box(float32, (30,))``, observation version ``v1``:

    ======  ===============================================  ====================  =======
    index   meaning                                          unit, scaling         bounds
    ======  ===============================================  ====================  =======
    0-10    distance to the track border along 11 rays at    m / 5 m               [0, 1]
            -90, -72, ..., 72, 90 degrees from the heading
            (negative: right)
    11-21   distance to the nearest car or obstacle, same    m / 5 m (1: nothing)  [0, 1]
            rays
    22      speed                                            m/s / 4               [0, 1]
    23      actual steering angle, positive left             degrees / 30          [-1, 1]
    24      heading relative to the track direction,         radians / pi          [-1, 1]
            positive left
    25      lateral offset of the front point, positive      m / half width on     [-3, 3]
            left                                             that side
    26-29   track curvature 0.5, 1, 2, 4 m ahead, positive   1/m x 0.5 m           [-1, 1]
            left
    ======  ===============================================  ====================  =======

    Rays start at the car's front point, 0.14 m ahead of the rear axle (DeepRacer's x, y).

    ## Rewards
    With ``reward_function=f``, the reward is ``f(params)`` where ``params`` is DeepRacer's
    dictionary (also in ``info["params"]``): a racer's DeepRacer reward function runs
    unchanged. It must return a finite number within +-1e5, else
    :class:`~evaluator.errors.RewardFunctionError`. Without one, the reward is the progress
    along the centerline during the step divided by the distance covered in a step at 4 m/s
    (1.0 is flat out along the track; going backwards is negative), and -1 on the step the
    car leaves the track.

    ## Starting State
    Training (default): anywhere on the track (uniform along the centerline from
    ``np_random``), up to half the half-width off the centerline and +-10 degrees off the
    track direction, at rest. Race semantics (``off_track_penalty`` given) or
    ``random_start=False``: on the start line, with the seeded jitter every entrant shares
    (by default +-0.05 m across, +-2 degrees; see Race Conditions).

    ## Race Conditions
    ``conditions`` makes episodes differ the way league trials do (``evaluator.conditions``
    has the table): ``"none"`` (default: nothing varies but the start jitter above),
    ``"standard"`` (what new league races use: +-0.15 m and +-6 degrees at the start, sensor
    noise of sigma 0.02 on the ray readings, grip +-5 %, 0 to 1 control step of actuation
    latency, steering bias +-1 degree), ``"hard"``, or a dict of bounds (``{"preset":
    "standard", "grip_pct": 10}``). Each episode draws its own conditions from its seed at
    ``reset()``: training with ``"standard"`` is domain randomisation, and a policy trained so
    meets league trials it was prepared for.

    ## Episode End
    Terminated when the car has completed ``laps`` laps, or, with training semantics, when
    it goes off track (all four wheels outside the track). With race semantics
    (``off_track_penalty=seconds``) an off-track car instead freezes for the penalty while the
    clock runs and is put back on the centerline at the progress it had, facing the track
    direction. Truncated at ``time_cap`` seconds of simulated time if given, and by the
    registered limit of 2,700 steps (3 minutes).

    ## Info
    ``params`` (DeepRacer's 26 keys), ``episode_status`` (``prepare``, ``in_progress``,
    ``off_track``, ``crashed``, ``lap_complete``, ``pause``, ``time_up``), ``laps``,
    ``lap_times`` (seconds, interpolated to the moment the line is crossed), ``sim_time``.

    ## Arguments
    ``track`` library name, imported name or ``.npy``/``.csv`` path (default ``"oval"``);
    ``model_metadata`` dict, path to ``model_metadata.json`` or ``ActionSpec``;
    ``reward_function``; ``laps`` (default 1); ``off_track_penalty`` seconds or None for
    training semantics; ``time_cap`` seconds; ``random_start``; ``obstacles`` (number of
    static boxes placed from the seed); ``conditions`` (see Race Conditions); ``render_mode``
    (``"rgb_array"``).

    ## Version History
    * v0: initial release (simulation version 1, observation version v1).
    """

    def __init__(
        self,
        track: str | os.PathLike[str] | Track = DEFAULT_TRACK,
        *,
        model_metadata: ModelMetadata = None,
        reward_function: RewardFunction | None = None,
        laps: int = 1,
        off_track_penalty: float | None = None,
        time_cap: float | None = None,
        random_start: bool | None = None,
        obstacles: int = 0,
        conditions: ConditionsArg = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            track, 1, model_metadata=model_metadata, reward_function=reward_function, laps=laps,
            off_track_penalty=off_track_penalty, collision_penalty=off_track_penalty,
            time_cap=time_cap, random_start=random_start, obstacles=obstacles,
            conditions=conditions, render_mode=render_mode,
        )


class HeadToHeadEnv(_RacingEnv):
    """The ego car races opponents on track at the same time, sensing and touching them.

    ## Description
    The physics, track and observation are those of ``paddock/TimeTrial-v0`` (its docstring
    is the reference); here other cars share the track. Object rays (observation 11-21) see
    them, ``params`` lists them as objects, and cars collide (each car's body is two discs of
    0.10 m radius). The car that hits another from behind gets the blame: with race
    semantics it freezes for the collision penalty and passes through other cars until it is
    clear of them; with training semantics a crash ends the ego's episode.

    ## Action Space
    As ``paddock/TimeTrial-v0``: continuous ``Box(-1, 1, (2,))`` or ``Discrete(n)`` from
    ``model_metadata``.

    ## Observation Space
    As ``paddock/TimeTrial-v0``: ``Box(float32, (30,))``, version ``v1``; object rays report
    the other cars and obstacles.

    ## Rewards
    As ``paddock/TimeTrial-v0``: ``reward_function(params)`` if given, else progress, with -1
    on the step the ego leaves the track or is blamed for a collision.

    ## Starting State
    A grid behind the start line (training: behind a random point of the track): slots
    0.6 m apart, alternating 0.22 m left and right. The ego's slot is ``start_slot``, or drawn
    from ``np_random`` when None; the opponents fill the other slots in order.

    ## Episode End
    Terminated when the ego completes ``laps`` laps, or with training semantics when it goes
    off track or is blamed for a collision. Truncated by ``time_cap`` and the registered limit
    of 2,700 steps. Opponents always race with race semantics (frozen, then back on track).

    ## Arguments
    As ``paddock/TimeTrial-v0``, plus ``opponents``: a list of drivers, each either a built-in
    :class:`~evaluator.drivers.Driver` or a callable taking that car's own observation
    (float32, shape (30,)) and returning (steering degrees, speed m/s); default two built-in
    pure-pursuit drivers at 1.6 and 2.2 m/s. ``collision_penalty`` seconds (default: the
    off-track penalty); ``start_slot``.

    ## Version History
    * v0: initial release (simulation version 1, observation version v1).
    """

    def __init__(
        self,
        track: str | os.PathLike[str] | Track = DEFAULT_TRACK,
        *,
        opponents: Sequence[Opponent] | None = None,
        model_metadata: ModelMetadata = None,
        reward_function: RewardFunction | None = None,
        laps: int = 1,
        off_track_penalty: float | None = None,
        collision_penalty: float | None = None,
        time_cap: float | None = None,
        random_start: bool | None = None,
        start_slot: int | None = None,
        obstacles: int = 0,
        conditions: ConditionsArg = None,
        render_mode: str | None = None,
    ) -> None:
        if opponents is None:
            opponents = [PurePursuitDriver(max_speed=v) for v in DEFAULT_OPPONENT_SPEEDS]
        if not opponents:
            raise ValueError("a head-to-head needs at least one opponent")
        self.opponents = list(opponents)
        if start_slot is not None and not 0 <= start_slot <= len(self.opponents):
            raise ValueError(f"start_slot must be 0..{len(self.opponents)}")
        self.start_slot = start_slot
        super().__init__(
            track, 1 + len(self.opponents), model_metadata=model_metadata,
            reward_function=reward_function, laps=laps, off_track_penalty=off_track_penalty,
            collision_penalty=(collision_penalty if collision_penalty is not None
                               else off_track_penalty),
            time_cap=time_cap, random_start=random_start, obstacles=obstacles,
            conditions=conditions, render_mode=render_mode,
        )

    def _start(self) -> None:
        n = self.num_cars
        ego = (int(self.np_random.integers(0, n)) if self.start_slot is None
               else self.start_slot)
        others = [s for s in range(n) if s != ego]
        s0 = float(self.np_random.uniform(0.0, self.track.length)) if self.random_start else 0.0
        self.world.start_grid([ego, *others], s0=s0, rng=self.np_random)

    def _reset_opponents(self) -> None:
        for opp in self.opponents:
            if isinstance(opp, Driver):
                opp.reset(self.world)

    def _opponent_actions(self) -> None:
        w = self.world
        for j, opp in enumerate(self.opponents, start=1):
            if isinstance(opp, Driver):
                self._acts[j] = opp.act(w, j)
            else:
                steer, speed = opp(w.obs[j].astype(np.float32))
                self._acts[j] = (float(steer), float(speed))
