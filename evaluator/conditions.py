"""Race conditions: what varies from one trial to the next, drawn from the trial's seed.

A good policy should not depend on one exact trajectory: the same start, the same grip, the
same sensor readings every time. :class:`Conditions` bounds five variations, each drawn per
trial (per head-to-head round: every car of a heat meets the same) from the trial seed, so an
evaluation stays deterministic: same model, same race, same seed, same result.

=====================  ==========================================================  ===========
name                   what varies, per trial                                      bounds
=====================  ==========================================================  ===========
``start_offset_m``     the car's start position across the track: uniform within    0 to 0.3 m
                       ± this of its grid slot
``start_heading_deg``  the start heading: uniform within ± this of the track         0 to 20°
                       direction
``ray_noise``          Gaussian noise on every ray reading (observation 0-21),      0 to 0.1
                       standard deviation as a share of the 5 m range, clipped to
                       [0, 1]; drawn afresh every step
``grip_pct``           the tyres' grip (lateral acceleration limit): uniform        0 to 25 %
                       within ± this percentage of the car's 5 m/s²
``latency_steps``      actuation latency: a command takes effect this many control  0 to 2
                       steps (1/15 s each) late, drawn from 0 to this
``steering_bias_deg``  a steering offset the servo adds to every command: uniform   0 to 5°
                       within ± this
=====================  ==========================================================  ===========

Presets (:data:`PRESETS`): ``none`` is the simulator as it was before conditions existed (the
small start jitter every entrant shared, nothing else), bit for bit; ``standard`` is what new
races and ``paddock evaluate`` use; ``hard`` is for organizers who want to test robustness.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from evaluator.errors import PaddockError


class Preset(enum.StrEnum):
    """A named set of race conditions."""

    NONE = "none"
    STANDARD = "standard"
    HARD = "hard"


CUSTOM = "custom"  #: the name of conditions that match no preset
DEFAULT_PRESET = Preset.STANDARD  #: what new races and ``paddock evaluate`` use
_CONDITIONS_KEY = 0x636F6E64  # "cond": the draw's own stream, apart from the trial's

#: Each variation's inclusive bounds.
LIMITS: dict[str, tuple[float, float]] = {
    "start_offset_m": (0.0, 0.3), "start_heading_deg": (0.0, 20.0), "ray_noise": (0.0, 0.1),
    "grip_pct": (0.0, 25.0), "latency_steps": (0, 2), "steering_bias_deg": (0.0, 5.0),
}
#: What each variation is called on the site, and its unit.
LABELS: dict[str, tuple[str, str]] = {
    "start_offset_m": ("Start position", "± m across"),
    "start_heading_deg": ("Start heading", "± degrees"),
    "ray_noise": ("Sensor noise", "σ, share of the 5 m range"),
    "grip_pct": ("Grip", "± %"),
    "latency_steps": ("Actuation latency", "0 to n control steps"),
    "steering_bias_deg": ("Steering bias", "± degrees"),
}


class ConditionsError(PaddockError, ValueError):
    """Raised when race conditions are out of bounds or unknown."""


@dataclass(frozen=True)
class TrialConditions:
    """The conditions of one trial, as drawn: what the world applies."""

    grip_factor: float = 1.0  #: the car's grip is multiplied by this
    latency_steps: int = 0  #: control steps between a command and its effect
    steering_bias_deg: float = 0.0  #: added to every steering command
    ray_noise: float = 0.0  #: standard deviation of the noise on ray readings
    noise_seed: int = 0  #: seeds the per-step sensor noise

    @property
    def neutral(self) -> bool:
        """Whether nothing varies (the world then runs exactly as without conditions)."""
        return (self.grip_factor == 1.0 and self.latency_steps == 0
                and self.steering_bias_deg == 0.0 and self.ray_noise == 0.0)

    def describe(self) -> str:
        """The draw in a few words: ``grip 97 %, latency 1 step, steering +0.4°, noise σ
        0.02`` (``as without conditions`` when neutral)."""
        if self.neutral:
            return "as without conditions"
        steps = "step" if self.latency_steps == 1 else "steps"
        parts = [f"grip {self.grip_factor * 100:.0f} %", f"latency {self.latency_steps} {steps}",
                 f"steering {self.steering_bias_deg:+.1f}°"]
        if self.ray_noise:
            parts.append(f"noise σ {self.ray_noise:g}")
        return ", ".join(parts)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConditions:
        """The draw a result's JSON holds (:meth:`to_dict`)."""
        return cls(grip_factor=float(values["grip_factor"]),
                   latency_steps=int(values["latency_steps"]),
                   steering_bias_deg=float(values["steering_bias_deg"]),
                   ray_noise=float(values["ray_noise"]))

    def to_dict(self) -> dict[str, Any]:
        """The drawn values, rounded for a result's JSON."""
        return {"grip_factor": round(self.grip_factor, 6), "latency_steps": self.latency_steps,
                "steering_bias_deg": round(self.steering_bias_deg, 6),
                "ray_noise": self.ray_noise}


@dataclass(frozen=True)
class Conditions:
    """The bounds of what varies between trials (see the module docstring)."""

    start_offset_m: float = 0.05
    start_heading_deg: float = 2.0
    ray_noise: float = 0.0
    grip_pct: float = 0.0
    latency_steps: int = 0
    steering_bias_deg: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            lo, hi = LIMITS[f.name]
            whole = isinstance(lo, int)
            ok = (not isinstance(value, bool) and isinstance(value, int if whole else int | float)
                  and math.isfinite(value) and lo <= value <= hi)
            if not ok:
                kind = "a whole number" if whole else "a number"
                raise ConditionsError(f"{f.name} must be {kind} from {lo:g} to {hi:g}, "
                                      f"got {value!r}")

    @property
    def name(self) -> str:
        """The preset these conditions are, or ``custom``."""
        return next((str(p) for p, c in PRESETS.items() if c == self), CUSTOM)

    def describe(self) -> str:
        """The conditions in a line: ``standard: start ±0.15 m and ±6°, sensor noise σ 0.02,
        grip ±5 %, latency 0-1 steps, steering bias ±1°``."""
        parts = [f"start ±{self.start_offset_m:g} m and ±{self.start_heading_deg:g}°"]
        if self.ray_noise:
            parts.append(f"sensor noise σ {self.ray_noise:g}")
        if self.grip_pct:
            parts.append(f"grip ±{self.grip_pct:g} %")
        if self.latency_steps:
            parts.append(f"latency 0-{self.latency_steps} steps")
        if self.steering_bias_deg:
            parts.append(f"steering bias ±{self.steering_bias_deg:g}°")
        if len(parts) == 1:
            parts.append("nothing else varies")
        return f"{self.name}: {', '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        """``{"preset": name, ...every bound}``: the JSON of a race's settings."""
        return {"preset": self.name, **asdict(self)}

    def draw(self, trial_seed: int) -> TrialConditions:
        """The conditions of the trial (head-to-head round) with seed ``trial_seed``.

        Drawn from their own stream of the seed, so the trial's start and obstacles are the
        same draws as without conditions; the neutral draw takes no numbers at all.
        """
        if self.ray_noise == 0 and self.grip_pct == 0 and self.latency_steps == 0 \
                and self.steering_bias_deg == 0:
            return TrialConditions()
        rng = np.random.default_rng([trial_seed, _CONDITIONS_KEY])
        grip = 1.0 + float(rng.uniform(-1.0, 1.0)) * self.grip_pct / 100.0
        latency = int(rng.integers(0, self.latency_steps + 1))
        bias = float(rng.uniform(-1.0, 1.0)) * self.steering_bias_deg
        noise_seed = int(rng.integers(0, 2**32))
        return TrialConditions(grip, latency, bias, float(self.ray_noise), noise_seed)

    @classmethod
    def parse(cls, value: Conditions | str | dict[str, Any] | None) -> Conditions:
        """Conditions from a preset name, a dict (``{"preset": ..., <bound>: value, ...}``:
        the preset's bounds with the given ones changed; ``custom`` starts from ``none``), or
        None (``none``, the conditions of settings stored before conditions existed)."""
        if value is None:
            return PRESETS[Preset.NONE]
        if isinstance(value, Conditions):
            return value
        if isinstance(value, str):
            if value not in PRESETS:
                raise ConditionsError(f"conditions must be one of {', '.join(PRESETS)} "
                                      f"(or a dict of values), got {value!r}")
            return PRESETS[Preset(value)]
        if not isinstance(value, dict):
            raise ConditionsError(f"conditions must be a preset name or a dict, got {value!r}")
        rest = dict(value)
        preset = rest.pop("preset", CUSTOM)
        unknown = sorted(set(rest) - set(LIMITS))
        if unknown:
            raise ConditionsError(f"unknown race conditions: {', '.join(unknown)} "
                                  f"(known: {', '.join(LIMITS)})")
        base = PRESETS[Preset.NONE] if preset == CUSTOM else cls.parse(preset)
        return cls(**{**asdict(base), **rest})


#: The presets, mildest first.
PRESETS: dict[str, Conditions] = {
    Preset.NONE: Conditions(),
    Preset.STANDARD: Conditions(start_offset_m=0.15, start_heading_deg=6.0, ray_noise=0.02,
                                grip_pct=5.0, latency_steps=1, steering_bias_deg=1.0),
    Preset.HARD: Conditions(start_offset_m=0.25, start_heading_deg=12.0, ray_noise=0.05,
                            grip_pct=12.0, latency_steps=2, steering_bias_deg=3.0),
}
