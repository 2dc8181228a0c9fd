"""Exceptions raised by the evaluator package."""

from __future__ import annotations


class PaddockError(Exception):
    """Base class of every error the evaluator raises on purpose."""


class TrackError(PaddockError, ValueError):
    """Raised when a track file or track definition is malformed or unknown."""


class ActionSpaceError(PaddockError, ValueError):
    """Raised when an action space (model metadata) is malformed or out of the car's limits."""


class RewardFunctionError(PaddockError):
    """Raised when a racer's reward function fails or returns a non-finite or absurd value."""


class SimulationError(PaddockError):
    """Raised when the simulation is driven incorrectly (bad action shape, stepping when done)."""
