"""Lint an ONNX graph on the CPU for what TensorRT's ONNX parser or builder would reject.

Nothing of the TensorRT path runs here, so the rules we depend on are checked on the graph
itself: after every export pass and by ``edgepose-export --verify``. Each rule is one row of
:data:`RULES` (a name, what it says, where the fact comes from, and a check); a new rule joins
by adding a row. A check receives a :class:`GraphFacts` (the model with every tensor's type,
producers and consumers) and yields ``(node, detail)`` pairs; :func:`lint_model` turns them
into :class:`Violation` objects that name the node, the rule and its source.

Sources (read in NVIDIA's and ONNX's public repositories):

* onnx-tensorrt ``ModelImporter.cpp`` (``parseNode``; NVIDIA/TensorRT ``parsers/onnx``,
  releases 8.6 to 10.x): a node output of type UINT8 that is not a graph output fails with
  "TensorRT does not support UINT8 types for intermediate tensors".
* NVIDIA on NVIDIA/TensorRT#3985: every UINT8 network input must feed a Cast directly, "even
  just data-movement ops like reshape / transpose" are refused before it.
* onnx-tensorrt 8.6 ``QuantDequantLinearHelper`` (``builtin_op_importers.cpp``): INT8 Q/DQ
  only, symmetric ("zero point must be all zeros"), per-channel scales on the weights' output
  channel axis; int32 bias DequantizeLinear is not an INT8 Q/DQ pair.
* ONNX operator spec: the ``axis`` attribute of QuantizeLinear/DequantizeLinear exists from
  opset 13.
* TensorRT ``NvInferRuntimeBase.h`` ``DataType``: no INT64 before 10.0 (graph I/O in INT64
  cannot bind on 8.x).
* This project's contract (README "Conventions", ``export/onnx_export.py``): position de-normalisation,
  the rotation decode, the pose memory and sigma run in float32 in every precision, and none of
  them is quantized (no Q/DQ inside the ``/post_*`` groups).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from edgepose.bundle import BundleFiles, load_manifest
from edgepose.errors import EdgePoseError, require

from .int8.placement import placement_findings
from .onnx_export import NODE_GROUPS

#: ONNX TensorProto element types used below (numbers from onnx.proto, stable across versions)
FLOAT, UINT8, INT8, INT32, INT64, FLOAT16, DOUBLE, BFLOAT16 = 1, 2, 3, 6, 7, 10, 11, 16
TYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
              11: "float64", 16: "bfloat16"}
#: ops where the output head ends and post-processing starts (walking back from an output)
HEAD_OPS = ("Gemm", "MatMul", "Conv", "ConvTranspose")
#: ops that only move or relabel data: they do not make post-processing "present"
DATA_MOVEMENT = ("Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


class GraphLintError(EdgePoseError):
    """A graph breaks a rule TensorRT depends on (the message lists every violation)."""


@dataclass(frozen=True)
class Violation:
    """One broken rule at one node."""

    rule: str
    node: str
    detail: str
    source: str

    def __str__(self) -> str:
        return f"{self.node}: {self.detail} [rule {self.rule}; source: {self.source}]"


class GraphFacts:
    """An ONNX model with what the rules ask: tensor types, producers, consumers, opset."""

    def __init__(self, model):
        onnx = require("onnx", "linting ONNX graphs", "pip install onnx")
        try:
            inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
        except Exception:  # a graph shape inference cannot follow is linted with its declared types
            inferred = model
        self.model = model
        g = inferred.graph
        self.graph = g
        self.opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [0])
        self.initializers = {t.name: t for t in g.initializer}
        self.types: Dict[str, int] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                self.types[vi.name] = vi.type.tensor_type.elem_type
        for t in g.initializer:
            self.types[t.name] = t.data_type
        self.nodes = list(g.node)
        self.producer: Dict[str, int] = {}
        self.consumers: Dict[str, List[int]] = {}
        for i, n in enumerate(self.nodes):
            for o in n.output:
                self.producer[o] = i
            for x in n.input:
                if x:
                    self.consumers.setdefault(x, []).append(i)
            if n.op_type == "Cast":  # Cast's target type is certain even where inference stops
                to = next((a.i for a in n.attribute if a.name == "to"), None)
                if to is not None and n.output:
                    self.types[n.output[0]] = to
        for n in self.nodes:  # Constant nodes carry their type in the value attribute
            if n.op_type == "Constant" and n.output:
                for a in n.attribute:
                    if a.name == "value":
                        self.types[n.output[0]] = a.t.data_type
        self.graph_inputs = [i for i in g.input if i.name not in self.initializers]
        self.graph_outputs = {o.name for o in g.output}

    def label(self, index: int) -> str:
        """``node '/preprocess/Cast' (Cast)``: how a violation names a node."""
        n = self.nodes[index]
        name = n.name or (f"#{index} -> {n.output[0]}" if n.output else f"#{index}")
        return f"node {name!r} ({n.op_type})"

    def type_name(self, tensor: str) -> str:
        t = self.types.get(tensor)
        return TYPE_NAMES.get(t, "unknown" if t is None else f"type {t}")

    def attr(self, index: int, name: str, default=None):
        for a in self.nodes[index].attribute:
            if a.name == name:
                return a.i if a.type == a.INT else a
        return default

    def constant(self, tensor: str):
        """The numpy value of an initializer or Constant-node output, else ``None``."""
        from onnx import numpy_helper

        if tensor in self.initializers:
            return numpy_helper.to_array(self.initializers[tensor])
        i = self.producer.get(tensor)
        if i is not None and self.nodes[i].op_type == "Constant":
            for a in self.nodes[i].attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None


Finding = Tuple[str, str]  # (node label, detail)


@dataclass(frozen=True)
class Rule:
    """One row of :data:`RULES`: ``check(facts)`` yields ``(node label, detail)`` per violation."""

    name: str
    text: str
    source: str
    check: Callable[[GraphFacts], Iterable[Finding]]


# --------------------------------------------------------------------------- the checks
def _uint8_inputs_feed_cast(f: GraphFacts) -> Iterator[Finding]:
    for inp in f.graph_inputs:
        if f.types.get(inp.name) != UINT8:
            continue
        for i in f.consumers.get(inp.name, []):
            n = f.nodes[i]
            if n.op_type != "Cast":
                yield f.label(i), f"uint8 input {inp.name!r} feeds a {n.op_type}, not a Cast; cast it first"
            elif f.attr(i, "to") not in (FLOAT, FLOAT16):
                yield f.label(i), (f"uint8 input {inp.name!r} is cast to {TYPE_NAMES.get(f.attr(i, 'to'), '?')}, "
                                   "not to float32/float16")


def _no_uint8_intermediates(f: GraphFacts) -> Iterator[Finding]:
    for i, n in enumerate(f.nodes):
        for o in n.output:
            if o and f.types.get(o) == UINT8 and o not in f.graph_outputs:
                yield f.label(i), f"output {o!r} is uint8 inside the graph"


def _no_int64_io(f: GraphFacts) -> Iterator[Finding]:
    for vi in list(f.graph_inputs) + list(f.graph.output):
        if f.types.get(vi.name) == INT64:
            where = "input" if vi.name not in f.graph_outputs else "output"
            yield f"graph {where} {vi.name!r}", "is int64 (TensorRT 8.x has no INT64 I/O)"


def _qdq_nodes(f: GraphFacts) -> Iterator[int]:
    for i, n in enumerate(f.nodes):
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            yield i


def _qdq_symmetric_int8(f: GraphFacts) -> Iterator[Finding]:
    for i in _qdq_nodes(f):
        n = f.nodes[i]
        if n.op_type == "DequantizeLinear" and f.types.get(n.input[0]) == INT32:
            continue  # reported by the bias rule
        zp = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if zp is None:
            yield f.label(i), "has no zero point: its quantized type defaults to uint8; give an int8 zero point of 0"
            continue
        if f.types.get(zp) != INT8:
            yield f.label(i), f"zero point {zp!r} is {f.type_name(zp)}; TensorRT takes int8 Q/DQ only"
            continue
        value = f.constant(zp)
        if value is None:
            yield f.label(i), f"zero point {zp!r} is not a constant"
        elif value.any():
            yield f.label(i), f"zero point {zp!r} is not all zeros (asymmetric quantization)"


def _conv_weight_axis0(f: GraphFacts) -> Iterator[Finding]:
    for i in _qdq_nodes(f):
        n = f.nodes[i]
        if n.op_type != "DequantizeLinear" or not n.output:
            continue
        feeds_weight = any(f.nodes[c].op_type == "Conv" and len(f.nodes[c].input) > 1
                           and f.nodes[c].input[1] == n.output[0] for c in f.consumers.get(n.output[0], []))
        scale = f.constant(n.input[1]) if len(n.input) > 1 else None
        if not feeds_weight or scale is None or scale.size <= 1:
            continue
        axis = f.attr(i, "axis", 1)
        if axis != 0:
            yield f.label(i), f"per-channel Conv weight scale on axis {axis}; TensorRT needs axis 0 (output channels)"


def _axis_needs_opset13(f: GraphFacts) -> Iterator[Finding]:
    if f.opset >= 13:
        return
    for i in _qdq_nodes(f):
        if f.attr(i, "axis") is not None:
            yield f.label(i), f"uses 'axis' with opset {f.opset}; per-axis Q/DQ exists from opset 13"


def _no_int32_bias_dq(f: GraphFacts) -> Iterator[Finding]:
    for i in _qdq_nodes(f):
        n = f.nodes[i]
        if n.op_type == "DequantizeLinear" and f.types.get(n.input[0]) == INT32:
            yield f.label(i), (f"dequantizes int32 {n.input[0]!r} (a quantized bias); keep biases float "
                               "(ONNX Runtime: extra_options QuantizeBias=False)")


def _post_prefixes() -> Tuple[str, ...]:
    return tuple("/" + p + "/" for p in NODE_GROUPS["post"])


def _post_nodes(f: GraphFacts, output: str) -> List[int]:
    """The post-processing nodes of ``output``, output first.

    In a graph with ``/post_*`` nodes (every exported graph): those nodes and the data movement,
    casts and Q/DQ between them and the output; the walk stops at any other computation, so the
    pose memory's similarity MatMul is post-processing while the heads are not. In a graph without
    them: every node after the last head op (Gemm/MatMul/Conv).
    """
    prefixes = _post_prefixes()
    named = any(n.name.startswith(prefixes) for n in f.nodes)
    seen, order, stack = set(), [], [output]
    while stack:
        t = stack.pop()
        i = f.producer.get(t)
        if i is None or i in seen:
            continue
        seen.add(i)
        n = f.nodes[i]
        if named:
            if not n.name.startswith(prefixes) and n.op_type not in DATA_MOVEMENT + QDQ_OPS + ("Constant",):
                continue
        elif n.op_type in HEAD_OPS:
            continue
        order.append(i)
        stack.extend(x for x in n.input if x and x not in f.initializers)
    return order


def _fp32_post_processing(f: GraphFacts) -> Iterator[Finding]:
    for out in f.graph.output:
        nodes = _post_nodes(f, out.name)
        if not any(f.nodes[i].op_type not in DATA_MOVEMENT + ("Constant",) for i in nodes):
            yield f"graph output {out.name!r}", "has no post-processing between the head and the output"
            continue
        for i in nodes:
            if f.nodes[i].op_type == "Constant":
                continue  # data, not computation
            for o in f.nodes[i].output:
                if f.types.get(o) in (FLOAT16, BFLOAT16, DOUBLE):
                    yield f.label(i), (f"post-processing of {out.name!r} computes {o!r} in {f.type_name(o)}; "
                                       "it must stay float32")


def _no_qdq_in_post_processing(f: GraphFacts) -> Iterator[Finding]:
    seen = set()
    for out in f.graph.output:
        for i in _post_nodes(f, out.name):
            if f.nodes[i].op_type in QDQ_OPS and i not in seen:
                seen.add(i)
                yield f.label(i), (f"quantizes the post-processing of {out.name!r}; post-processing stays float32 "
                                   "(exclude the /post_* nodes from quantization)")


def _qdq_trt_placement(f: GraphFacts) -> Iterator[Finding]:
    yield from placement_findings(f.model)


MODEL_IMPORTER = "onnx-tensorrt ModelImporter.cpp (parseNode), NVIDIA/TensorRT parsers/onnx 8.6-10.x"
QDQ_HELPER = "onnx-tensorrt 8.6 builtin_op_importers.cpp QuantDequantLinearHelper"

#: The rule table. A new rule joins by adding a row (name, rule text, source, check).
RULES: Tuple[Rule, ...] = (
    Rule("uint8-input-feeds-cast", "a uint8 graph input feeds only Cast nodes (to float)",
         f"NVIDIA on NVIDIA/TensorRT#3985; {MODEL_IMPORTER}", _uint8_inputs_feed_cast),
    Rule("no-uint8-intermediate", "no node output is uint8 unless it is a graph output", MODEL_IMPORTER,
         _no_uint8_intermediates),
    Rule("no-int64-io", "no graph input or output is int64", "TensorRT NvInferRuntimeBase.h DataType (INT64 from 10.0)",
         _no_int64_io),
    Rule("qdq-symmetric-int8", "Q/DQ have an int8 zero point of 0 (symmetric int8)", QDQ_HELPER,
         _qdq_symmetric_int8),
    Rule("qdq-conv-weight-axis0", "per-channel Conv weight scales are on axis 0", QDQ_HELPER, _conv_weight_axis0),
    Rule("qdq-axis-opset13", "Q/DQ with an 'axis' attribute need opset >= 13",
         "ONNX operator spec QuantizeLinear-13 / DequantizeLinear-13", _axis_needs_opset13),
    Rule("qdq-no-int32-bias", "no DequantizeLinear of int32 (quantized bias)", QDQ_HELPER, _no_int32_bias_dq),
    Rule("qdq-trt-placement", "Q/DQ on the inputs of Conv layers (activation and weights), none between a Conv "
         "and its activation", "TensorRT developer guide, Explicit Quantization: Q/DQ layer-placement "
         "recommendations", _qdq_trt_placement),
    Rule("fp32-post-processing", "every output has post-processing after its head, computed in float32",
         "edgepose model contract (README, Conventions; export/onnx_export.py post_* modules)", _fp32_post_processing),
    Rule("no-qdq-in-post-processing", "no QuantizeLinear/DequantizeLinear inside the post-processing",
         "edgepose model contract (README, Conventions; export/onnx_export.py post_* modules)",
         _no_qdq_in_post_processing),
)


# --------------------------------------------------------------------------- entry points
def lint_model(model, rules: Sequence[Rule] = RULES) -> List[Violation]:
    """Every violation of ``rules`` in an ONNX ``ModelProto`` (empty when the graph passes)."""
    facts = GraphFacts(model)
    out = []
    for rule in rules:
        for node, detail in rule.check(facts):
            out.append(Violation(rule.name, node, detail, rule.source))
    return out


def lint_file(path: Union[str, Path], rules: Sequence[Rule] = RULES) -> List[Violation]:
    onnx = require("onnx", "linting ONNX graphs", "pip install onnx")
    return lint_model(onnx.load(str(path)), rules)


def check_graph(path: Union[str, Path], rules: Sequence[Rule] = RULES, what: Optional[str] = None) -> None:
    """Raise :class:`GraphLintError` naming every violation in the graph at ``path``."""
    found = lint_file(path, rules)
    if found:
        raise GraphLintError(
            f"{what or path} breaks {len(found)} TensorRT graph rule(s):\n    " + "\n    ".join(map(str, found)),
            hint="this graph would fail TensorRT's ONNX parser or builder; fix the export pass that wrote it")


def tensorrt_graph_lint(path: Union[str, Path], precision: str) -> dict:
    """The export's graph check (``(path, precision) -> summary``): raise :class:`GraphLintError`
    on any violation, else ``{"rules": [names checked], "violations": 0}``."""
    check_graph(path, what=f"the {precision} graph {Path(path).name}")
    return {"rules": [r.name for r in RULES], "violations": 0}


def lint_bundle(bundle_dir: Union[str, Path], manifest: Optional[dict] = None,
                rules: Sequence[Rule] = RULES) -> Dict[str, List[Violation]]:
    """``{relative path: violations}`` for every ONNX file a bundle's manifest lists."""
    bundle_dir = Path(bundle_dir)
    manifest = manifest if manifest is not None else load_manifest(bundle_dir)
    return {rel: lint_file(bundle_dir / rel, rules) for rel in BundleFiles.of(manifest).with_role("onnx")}
