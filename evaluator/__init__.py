"""Paddock's simulator: tracks, the car, the Gymnasium environments and the race engine.

``import evaluator`` registers ``paddock/TimeTrial-v0`` and ``paddock/HeadToHead-v0``.
This package knows nothing of the league's database or website; it is what racers install
to train.
"""

from __future__ import annotations

import gymnasium as gym

from evaluator.version import OBSERVATION_VERSION, PADDOCK_VERSION, SIM_VERSION

__all__ = ["OBSERVATION_VERSION", "PADDOCK_VERSION", "SIM_VERSION"]

_MAX_EPISODE_STEPS = 2700  # 3 minutes of simulated time at 15 Hz


def _register() -> None:
    if "paddock/TimeTrial-v0" not in gym.registry:
        gym.register(
            id="paddock/TimeTrial-v0",
            entry_point="evaluator.env:TimeTrialEnv",
            vector_entry_point="evaluator.vector:TimeTrialVectorEnv",
            max_episode_steps=_MAX_EPISODE_STEPS,
        )
    if "paddock/HeadToHead-v0" not in gym.registry:
        gym.register(
            id="paddock/HeadToHead-v0",
            entry_point="evaluator.env:HeadToHeadEnv",
            max_episode_steps=_MAX_EPISODE_STEPS,
        )


_register()
