"""A native batched ``paddock/TimeTrial-v0``: many independent cars in one compiled step.

``gymnasium.make_vec("paddock/TimeTrial-v0", num_envs=N)`` returns this by default; the
``sync`` and ``async`` modes still wrap single environments. Sub-environment i behaves
exactly like ``TimeTrialEnv`` reset with seed ``seed + i`` (same draws, same numbers).
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from evaluator import _sim, car, observation
from evaluator.env import OFF_TRACK_REWARD, ModelMetadata
from evaluator.env import _action_spec as action_spec
from evaluator.params import ParamsBuilder, RewardFunction, call_reward_function
from evaluator.race_settings import DEFAULT_PENALTY_S, DEFAULT_TRACK
from evaluator.track import Track
from evaluator.track_library import load_track
from evaluator.world import World


class TimeTrialVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` time trials stepped together; same rules as ``TimeTrialEnv``.

    Autoreset is NEXT_STEP: the step after an episode ends returns the new episode's first
    observation (reward 0, not terminated) and ignores that sub-environment's action.
    ``info`` holds ``laps`` and ``progress`` (share of the lap) per sub-environment.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        track: str | os.PathLike[str] | Track = DEFAULT_TRACK,
        *,
        model_metadata: ModelMetadata = None,
        reward_function: RewardFunction | None = None,
        laps: int = 1,
        off_track_penalty: float | None = None,
        time_cap: float | None = None,
        random_start: bool | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError("num_envs must be at least 1")
        self.num_envs = num_envs
        self.track = load_track(track)
        self.actions = action_spec(model_metadata)
        self.reward_function = reward_function
        self.race = off_track_penalty is not None
        self.random_start = (not self.race) if random_start is None else random_start
        self.time_cap = time_cap
        self.max_episode_steps = max_episode_steps
        self.world = World(self.track, num_envs, race=self.race,
                           off_track_penalty=(DEFAULT_PENALTY_S if off_track_penalty is None
                                              else off_track_penalty),
                           collision_penalty=DEFAULT_PENALTY_S, laps=laps, interact=False)
        self._params = ParamsBuilder(self.world, solo=True)
        low, high = observation.bounds()
        self.single_observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = self.actions.gym_space()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._phys = np.zeros((num_envs, 2))
        self._table = self.actions.physical_table() if self.actions.kind == "discrete" else None
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def _reset_one(self, i: int) -> None:
        rng = self._rngs[i]
        self.world.grid_place(i, 0, rng=rng)
        if self.random_start:
            self.world.random_start(i, rng)
        self._steps[i] = 0

    def reset(
        self, *, seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            seeds = ([seed + i for i in range(self.num_envs)] if isinstance(seed, int)
                     else list(seed))
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        for i in range(self.num_envs):
            self._reset_one(i)
        self.world.steps = 0
        self.world.observe()
        self._autoreset[:] = False
        return self.world.obs.astype(np.float32), self._info()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        w = self.world
        cars = w.cars
        restart = np.flatnonzero(self._autoreset)
        for i in restart:
            self._reset_one(int(i))
            cars[i, _sim.C_DONE] = 1.0  # parked for this step: not moved, observed afresh
        self._to_physical(np.asarray(actions))
        ev = w.step(self._phys)
        cars[restart, _sim.C_DONE] = 0.0
        self._steps += 1
        self._steps[restart] = 0
        off = ev[:, _sim.E_OFFTRACK] > 0.0
        done = cars[:, _sim.C_DONE] > 0.0
        terminated = done | (off if not self.race else False)
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            truncated |= self._steps >= self.max_episode_steps
        if self.time_cap is not None:
            truncated |= self._steps / car.CONTROL_HZ >= self.time_cap - 1e-9
        truncated &= ~terminated
        rewards = self._rewards(off)
        terminated[restart] = False
        truncated[restart] = False
        rewards[restart] = 0.0
        self._autoreset = terminated | truncated
        return w.obs.astype(np.float32), rewards, terminated, truncated, self._info()

    def _to_physical(self, actions: np.ndarray) -> None:
        if self._table is not None:
            self._phys[:] = self._table[actions.astype(np.int64).reshape(self.num_envs)]
            return
        a = actions.reshape(self.num_envs, 2).astype(np.float64)
        np.clip(a, -1.0, 1.0, out=a)
        lo, hi = self.actions.steering_range
        slo, shi = self.actions.speed_range
        self._phys[:, 0] = lo + (a[:, 0] + 1.0) * 0.5 * (hi - lo)
        self._phys[:, 1] = slo + (a[:, 1] + 1.0) * 0.5 * (shi - slo)

    def _rewards(self, off: np.ndarray) -> np.ndarray:
        cars = self.world.cars
        if self.reward_function is None:
            r = (cars[:, _sim.C_S_TOTAL] - cars[:, _sim.C_S_PREV]) / (
                car.MAX_SPEED_MPS * car.DT_S)
            r[off] = OFF_TRACK_REWARD
            return r
        return np.array([call_reward_function(self.reward_function,
                                              self._params.build(i, int(self._steps[i])))
                         for i in range(self.num_envs)])

    def _info(self) -> dict[str, Any]:
        w = self.world
        return {"laps": w.cars[:, _sim.C_LAPS].astype(np.int64),
                "progress": w.lap_progress_all()}
