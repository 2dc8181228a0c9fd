"""Action spaces, declared like DeepRacer's ``model_metadata.json``.

Continuous: ``{"action_space_type": "continuous", "action_space": {"steering_angle":
{"low": -30, "high": 30}, "speed": {"low": 0.5, "high": 4}}}``. The policy outputs two values
in [-1, 1] (steering first), mapped linearly onto the ranges and clipped.

Discrete: ``{"action_space_type": "discrete", "action_space": [{"steering_angle": -30,
"speed": 1.0}, ...]}``. The policy picks one entry (an index; a network outputs one logit per
entry and the largest wins).

Steering is in degrees, positive to the left; speed in m/s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from evaluator import car
from evaluator.errors import ActionSpaceError

MIN_DISCRETE_ACTIONS = 2  # DeepRacer's smallest discrete action list
MAX_DISCRETE_ACTIONS = 30  # and its largest
DEFAULT_CONTINUOUS = {"steering_angle": {"low": -30.0, "high": 30.0},
                      "speed": {"low": 0.5, "high": 4.0}}


@dataclass(frozen=True)
class ActionSpec:
    """A validated action space: continuous ranges or a discrete list of (steering, speed)."""

    kind: str  #: "continuous" or "discrete"
    steering_range: tuple[float, float] = (-car.MAX_STEER_DEG, car.MAX_STEER_DEG)
    speed_range: tuple[float, float] = (0.5, car.MAX_SPEED_MPS)
    choices: tuple[tuple[float, float], ...] = ()  #: discrete (steering deg, speed m/s)

    @classmethod
    def continuous(cls, steering: tuple[float, float] = (-30.0, 30.0),
                   speed: tuple[float, float] = (0.5, 4.0)) -> ActionSpec:
        """A continuous space over the given steering (degrees) and speed (m/s) ranges."""
        _check_steering(steering[0])
        _check_steering(steering[1])
        _check_speed(speed[0])
        _check_speed(speed[1])
        if steering[0] >= steering[1]:
            raise ActionSpaceError(f"steering_angle low {steering[0]} must be below high "
                                   f"{steering[1]}")
        if speed[0] > speed[1]:
            raise ActionSpaceError(f"speed low {speed[0]} must not exceed high {speed[1]}")
        return cls("continuous", (float(steering[0]), float(steering[1])),
                   (float(speed[0]), float(speed[1])))

    @classmethod
    def discrete(cls, choices: Sequence[tuple[float, float]]) -> ActionSpec:
        """A discrete space over (steering degrees, speed m/s) pairs."""
        if not MIN_DISCRETE_ACTIONS <= len(choices) <= MAX_DISCRETE_ACTIONS:
            raise ActionSpaceError(
                f"a discrete action space needs {MIN_DISCRETE_ACTIONS} to "
                f"{MAX_DISCRETE_ACTIONS} actions, got {len(choices)}"
            )
        for steer, speed in choices:
            _check_steering(steer)
            _check_speed(speed)
        return cls("discrete", choices=tuple((float(a), float(b)) for a, b in choices))

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any] | None) -> ActionSpec:
        """Parse DeepRacer-style model metadata (other keys are ignored)."""
        if meta is None:
            meta = {"action_space_type": "continuous", "action_space": DEFAULT_CONTINUOUS}
        if not isinstance(meta, Mapping):
            raise ActionSpaceError("model metadata must be a JSON object")
        kind = meta.get("action_space_type")
        space = meta.get("action_space")
        if kind == "continuous":
            if not isinstance(space, Mapping):
                raise ActionSpaceError('continuous "action_space" must be an object with '
                                       '"steering_angle" and "speed" ranges')
            return cls.continuous(_range(space, "steering_angle"), _range(space, "speed"))
        if kind == "discrete":
            if not isinstance(space, list):
                raise ActionSpaceError('discrete "action_space" must be a list of '
                                       '{"steering_angle", "speed"} objects')
            pairs = []
            for n, item in enumerate(space):
                if not isinstance(item, Mapping):
                    raise ActionSpaceError(f"action {n} must be an object")
                pairs.append((_number(item, "steering_angle", f"action {n}"),
                              _number(item, "speed", f"action {n}")))
            return cls.discrete(pairs)
        raise ActionSpaceError(
            f'"action_space_type" must be "continuous" or "discrete", got {kind!r}'
        )

    def to_metadata(self) -> dict[str, Any]:
        """The DeepRacer-style metadata describing this space."""
        if self.kind == "continuous":
            return {"action_space_type": "continuous", "action_space": {
                "steering_angle": {"low": self.steering_range[0],
                                   "high": self.steering_range[1]},
                "speed": {"low": self.speed_range[0], "high": self.speed_range[1]}}}
        return {"action_space_type": "discrete", "action_space": [
            {"steering_angle": a, "speed": b} for a, b in self.choices]}

    @property
    def size(self) -> int:
        """Policy output size: 2 for continuous, one logit per action for discrete."""
        return 2 if self.kind == "continuous" else len(self.choices)

    def gym_space(self) -> gym.spaces.Box | gym.spaces.Discrete:
        """The matching Gymnasium space: Box(-1, 1, (2,)) or Discrete(n)."""
        if self.kind == "continuous":
            return gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        return gym.spaces.Discrete(len(self.choices))

    def to_physical(self, action: Any) -> tuple[float, float]:
        """Map a policy action to (steering degrees, speed m/s)."""
        if self.kind == "continuous":
            a = np.asarray(action, dtype=np.float64).reshape(-1)
            if a.shape != (2,):
                raise ActionSpaceError(f"a continuous action has 2 values, got {a.shape[0]}")
            u0, u1 = float(a[0]), float(a[1])
            if not (math.isfinite(u0) and math.isfinite(u1)):
                raise ActionSpaceError(f"action values must be finite, got {a.tolist()}")
            return self.map_unit(u0, u1)
        idx = int(action)
        if not 0 <= idx < len(self.choices):
            raise ActionSpaceError(f"discrete action {idx} out of range 0..{len(self.choices)-1}")
        return self.choices[idx]

    def map_unit(self, u0: float, u1: float) -> tuple[float, float]:
        """Map two values in [-1, 1] (clipped) linearly onto the steering and speed ranges."""
        u0 = min(max(u0, -1.0), 1.0)
        u1 = min(max(u1, -1.0), 1.0)
        lo, hi = self.steering_range
        slo, shi = self.speed_range
        return lo + (u0 + 1.0) * 0.5 * (hi - lo), slo + (u1 + 1.0) * 0.5 * (shi - slo)

    def physical_table(self) -> np.ndarray:
        """Discrete choices as an (n, 2) array of (steering degrees, speed m/s)."""
        return np.array(self.choices, dtype=np.float64).reshape(-1, 2)


def _check_steering(v: float) -> None:
    if not (math.isfinite(v) and abs(v) <= car.MAX_STEER_DEG):
        raise ActionSpaceError(f"steering_angle {v} outside -{car.MAX_STEER_DEG:g}.."
                               f"{car.MAX_STEER_DEG:g} degrees")


def _check_speed(v: float) -> None:
    if not (math.isfinite(v) and car.MIN_SPEED_MPS <= v <= car.MAX_SPEED_MPS):
        raise ActionSpaceError(f"speed {v} outside {car.MIN_SPEED_MPS:g}.."
                               f"{car.MAX_SPEED_MPS:g} m/s")


def _number(obj: Mapping[str, Any], key: str, where: str) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ActionSpaceError(f'{where}: "{key}" must be a number, got {v!r}')
    try:
        return float(v)
    except OverflowError:
        raise ActionSpaceError(f'{where}: "{key}" is too large a number') from None


def _range(space: Mapping[str, Any], key: str) -> tuple[float, float]:
    r = space.get(key)
    if not isinstance(r, Mapping):
        raise ActionSpaceError(f'continuous "action_space" needs "{key}": {{"low", "high"}}')
    return _number(r, "low", key), _number(r, "high", key)
