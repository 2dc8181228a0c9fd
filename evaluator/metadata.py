"""Model metadata: what a policy file declares about itself.

The metadata uses DeepRacer's ``model_metadata.json`` keys (``action_space_type`` and
``action_space``; ``sensor``, ``neural_network``, ``training_algorithm`` and ``version`` are
accepted and ignored) plus two optional Paddock keys: ``name`` and ``observation`` (the
observation version the policy was trained on, default the current one). It travels inside the
ONNX file as ``metadata_props["paddock"]`` (a JSON string) or beside it as a sidecar file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaluator.actions import ActionSpec
from evaluator.errors import ActionSpaceError, PolicyRejected
from evaluator.version import OBSERVATION_VERSION

METADATA_KEY = "paddock"  # the metadata_props key the JSON travels under
MAX_METADATA_BYTES = 64 * 1024  # metadata JSON larger than this is refused
MAX_NAME_CHARS = 80  # a policy's display name is cut to nothing longer
SUPPORTED_OBSERVATIONS = (OBSERVATION_VERSION,)
IGNORED_KEYS = frozenset({"sensor", "neural_network", "training_algorithm", "version",
                          "preprocess_type", "lidar_config"})
KNOWN_KEYS = frozenset({"action_space_type", "action_space", "name", "observation"}) | IGNORED_KEYS


@dataclass(frozen=True)
class ModelMetadata:
    """A policy's validated metadata."""

    action_spec: ActionSpec  #: what the policy's outputs mean
    observation: str = OBSERVATION_VERSION  #: observation version the policy expects
    name: str = ""  #: optional display name chosen by the racer

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), the form embedded by ``paddock pack``."""
        doc: dict[str, Any] = dict(self.action_spec.to_metadata())
        doc["observation"] = self.observation
        if self.name:
            doc["name"] = self.name
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def parse_metadata(source: str | bytes | Mapping[str, Any]) -> ModelMetadata:
    """Parse metadata from a JSON text or an already decoded object.

    Raises :class:`PolicyRejected` (rule ``metadata``) naming what is wrong.
    """
    if isinstance(source, str | bytes):
        size = len(source.encode() if isinstance(source, str) else source)
        if size > MAX_METADATA_BYTES:
            raise PolicyRejected("metadata", f"metadata is {size} bytes, the limit is "
                                             f"{MAX_METADATA_BYTES}")
        try:
            obj = json.loads(source)
        except (ValueError, RecursionError) as err:  # bad JSON, bad UTF-8, 5000 digits, deep
            raise PolicyRejected("metadata", f"metadata is not valid JSON: {err}") from err
    else:
        obj = source
    if not isinstance(obj, Mapping):
        raise PolicyRejected("metadata", "metadata must be a JSON object")
    try:
        spec = ActionSpec.from_metadata(obj)
    except ActionSpaceError as err:
        raise PolicyRejected("metadata", str(err)) from err
    observation = obj.get("observation", OBSERVATION_VERSION)
    if observation not in SUPPORTED_OBSERVATIONS:
        raise PolicyRejected("metadata", f'"observation" {observation!r} is not supported; '
                                         f"this version reads {', '.join(SUPPORTED_OBSERVATIONS)}")
    name = obj.get("name", "")
    if not isinstance(name, str):
        raise PolicyRejected("metadata", '"name" must be a string')
    name = " ".join(name.split())[:MAX_NAME_CHARS]
    return ModelMetadata(spec, observation, name)
