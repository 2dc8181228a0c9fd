"""Static validation of an uploaded policy file, on its bytes only.

Nothing here runs the model. The checks are ordered cheapest first so a hostile file is
refused before anything expensive happens: size, parse, versions and domains, functions and
subgraphs, node and initializer caps, the operator allow-list, the input/output signature,
the metadata, and last a strict shape inference in which every intermediate tensor must be
static and small. ``onnx.checker`` runs too, but only as one more filter: it is not a security
check on its own. Each refusal raises :class:`PolicyRejected` naming the rule that failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto

from evaluator.errors import PolicyRejected
from evaluator.metadata import MAX_METADATA_BYTES, METADATA_KEY, ModelMetadata, parse_metadata
from evaluator.observation import OBS_DIM

MAX_MODEL_BYTES = 16 * 1024 * 1024  # an upload larger than this is refused unread
MIN_IR_VERSION, MAX_IR_VERSION = 4, 11  # ONNX IR versions the runtime loads
MIN_OPSET, MAX_OPSET = 9, 22  # default-domain opsets accepted
MAX_NODES = 4096  # policies are small networks; a graph with more nodes is refused
MAX_INITIALIZER_ELEMENTS = 4_000_000  # weights in all initializers and constants together
MAX_TENSOR_ELEMENTS = 1_000_000  # largest intermediate tensor (after inference, batch 1)
MAX_TOTAL_INTERMEDIATE_ELEMENTS = 8_000_000  # all intermediate tensors together
MAX_METADATA_PROPS = 32  # metadata_props entries
DEFAULT_DOMAINS = ("", "ai.onnx")

#: The operators a driving policy may use: feed-forward, convolutional and recurrent networks.
#: Control flow (``Loop``, ``If``, ``Scan``), data-dependent shapes (``NonZero``, ``Range``)
#: and allocation by value (``ConstantOfShape``, ``Expand``, ``Tile``, ``Resize``, ``Pad``)
#: are left out on purpose.
ALLOWED_OPS = frozenset({
    # linear algebra and arithmetic
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Reciprocal", "Pow",
    "Exp", "Log", "Min", "Max", "Sum", "Mean", "Clip", "Floor", "Ceil", "Round", "Sign",
    # activations
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Tanh", "Sigmoid", "HardSigmoid",
    "HardSwish", "Softplus", "Softsign", "Gelu", "Erf", "Mish", "ThresholdedRelu",
    "Softmax", "LogSoftmax",
    # normalisation
    "BatchNormalization", "LayerNormalization", "InstanceNormalization",
    "GroupNormalization", "Dropout",
    # shape and layout (every result shape is checked static and small below)
    "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split",
    "Slice", "Gather", "Shape", "Cast", "Constant",
    # reductions
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ArgMax",
    # convolutional
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    # recurrent
    "LSTM", "GRU", "RNN",
})

_DTYPE_SIZE: dict[int, int] = {TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.INT64: 8,
               TensorProto.INT32: 4, TensorProto.FLOAT16: 2, TensorProto.BOOL: 1,
               TensorProto.INT8: 1, TensorProto.UINT8: 1}
_TYPED_FIELDS = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data",
                 "string_data")


@dataclass(frozen=True)
class ValidatedPolicy:
    """A policy file that passed every static rule, with what the sandbox needs to run it."""

    data: bytes  #: the file exactly as uploaded
    sha256: str  #: hex digest of ``data``
    metadata: ModelMetadata  #: action space, observation version, name
    input_name: str  #: the single graph input
    input_shape: tuple[int, ...]  #: (30,) or (1, 30): the shape the sandbox feeds
    output_name: str  #: the single graph output
    output_size: int  #: 2 (continuous) or the number of discrete actions
    output_shape: tuple[int, ...]  #: (size,) or (1, size): the shape the model returns
    ir_version: int
    opset: int
    node_count: int
    parameter_count: int  #: elements in initializers and constants
    ops: tuple[str, ...]  #: operator types used, sorted

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (what ``paddock validate --json`` prints)."""
        spec = self.metadata.action_spec
        return {"sha256": self.sha256, "bytes": len(self.data), "name": self.metadata.name,
                "observation": self.metadata.observation, "action_space_type": spec.kind,
                "action_space": spec.to_metadata()["action_space"],
                "input": {"name": self.input_name, "shape": list(self.input_shape)},
                "output": {"name": self.output_name, "size": self.output_size},
                "ir_version": self.ir_version, "opset": self.opset,
                "nodes": self.node_count, "parameters": self.parameter_count,
                "ops": list(self.ops)}


def validate_policy(data: bytes, metadata: str | bytes | Mapping[str, Any] | None = None
                    ) -> ValidatedPolicy:
    """Check a policy file's bytes against every rule; ``metadata`` is an optional sidecar.

    A sidecar, when given, takes the place of metadata embedded in the file.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PolicyRejected("parse", "a policy is given as bytes, not a path")
    data = bytes(data)
    if not data:
        raise PolicyRejected("parse", "the file is empty")
    if len(data) > MAX_MODEL_BYTES:
        raise PolicyRejected("size", f"the file is {len(data):,} bytes, the limit is "
                                     f"{MAX_MODEL_BYTES:,}")
    model = _parse(data)
    opset = _check_versions(model)
    graph = model.graph
    if model.functions:
        raise PolicyRejected("functions", f"model-local functions are not allowed "
                                          f"({model.functions[0].name!r})")
    if len(graph.node) > MAX_NODES:
        raise PolicyRejected("nodes", f"{len(graph.node):,} nodes, the limit is {MAX_NODES:,}")
    if graph.sparse_initializer:
        raise PolicyRejected("initializer", "sparse initializers are not allowed")
    params = _check_tensors(graph)
    ops = _check_nodes(graph)
    meta = _metadata(model, metadata)
    in_name, in_shape, out_name, out_shape = _check_signature(graph, meta)
    _check_inferred_shapes(model, in_name, in_shape)
    return ValidatedPolicy(data, hashlib.sha256(data).hexdigest(), meta, in_name, in_shape,
                           out_name, out_shape[-1], out_shape, model.ir_version, opset,
                           len(graph.node), params, tuple(sorted(ops)))


def _parse(data: bytes) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise PolicyRejected("parse", f"not an ONNX model ({err})") from err
    if not model.HasField("graph") or not model.graph.output:
        raise PolicyRejected("parse", "not an ONNX model (no graph with outputs)")
    return model


def _check_versions(model: onnx.ModelProto) -> int:
    if not MIN_IR_VERSION <= model.ir_version <= MAX_IR_VERSION:
        raise PolicyRejected("ir_version", f"IR version {model.ir_version} is outside "
                                           f"{MIN_IR_VERSION}..{MAX_IR_VERSION}")
    opset = None
    for imp in model.opset_import:
        if imp.domain not in DEFAULT_DOMAINS:
            raise PolicyRejected("domain", f"operator domain {imp.domain!r} is not allowed; "
                                           "only the default ONNX domain is")
        opset = int(imp.version)
    if opset is None:
        raise PolicyRejected("opset", "the model declares no default-domain opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise PolicyRejected("opset", f"opset {opset} is outside {MIN_OPSET}..{MAX_OPSET}")
    return opset


def _tensors(graph: onnx.GraphProto) -> Iterator[tuple[str, TensorProto]]:
    for t in graph.initializer:
        yield f"initializer {t.name!r}", t
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                yield f"constant in node {node.name or node.op_type!r}", attr.t
            elif attr.type == AttributeProto.TENSORS:
                for t in attr.tensors:
                    yield f"tensor attribute of node {node.name or node.op_type!r}", t
            elif attr.type == AttributeProto.SPARSE_TENSOR or attr.HasField("sparse_tensor"):
                raise PolicyRejected("initializer", "sparse tensors are not allowed")


def _check_tensors(graph: onnx.GraphProto) -> int:
    """Refuse external data and tensors whose stored bytes disagree with their shape."""
    total = 0
    for where, t in _tensors(graph):
        if t.data_location == TensorProto.EXTERNAL or t.external_data:
            raise PolicyRejected("external_data", f"{where} points at external data; "
                                                  "weights must be inside the file")
        if any(d < 0 for d in t.dims):
            raise PolicyRejected("initializer", f"{where} has a negative dimension")
        count = 1
        for d in t.dims:
            count *= int(d)
            if count > MAX_INITIALIZER_ELEMENTS:
                break
        total += count
        if total > MAX_INITIALIZER_ELEMENTS:
            raise PolicyRejected("initializer", f"more than {MAX_INITIALIZER_ELEMENTS:,} "
                                                f"weight elements ({where})")
        if t.data_type == TensorProto.STRING:
            raise PolicyRejected("initializer", f"{where} holds strings")
        if t.raw_data:
            size = _DTYPE_SIZE.get(int(t.data_type))
            if size is None:
                raise PolicyRejected("initializer", f"{where} has unsupported element type "
                                                    f"{TensorProto.DataType.Name(t.data_type)}")
            if len(t.raw_data) != count * size:
                raise PolicyRejected("initializer", f"{where} declares {count:,} elements but "
                                                    f"stores {len(t.raw_data):,} bytes")
        else:
            stored = sum(len(getattr(t, f)) for f in _TYPED_FIELDS)
            if stored != count and not (count == 1 and stored == 1):
                raise PolicyRejected("initializer", f"{where} declares {count:,} elements but "
                                                    f"stores {stored:,}")
    return total


def _check_nodes(graph: onnx.GraphProto) -> set[str]:
    ops: set[str] = set()
    for node in graph.node:
        if node.domain not in DEFAULT_DOMAINS:
            raise PolicyRejected("domain", f"node {node.name or node.op_type!r} uses domain "
                                           f"{node.domain!r}; only the default ONNX domain is "
                                           "allowed")
        for attr in node.attribute:
            if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) or attr.HasField("g") \
                    or attr.graphs:
                raise PolicyRejected("subgraph", f"node {node.name or node.op_type!r} carries a "
                                                 "subgraph; control flow is not allowed")
        if node.op_type not in ALLOWED_OPS:
            raise PolicyRejected("operator", f"operator {node.op_type!r} is not on the "
                                             "allow-list for policies")
        ops.add(node.op_type)
    return ops


def _metadata(model: onnx.ModelProto, sidecar: str | bytes | Mapping[str, Any] | None
              ) -> ModelMetadata:
    props = model.metadata_props
    if len(props) > MAX_METADATA_PROPS:
        raise PolicyRejected("metadata", f"{len(props)} metadata entries, the limit is "
                                         f"{MAX_METADATA_PROPS}")
    embedded = None
    for p in props:
        if len(p.key) + len(p.value) > MAX_METADATA_BYTES:
            raise PolicyRejected("metadata", f"metadata entry {p.key[:40]!r} is larger than "
                                             f"{MAX_METADATA_BYTES:,} bytes")
        if p.key == METADATA_KEY:
            embedded = p.value
    if sidecar is not None:
        return parse_metadata(sidecar)
    if embedded is None:
        raise PolicyRejected("metadata", f'no metadata: embed it under metadata_props '
                                         f'"{METADATA_KEY}" (paddock pack) or give a '
                                         "model_metadata.json")
    return parse_metadata(embedded)


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def _check_signature(graph: onnx.GraphProto, meta: ModelMetadata
                     ) -> tuple[str, tuple[int, ...], str, tuple[int, ...]]:
    init_names = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in init_names]
    if len(inputs) != 1:
        raise PolicyRejected("signature", f"a policy has exactly one input, this one has "
                                          f"{len(inputs)}")
    if len(graph.output) != 1:
        raise PolicyRejected("signature", f"a policy has exactly one output, this one has "
                                          f"{len(graph.output)}")
    inp, out = inputs[0], graph.output[0]
    for v, what in ((inp, "input"), (out, "output")):
        if not v.type.HasField("tensor_type") or v.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise PolicyRejected("signature", f"the {what} {v.name!r} must be a float32 tensor")
    size = meta.action_spec.size
    in_dims, out_dims = _dims(inp), _dims(out)
    in_shape = _fixed_shape(in_dims, OBS_DIM, f"input {inp.name!r}",
                            f"observation {meta.observation} ({OBS_DIM} floats)")
    out_shape = _fixed_shape(out_dims, size, f"output {out.name!r}",
                             f"{meta.action_spec.kind} action space ({size} values)")
    return inp.name, in_shape, out.name, out_shape


def _fixed_shape(dims: list[int | str], width: int, what: str, expected: str
                 ) -> tuple[int, ...]:
    """Accept [width] or [batch, width] (batch 1 or symbolic); return the shape to feed."""
    if len(dims) == 1 and dims[0] == width:
        return (width,)
    if len(dims) == 2 and dims[1] == width and (dims[0] == 1 or isinstance(dims[0], str)):
        return (1, width)
    shown = "[" + ", ".join(str(d) if isinstance(d, int) or d.isprintable() else repr(d)
                            for d in dims) + "]"
    raise PolicyRejected("signature", f"{what} has shape {shown}; the {expected} needs "
                                      f"[{width}] or [batch, {width}]")


def _check_inferred_shapes(model: onnx.ModelProto, in_name: str,
                           in_shape: tuple[int, ...]) -> None:
    """Run strict shape inference at batch 1; every tensor must come out static and small."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    graph = probe.graph
    for v in graph.input:
        if v.name == in_name:
            dims = v.type.tensor_type.shape.dim
            for d, n in zip(dims, in_shape, strict=True):
                d.Clear()
                d.dim_value = n
    try:
        onnx.checker.check_model(probe)
        inferred = onnx.shape_inference.infer_shapes(probe, check_type=True, strict_mode=True,
                                                     data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PolicyRejected("shape_inference", first[:300]) from err
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)
             + list(inferred.graph.input)}
    total = 0
    for node in inferred.graph.node:
        for name in node.output:
            if not name:
                continue
            v = known.get(name)
            if v is None or not v.type.HasField("tensor_type") \
                    or not v.type.tensor_type.HasField("shape"):
                raise PolicyRejected("shape_inference", f"the shape of {name!r} "
                                                        f"({node.op_type}) cannot be inferred")
            dims = _dims(v)
            if any(isinstance(d, str) or d < 0 for d in dims):
                raise PolicyRejected("shape_inference", f"{name!r} ({node.op_type}) has a "
                                                        f"non-static shape {dims}")
            count = int(np.prod([int(d) for d in dims], dtype=np.float64)) if dims else 1
            if count > MAX_TENSOR_ELEMENTS:
                raise PolicyRejected("tensor_size", f"{name!r} ({node.op_type}) would hold "
                                                    f"{count:,} elements, the limit is "
                                                    f"{MAX_TENSOR_ELEMENTS:,}")
            total += count
            if total > MAX_TOTAL_INTERMEDIATE_ELEMENTS:
                raise PolicyRejected("tensor_size", "intermediate tensors exceed "
                                                    f"{MAX_TOTAL_INTERMEDIATE_ELEMENTS:,} "
                                                    "elements in total")


SIDECAR_NAME = "model_metadata.json"  # a sidecar beside the model is picked up by this name


def load_policy_file(path: str | Path, metadata_path: str | Path | None = None
                     ) -> ValidatedPolicy:
    """Read and validate a policy file (for the command line and scripts).

    Metadata comes from ``metadata_path`` when given, else from the file itself, else from a
    ``model_metadata.json`` beside it.
    """
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise PolicyRejected("size", f"the file is {size:,} bytes, the limit is "
                                     f"{MAX_MODEL_BYTES:,}")
    data = p.read_bytes()
    if metadata_path is not None:
        return validate_policy(data, Path(metadata_path).read_bytes())
    try:
        return validate_policy(data)
    except PolicyRejected as err:
        beside = p.with_name(SIDECAR_NAME)
        if err.rule == "metadata" and err.detail.startswith("no metadata") and beside.is_file():
            return validate_policy(data, beside.read_bytes())
        raise
