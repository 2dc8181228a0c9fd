"""Hostile policy files, built fresh in each test run (nothing binary is checked in).

Each builder returns the bytes of one policy file that attacks the evaluator in one way:
smuggled external data, foreign operator domains, control flow, allocation bombs, absurd
graph or tensor sizes, broken protobuf, a wrong signature, poisoned metadata, or a model that
is perfectly valid and only misbehaves when it runs (non-finite outputs, far too slow, an
inference error). Apart from the one thing it is built to get wrong, every model is an
ordinary continuous-action policy: ``obs[batch, 30] -> Gemm -> action[batch, 2]``, with
embedded metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from evaluator.actions import ActionSpec
from evaluator.metadata import MAX_METADATA_BYTES, METADATA_KEY, ModelMetadata
from evaluator.observation import OBS_DIM
from evaluator.onnx_io import INPUT_NAME, OPSET, OUTPUT_NAME, mlp_policy, set_metadata
from evaluator.validate import (
    MAX_INITIALIZER_ELEMENTS,
    MAX_METADATA_PROPS,
    MAX_MODEL_BYTES,
    MAX_TENSOR_ELEMENTS,
)

CONTINUOUS = ModelMetadata(ActionSpec.continuous(), name="hostile")
DISCRETE_3 = ModelMetadata(ActionSpec.discrete([(-30.0, 1.0), (0.0, 2.0), (30.0, 1.0)]))
HUGE = 1 << 40  # a dimension no machine can hold
FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64

Dims = Sequence[int | str]


# ---------------------------------------------------------------------------- plumbing
def value(name: str, dims: Dims, elem: int = FLOAT) -> onnx.ValueInfoProto:
    """A tensor-typed graph input or output."""
    return helper.make_tensor_value_info(name, elem, list(dims))


def obs_input(dims: Dims = ("batch", OBS_DIM), elem: int = FLOAT) -> onnx.ValueInfoProto:
    return value(INPUT_NAME, dims, elem)


def action_output(dims: Dims = ("batch", 2), elem: int = FLOAT) -> onnx.ValueInfoProto:
    return value(OUTPUT_NAME, dims, elem)


def const(name: str, array: Any, dtype: Any = np.float32) -> TensorProto:
    """An initializer holding ``array``."""
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)


def gemm_head(out: str = "h", width: int = 2, in_width: int = OBS_DIM,
              source: str = INPUT_NAME) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    """``out = source @ W.T + b``: the policy's one honest layer."""
    rng = np.random.default_rng(width * 1000 + in_width)
    w = rng.normal(0.0, 0.1, (width, in_width))
    return ([helper.make_node("Gemm", [source, "W", "b"], [out], transB=1)],
            [const("W", w), const("b", np.zeros(width))])


def model(nodes: Sequence[onnx.NodeProto], initializers: Sequence[TensorProto] = (), *,
          inputs: Sequence[onnx.ValueInfoProto] | None = None,
          outputs: Sequence[onnx.ValueInfoProto] | None = None,
          opsets: Sequence[tuple[str, int]] = (("", OPSET),),
          functions: Sequence[onnx.FunctionProto] = (),
          meta: ModelMetadata | None = CONTINUOUS) -> onnx.ModelProto:
    """Assemble a model; the defaults are those of a well-formed continuous policy."""
    graph = helper.make_graph(list(nodes), "hostile",
                              list(inputs) if inputs is not None else [obs_input()],
                              list(outputs) if outputs is not None else [action_output()],
                              initializer=list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
                          functions=list(functions), producer_name="hostile")
    m.ir_version = 8
    if meta is not None:
        set_metadata(m, meta)
    return m


def with_extra(extra: Sequence[onnx.NodeProto], extra_out: str,
               initializers: Sequence[TensorProto] = (), **kw: Any) -> onnx.ModelProto:
    """``action = Gemm(obs) + <extra_out>``: a policy with one hostile branch added on."""
    head, inits = gemm_head()
    nodes = [*head, *extra, helper.make_node("Add", ["h", extra_out], [OUTPUT_NAME])]
    return model(nodes, [*inits, *initializers], **kw)


def reduce_to_scalar(src: str, out: str, cast: bool = False) -> list[onnx.NodeProto]:
    """Nodes folding any tensor into one float (so a bomb's result feeds the action)."""
    nodes = []
    if cast:
        nodes.append(helper.make_node("Cast", [src], [src + "_f"], to=FLOAT))
        src += "_f"
    nodes.append(helper.make_node("ReduceSum", [src], [out], keepdims=0))
    return nodes


def serialize(m: onnx.ModelProto) -> bytes:
    data: bytes = m.SerializeToString()
    return data


def good_model(meta: ModelMetadata = CONTINUOUS, seed: int = 0) -> onnx.ModelProto:
    """A harmless two-layer policy (the control every hostile case is compared with)."""
    rng = np.random.default_rng(seed)
    size = meta.action_spec.size
    return mlp_policy([(rng.normal(0.0, 0.1, (16, OBS_DIM)), np.zeros(16)),
                       (rng.normal(0.0, 0.1, (size, 16)), np.zeros(size))], meta)


def good_policy(meta: ModelMetadata = CONTINUOUS) -> bytes:
    return serialize(good_model(meta))


# ---------------------------------------------------------------------------- external data
def external_data(location: str, *, in_constant: bool = False, flag: bool = True,
                  entries: bool = True) -> bytes:
    """The Gemm weight stored "elsewhere": at ``location`` (``../x``, ``/etc/passwd``, a link).

    ``in_constant`` puts it in a Constant node instead of an initializer; ``flag`` sets
    ``data_location = EXTERNAL``; ``entries`` writes the location/offset/length entries.
    """
    t = TensorProto(name="W", data_type=FLOAT, dims=[2, OBS_DIM])
    if flag:
        t.data_location = TensorProto.EXTERNAL
    if entries:
        for key, val in (("location", location), ("offset", "0"), ("length", "240")):
            t.external_data.add(key=key, value=val)
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = [const("b", np.zeros(2))]
    if in_constant:
        nodes.append(helper.make_node("Constant", [], ["W"], value=t))
    else:
        inits.append(t)
    nodes.append(helper.make_node("Gemm", [INPUT_NAME, "W", "b"], [OUTPUT_NAME], transB=1))
    return serialize(model(nodes, inits))


# ---------------------------------------------------------------------------- domains
def custom_domain(*, declared: bool = True) -> bytes:
    """A node from ``custom.domain``; ``declared`` also imports that domain's opset."""
    extra = [helper.make_node("ReadFile", ["h"], ["stolen"], domain="custom.domain")]
    opsets = (("", OPSET), ("custom.domain", 1)) if declared else (("", OPSET),)
    return serialize(with_extra(extra, "stolen", opsets=opsets))


def microsoft_op(*, declared: bool = True) -> bytes:
    """``com.microsoft`` FusedMatMul, an onnxruntime contrib operator."""
    head = [helper.make_node("FusedMatMul", [INPUT_NAME, "W"], ["h0"], domain="com.microsoft",
                             transB=1, alpha=1.0),
            helper.make_node("Add", ["h0", "b"], [OUTPUT_NAME])]
    _, inits = gemm_head()
    opsets = (("", OPSET), ("com.microsoft", 1)) if declared else (("", OPSET),)
    return serialize(model(head, inits, opsets=opsets))


def ml_domain() -> bytes:
    """``ai.onnx.ml`` (the classical-ML operators) is not the default domain either."""
    extra = [helper.make_node("Normalizer", ["h"], ["n"], domain="ai.onnx.ml", norm="L2")]
    return serialize(with_extra(extra, "n", opsets=(("", OPSET), ("ai.onnx.ml", 3))))


# ---------------------------------------------------------------------------- functions
def shadowing_function(name: str = "Relu") -> bytes:
    """A model-local function in the default domain named like a standard operator."""
    body = [helper.make_node("Neg", ["X"], ["Y"])]
    fn = helper.make_function("", name, ["X"], ["Y"], body,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    extra = [helper.make_node(name, ["h"], ["r"])]
    return serialize(with_extra(extra, "r", functions=[fn]))


# ---------------------------------------------------------------------------- control flow
def loop(trip_count: int = 1 << 62, *, with_body: bool = True) -> bytes:
    """``Loop`` adding 1 to the action ``trip_count`` times."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [value("i", [], INT64), value("cond_in", [], TensorProto.BOOL),
         value("v_in", ["batch", 2])],
        [value("cond_out", [], TensorProto.BOOL), value("v_out", ["batch", 2])])
    attrs = {"body": body} if with_body else {}
    head, inits = gemm_head()
    nodes = [*head, helper.make_node("Loop", ["trip", "go", "h"], [OUTPUT_NAME], **attrs)]
    inits += [const("trip", trip_count, np.int64), const("go", True, np.bool_),
              const("one", 1.0)]
    return serialize(model(nodes, inits))


def if_branches() -> bytes:
    """``If`` choosing between two branches, each a full subgraph."""
    then_g = helper.make_graph([helper.make_node("Identity", ["h"], ["t"])], "then", [],
                               [value("t", ["batch", 2])])
    else_g = helper.make_graph([helper.make_node("Neg", ["h"], ["e"])], "else", [],
                               [value("e", ["batch", 2])])
    head, inits = gemm_head()
    nodes = [*head, helper.make_node("If", ["flag"], [OUTPUT_NAME], then_branch=then_g,
                                     else_branch=else_g)]
    return serialize(model(nodes, [*inits, const("flag", True, np.bool_)]))


def scan(length: int = 64) -> bytes:
    """``Scan`` summing a sequence into the action, one body run per element."""
    body = helper.make_graph([helper.make_node("Add", ["s_in", "x"], ["s_out"])], "body",
                             [value("s_in", [1, 2]), value("x", [1, 2])],
                             [value("s_out", [1, 2])])
    head, inits = gemm_head()
    nodes = [*head, helper.make_node("Scan", ["h", "seq"], [OUTPUT_NAME], body=body,
                                     num_scan_inputs=1)]
    seq = np.zeros((length, 1, 2))
    return serialize(model(nodes, [*inits, const("seq", seq)],
                           outputs=[action_output([1, 2])]))


# ---------------------------------------------------------------------------- allocation bombs
def constant_of_shape() -> bytes:
    extra = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=numpy_helper.from_array(np.ones(1, np.float32))),
             *reduce_to_scalar("big", "s")]
    return serialize(with_extra(extra, "s", [const("shape", [HUGE, HUGE], np.int64)]))


def expand() -> bytes:
    extra = [helper.make_node("Expand", ["one", "shape"], ["big"]),
             *reduce_to_scalar("big", "s")]
    return serialize(with_extra(extra, "s", [const("one", [1.0]),
                                             const("shape", [HUGE, HUGE], np.int64)]))


def tile() -> bytes:
    extra = [helper.make_node("Tile", ["h", "reps"], ["big"]), *reduce_to_scalar("big", "s")]
    return serialize(with_extra(extra, "s", [const("reps", [HUGE, HUGE], np.int64)]))


def range_op() -> bytes:
    extra = [helper.make_node("Range", ["start", "limit", "delta"], ["big"]),
             *reduce_to_scalar("big", "s")]
    return serialize(with_extra(extra, "s", [const("start", 0.0), const("limit", 1e15),
                                             const("delta", 1.0)]))


def nonzero() -> bytes:
    extra = [helper.make_node("NonZero", [INPUT_NAME], ["idx"]),
             *reduce_to_scalar("idx", "s", cast=True)]
    return serialize(with_extra(extra, "s"))


def broadcast_bomb(side: int = 4000) -> bytes:
    """Only allowed operators: a column plus a row broadcast to ``side`` x ``side``."""
    extra = [helper.make_node("Add", ["col", "row"], ["big"]), *reduce_to_scalar("big", "s")]
    return serialize(with_extra(extra, "s", [const("col", np.zeros((side, 1))),
                                             const("row", np.zeros((1, side)))]))


def runtime_shaped_reshape() -> bytes:
    """A Reshape whose target shape is read from the observation at run time."""
    extra = [helper.make_node("Cast", [INPUT_NAME], ["obs_i"], to=INT64),
             helper.make_node("Gather", ["obs_i", "two_idx"], ["pair"], axis=1),
             helper.make_node("Reshape", ["pair", "flat"], ["shape"]),
             helper.make_node("Reshape", ["pool", "shape"], ["r"]),
             *reduce_to_scalar("r", "s")]
    return serialize(with_extra(extra, "s", [const("pool", np.zeros(64)),
                                             const("two_idx", [0, 1], np.int64),
                                             const("flat", [-1], np.int64)]))


# ---------------------------------------------------------------------------- graph size
def many_nodes(count: int = 200_000) -> bytes:
    """An Identity chain of ``count`` nodes between the Gemm and the action.

    The nodes are added straight to the model's graph (no copies), so building stays well
    under a second.
    """
    head, inits = gemm_head(out="t0")
    m = model(head, inits)
    add = m.graph.node.add
    for i in range(count - 1):
        add(op_type="Identity", input=[f"t{i}"], output=[f"t{i + 1}"])
    add(op_type="Identity", input=[f"t{count - 1}"], output=[OUTPUT_NAME])
    return serialize(m)


# ---------------------------------------------------------------------------- initializers
def _with_blob(blob: TensorProto) -> bytes:
    extra = reduce_to_scalar(blob.name, "s", cast=True)
    return serialize(with_extra(extra, "s", [blob]))


def huge_initializer() -> bytes:
    """One more weight than the cap, really stored (one byte each)."""
    return _with_blob(const("blob", np.zeros(MAX_INITIALIZER_ELEMENTS + 1), np.uint8))


def many_initializers(parts: int = 5) -> bytes:
    """Initializers each under the cap that together exceed it."""
    each = MAX_INITIALIZER_ELEMENTS // parts + 1_000
    blobs = [const(f"blob{k}", np.zeros(each), np.uint8) for k in range(parts)]
    extra = [helper.make_node("Concat", [b.name for b in blobs], ["all"], axis=0),
             *reduce_to_scalar("all", "s", cast=True)]
    return serialize(with_extra(extra, "s", blobs))


def declared_only(dims: Sequence[int] = (5_000_000,)) -> bytes:
    """Dims announce a huge tensor; no data follows at all."""
    return _with_blob(TensorProto(name="blob", data_type=FLOAT, dims=list(dims)))


def lying_raw(declared: int, stored_bytes: int) -> bytes:
    """``dims`` say ``declared`` float32 elements, ``raw_data`` holds ``stored_bytes``."""
    return _with_blob(TensorProto(name="blob", data_type=FLOAT, dims=[declared],
                                  raw_data=b"\x00" * stored_bytes))


def lying_typed(declared: int = 1_000_000, stored: int = 3) -> bytes:
    """The same lie through ``float_data`` instead of ``raw_data``."""
    return _with_blob(TensorProto(name="blob", data_type=FLOAT, dims=[declared],
                                  float_data=[0.0] * stored))


def negative_dims() -> bytes:
    return _with_blob(TensorProto(name="blob", data_type=FLOAT, dims=[-1, 2],
                                  float_data=[0.0, 0.0]))


def string_initializer() -> bytes:
    return _with_blob(TensorProto(name="blob", data_type=TensorProto.STRING, dims=[1],
                                  string_data=[b"x" * 1000]))


def sparse_initializer() -> bytes:
    """A sparse initializer (a few values scattered over a huge dense shape)."""
    sparse = helper.make_sparse_tensor(const("blob", [1.0, 2.0]),
                                       const("blob_idx", [0, 7], np.int64), [HUGE])
    m = with_extra(reduce_to_scalar("blob", "s"), "s")
    m.graph.sparse_initializer.append(sparse)
    return serialize(m)


def sparse_constant() -> bytes:
    """A Constant node holding a sparse tensor instead of a dense one."""
    sparse = helper.make_sparse_tensor(const("v", [1.0]), const("i", [3], np.int64), [HUGE])
    extra = [helper.make_node("Constant", [], ["blob"], sparse_value=sparse),
             *reduce_to_scalar("blob", "s")]
    return serialize(with_extra(extra, "s"))


# ---------------------------------------------------------------------------- parse and size
def truncated() -> bytes:
    data = good_policy()
    return data[: len(data) // 2]


def garbage(size: int = 4096, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).bytes(size)


def empty() -> bytes:
    return b""


def oversized() -> bytes:
    """A valid policy padded past the size limit with a doc string."""
    m = good_model()
    m.graph.doc_string = "x" * MAX_MODEL_BYTES
    return serialize(m)


def not_a_model() -> bytes:
    """A well-formed protobuf of another kind (a tensor), not a model."""
    return serialize(const("x", np.arange(64)))


def deep_nesting(depth: int = 500) -> bytes:
    """Graphs inside node attributes inside graphs, ``depth`` levels down (raw protobuf)."""

    def field(number: int, payload: bytes) -> bytes:
        key, n, size = bytes([(number << 3) | 2]), len(payload), bytearray()
        while True:
            size.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return key + bytes(size) + payload

    graph = b""
    for _ in range(depth):  # GraphProto.node(1) -> NodeProto.attribute(5) -> .g(6)
        graph = field(1, field(5, field(6, graph)))
    return field(7, graph)  # ModelProto.graph


# ---------------------------------------------------------------------------- signature
def two_inputs() -> bytes:
    head, inits = gemm_head(source="sum")
    nodes = [helper.make_node("Add", [INPUT_NAME, "obs2"], ["sum"]), *head,
             helper.make_node("Identity", ["h"], [OUTPUT_NAME])]
    return serialize(model(nodes, inits, inputs=[obs_input(), value("obs2", ["batch", 30])]))


def no_input() -> bytes:
    nodes = [helper.make_node("Identity", ["c"], [OUTPUT_NAME])]
    return serialize(model(nodes, [const("c", [[0.0, 1.0]])], inputs=[]))


def two_outputs() -> bytes:
    head, inits = gemm_head()
    nodes = [*head, helper.make_node("Identity", ["h"], [OUTPUT_NAME]),
             helper.make_node("Neg", ["h"], ["spare"])]
    return serialize(model(nodes, inits, outputs=[action_output(), value("spare", ["batch", 2])]))


def input_shape(dims: Dims) -> bytes:
    """The observation input declared as ``dims``; the graph follows it consistently."""
    width = dims[-1] if len(dims) == 2 and isinstance(dims[-1], int) else OBS_DIM
    src = INPUT_NAME
    pre: list[onnx.NodeProto] = []
    if len(dims) != 2:
        pre = [helper.make_node("Flatten", [INPUT_NAME], ["flat"])]
        src = "flat"
    head, inits = gemm_head(out=OUTPUT_NAME, in_width=width, source=src)
    batch = dims[0] if len(dims) == 2 else "batch"
    return serialize(model([*pre, *head], inits, inputs=[obs_input(dims)],
                           outputs=[action_output([batch, 2])]))


def output_width(width: int, meta: ModelMetadata = CONTINUOUS) -> bytes:
    head, inits = gemm_head(out=OUTPUT_NAME, width=width)
    return serialize(model(head, inits, outputs=[action_output(["batch", width])], meta=meta))


def input_dtype(elem: int) -> bytes:
    """The observation declared as ``elem`` (float64, int64 ...), cast to float inside."""
    head, inits = gemm_head(out=OUTPUT_NAME, source="obs_f")
    nodes = [helper.make_node("Cast", [INPUT_NAME], ["obs_f"], to=FLOAT), *head]
    return serialize(model(nodes, inits, inputs=[obs_input(elem=elem)]))


def output_dtype(elem: int) -> bytes:
    head, inits = gemm_head()
    nodes = [*head, helper.make_node("Cast", ["h"], [OUTPUT_NAME], to=elem)]
    return serialize(model(nodes, inits, outputs=[action_output(elem=elem)]))


def newline_in_dim() -> bytes:
    """A symbolic batch dimension whose name carries a line break, on a wrong width."""
    head, inits = gemm_head(out=OUTPUT_NAME, in_width=29)
    return serialize(model(head, inits, inputs=[obs_input(["batch\nFAKE LOG LINE", 29])]))


# ---------------------------------------------------------------------------- metadata
def _raw_metadata(props: Sequence[tuple[str, str]]) -> bytes:
    m = good_model()
    del m.metadata_props[:]
    for k, v in props:
        m.metadata_props.add(key=k, value=v)
    return serialize(m)


def metadata_json(doc: object) -> bytes:
    """A policy whose embedded metadata is ``doc`` (JSON-encoded unless already a string)."""
    return _raw_metadata([(METADATA_KEY, doc if isinstance(doc, str) else json.dumps(doc))])


def continuous_doc(**space: object) -> dict[str, Any]:
    """DeepRacer-style continuous metadata; keyword arguments replace a range."""
    ranges = {"steering_angle": {"low": -30, "high": 30}, "speed": {"low": 0.5, "high": 4}}
    return {"action_space_type": "continuous", "action_space": ranges | space}


def metadata_oversized(key: str = METADATA_KEY) -> bytes:
    """A metadata entry over the size limit (valid JSON under ``paddock``)."""
    doc = continuous_doc()
    doc["name"] = "x" * (MAX_METADATA_BYTES + 1)
    props = [(key, json.dumps(doc))]
    if key != METADATA_KEY:
        props.insert(0, (METADATA_KEY, json.dumps(continuous_doc())))
    return _raw_metadata(props)


def metadata_many_entries() -> bytes:
    props = [(f"k{n}", "v") for n in range(MAX_METADATA_PROPS)]
    return _raw_metadata([(METADATA_KEY, json.dumps(continuous_doc())), *props])


def no_metadata() -> bytes:
    return _raw_metadata([])


# ---------------------------------------------------------------------------- subgraph smuggling
def smuggled_graph(kind: str = "graph") -> bytes:
    """A Relu carrying a subgraph attribute it has no use for.

    ``graph``: a GRAPH attribute; ``graphs``: a GRAPHS list; ``mistyped``: an attribute
    declared FLOAT whose graph field is set anyway.
    """
    inner = helper.make_graph([helper.make_node("Neg", ["h"], ["z"])], "payload", [],
                              [value("z", ["batch", 2])])
    relu = helper.make_node("Relu", ["h"], ["r"])
    if kind == "graph":
        relu.attribute.append(helper.make_attribute("payload", inner))
    elif kind == "graphs":
        relu.attribute.append(helper.make_attribute("payload", [inner, inner]))
    else:
        attr = helper.make_attribute("payload", 1.0)
        attr.g.CopyFrom(inner)
        relu.attribute.append(attr)
    assert any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) or a.HasField("g")
               for a in relu.attribute)
    return serialize(with_extra([relu], "r"))


# ---------------------------------------------------------------------- valid, hostile when run
def divide_by_zero() -> bytes:
    """Passes every static rule; ``action = Gemm(obs) + 1 / 0`` is +inf at run time."""
    extra = [helper.make_node("Div", ["one", "zero"], ["inf"])]
    return serialize(with_extra(extra, "inf", [const("one", [1.0, 1.0]),
                                               const("zero", [0.0, 0.0])]))


def log_of_negative() -> bytes:
    """Passes every static rule; ``action = Gemm(obs) + log(-1)`` is NaN at run time."""
    extra = [helper.make_node("Log", ["minus_one"], ["nan"])]
    return serialize(with_extra(extra, "nan", [const("minus_one", [-1.0, -1.0])]))


def too_slow(rows: int = 1400, cols: int = 700, depth: int = 7) -> bytes:
    """Passes every static rule; some 10 GFLOP of matrix products per action.

    ``x0 = V * sum(obs)`` (so nothing can be folded at load time), then ``depth`` times
    ``x = W @ x`` with W a ``rows`` x ``rows`` initializer: every tensor stays under the size
    caps, but each product is ``rows * rows * cols`` multiply-adds.
    """
    rng = np.random.default_rng(3)
    w = rng.normal(0.0, 1.0 / rows, (rows, rows))
    v = rng.normal(0.0, 1.0, (rows, cols))
    nodes = [helper.make_node("ReduceSum", [INPUT_NAME], ["total"], keepdims=1),
             helper.make_node("Mul", ["V", "total"], ["x0"])]
    nodes += [helper.make_node("MatMul", ["Wbig", f"x{i}"], [f"x{i + 1}"]) for i in range(depth)]
    nodes += [helper.make_node("ReduceMean", [f"x{depth}"], ["m"], keepdims=1)]
    assert rows * cols <= MAX_TENSOR_ELEMENTS
    return serialize(with_extra(nodes, "m", [const("Wbig", w), const("V", v)]))


def gather_out_of_range(node_name: str = "grab\nFAKE LOG LINE") -> bytes:
    """Passes every static rule; indexes the observation past its end at run time."""
    extra = [helper.make_node("Gather", [INPUT_NAME, "idx"], ["g"], axis=1, name=node_name)]
    return serialize(with_extra(extra, "g", [const("idx", [3, 1000], np.int64)]))
