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


class PolicyRejected(PaddockError, ValueError):
    """Raised when a policy file or its metadata breaks a validation rule.

    ``rule`` names the rule (``size``, ``parse``, ``opset``, ``operator`` ...); the message
    says what was found and what was expected, in one line.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.detail = message


class PolicyFailed(PaddockError):
    """Raised when a running policy crashes, overruns a deadline or returns a bad action.

    ``reason`` is the one-line explanation recorded with the car's DNF.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TimeBudgetExceeded(PolicyFailed):
    """Raised when a policy has used up its inference-time budget for one evaluation.

    ``used_s`` is the time it spent answering over ``actions`` actions, ``budget_s`` its
    budget (:func:`evaluator.sandbox.inference_budget_s`); ``reason`` states all three.
    """

    def __init__(self, used_s: float, actions: int, budget_s: float) -> None:
        each_ms = 1000.0 * used_s / max(actions, 1)
        super().__init__(f"the policy used {used_s:.1f} s of inference in {actions} actions "
                         f"({each_ms:.1f} ms each), over its budget of {budget_s:g} s for "
                         "this evaluation")
        self.used_s = used_s
        self.actions = actions
        self.budget_s = budget_s


class SandboxUnavailable(PaddockError):
    """Raised when a required sandbox layer is missing and the operator made that an error."""


class ReplayError(PaddockError, ValueError):
    """Raised when bytes are not a readable replay (magic, version, truncation) or won't encode."""
