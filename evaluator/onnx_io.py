"""Writing policy files: small ONNX networks from numpy weights, and embedding metadata.

``mlp_policy`` is how the demo bots and the tests build real ONNX policies without a deep
learning framework; ``pack`` is what ``paddock pack`` does to a racer's exported model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from evaluator.errors import PolicyRejected
from evaluator.metadata import METADATA_KEY, ModelMetadata
from evaluator.observation import OBS_DIM

INPUT_NAME = "obs"  # the input name the builders use (any single input name is accepted)
OUTPUT_NAME = "action"
OPSET = 17  # opset the builders write
ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu"}


def mlp_policy(layers: Sequence[tuple[np.ndarray, np.ndarray]], metadata: ModelMetadata, *,
               hidden_activation: str = "tanh", squash_output: bool | None = None,
               name: str = "policy") -> onnx.ModelProto:
    """Build a feed-forward policy: ``obs[batch, 30] -> Gemm (+activation) ... -> action``.

    ``layers`` holds (weight of shape (out, in), bias of shape (out,)) pairs. The output is
    squashed with tanh for continuous policies (so it lands in [-1, 1]) and left as logits
    for discrete ones, unless ``squash_output`` says otherwise.
    """
    if hidden_activation not in ACTIVATIONS:
        raise ValueError(f"hidden_activation must be one of {sorted(ACTIVATIONS)}")
    if squash_output is None:
        squash_output = metadata.action_spec.kind == "continuous"
    nodes, inits = [], []
    current = INPUT_NAME
    width = OBS_DIM
    for n, (w, b) in enumerate(layers):
        w = np.asarray(w, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != width or b.shape != (w.shape[0],):
            raise ValueError(f"layer {n}: weight {w.shape} / bias {b.shape} do not follow "
                             f"width {width}")
        inits += [numpy_helper.from_array(w, f"W{n}"), numpy_helper.from_array(b, f"b{n}")]
        last = n == len(layers) - 1
        out = OUTPUT_NAME if last and not squash_output else f"h{n}"
        nodes.append(helper.make_node("Gemm", [current, f"W{n}", f"b{n}"], [out], transB=1))
        if not last:
            act = f"a{n}"
            nodes.append(helper.make_node(ACTIVATIONS[hidden_activation], [out], [act]))
            out = act
        elif squash_output:
            nodes.append(helper.make_node("Tanh", [out], [OUTPUT_NAME]))
            out = OUTPUT_NAME
        current = out
        width = w.shape[0]
    if width != metadata.action_spec.size:
        raise ValueError(f"the last layer has {width} outputs, the action space needs "
                         f"{metadata.action_spec.size}")
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", OBS_DIM])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", width])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="paddock")
    model.ir_version = 8
    set_metadata(model, metadata)
    return model


def set_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Store ``metadata`` under ``metadata_props["paddock"]``, replacing any earlier entry."""
    keep = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    model.metadata_props.append(onnx.StringStringEntryProto(key=METADATA_KEY,
                                                            value=metadata.to_json()))


def pack(model_bytes: bytes, metadata: ModelMetadata) -> bytes:
    """Return the model with ``metadata`` embedded (the graph itself is untouched)."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(model_bytes)
    except Exception as err:  # protobuf raises its own DecodeError; any failure means garbage
        raise PolicyRejected("parse", f"not an ONNX model: {err}") from err
    set_metadata(model, metadata)
    packed: bytes = model.SerializeToString()
    return packed
