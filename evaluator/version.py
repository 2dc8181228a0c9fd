"""Version identifiers recorded with every result and replay."""

from __future__ import annotations

from importlib import metadata

try:
    PADDOCK_VERSION: str = metadata.version("paddock")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    PADDOCK_VERSION = "0.0.0+source"

#: Version of the simulation (dynamics, sensors, race rules). Bump it whenever a change could
#: alter any result for the same model, race and seed; results of different versions are never
#: compared on one leaderboard.
SIM_VERSION: str = "1"

#: Version of the observation vector layout (see :class:`evaluator.env.TimeTrialEnv`).
OBSERVATION_VERSION: str = "v1"
