"""Where Q/DQ goes, the way TensorRT's developer guide recommends, and the writer that puts it there.

TensorRT developer guide, "Explicit Quantization" -> "Q/DQ Layer-Placement Recommendations":

* quantize all inputs of weighted operations (Convolution, GEMM): the activation input per
  tensor, the weights per output channel (axis 0);
* do not quantize the outputs of weighted operations: TensorRT fuses Conv + BatchNorm +
  ReLU/Clip and runs the fused layer in INT8 when its *input* is quantized; a Q/DQ between the
  Conv and its activation (what ONNX Runtime's symmetric QDQ mode writes) forces a requantize
  step and spends half of the int8 range on values ReLU6 then clips away;
* quantize the residual input of an element-wise Add that follows a weighted layer, so TensorRT
  can fuse the Add into that layer. In inverted-residual and ResNet blocks the residual input is
  the block input, which also feeds the block's first Conv: both consumers read one shared
  Q/DQ pair, so they see the same INT8 tensor (the fused Conv+Add then reads INT8 on both sides).

:func:`plan_placement` returns, for a graph, the tensors to quantize and the consumers that read
their dequantized copy; :func:`write_qdq` inserts the pairs given one ``amax`` per activation
tensor (from calibration in PTQ, from the QAT model in QAT: the same placement either way),
stores Conv weights as int8 with per-channel scales ``max|W| / 127`` (symmetric, zero points 0,
biases float) and keeps everything else in float. :func:`placement_problems` is the rule the
graph lint applies to any Q/DQ file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple

import numpy as np

from edgepose.errors import EdgePoseError, require

QMAX = 127  # symmetric int8 as TensorRT runs it: scale = amax / 127, zero point 0
WEIGHTED_OPS = ("Conv",)
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish")


@dataclass
class Placement:
    """``tensors``: activation tensor -> ``[(node name, input index)]`` reading its DQ copy;
    ``weighted``: the Conv nodes whose weights are stored in int8."""

    tensors: Dict[str, List[Tuple[str, int]]] = field(default_factory=dict)
    weighted: List[str] = field(default_factory=list)


def _onnx():
    return require("onnx", "writing Q/DQ graphs", "pip install onnx")


def plan_placement(model, exclude_nodes: Iterable[str] = ()) -> Placement:
    """The TensorRT placement for ``model`` with ``exclude_nodes`` left in float (see module doc)."""
    excluded = set(exclude_nodes)
    inits = {i.name for i in model.graph.initializer}
    plan = Placement()
    for n in model.graph.node:
        if n.op_type in WEIGHTED_OPS and n.name not in excluded and len(n.input) >= 2 and n.input[1] in inits:
            plan.weighted.append(n.name)
            plan.tensors.setdefault(n.input[0], []).append((n.name, 0))
    for n in model.graph.node:  # residual inputs of Adds share the Q/DQ of the Conv input they are
        if n.op_type == "Add" and n.name not in excluded:
            for i, t in enumerate(n.input):
                if t in plan.tensors and t not in inits:
                    plan.tensors[t].append((n.name, i))
    return plan


def weight_scales(w: np.ndarray) -> np.ndarray:
    """Per-output-channel scales ``max|W| / 127`` (axis 0); an all-zero channel gets scale 1."""
    amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1).astype(np.float32)
    return np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)


def quantize_weight(w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(int8 weights, per-channel scales)`` with round-half-to-even, as ONNX QuantizeLinear does."""
    scale = weight_scales(w)
    q = np.clip(np.rint(w / scale.reshape((-1,) + (1,) * (w.ndim - 1))), -QMAX, QMAX).astype(np.int8)
    return q, scale


def write_qdq(model, act_amax: Dict[str, float], exclude_nodes: Iterable[str] = ()):
    """A copy of ``model`` with Q/DQ at the TensorRT placement, activation scales ``amax / 127``.

    ``act_amax`` must hold a positive finite amax for every tensor :func:`plan_placement`
    picks; a missing one raises :class:`EdgePoseError` (a graph half-quantized by accident
    would run, slowly and wrongly, on TensorRT).
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper

    plan = plan_placement(model, exclude_nodes)
    missing = [t for t in plan.tensors if not (t in act_amax and np.isfinite(act_amax[t]) and act_amax[t] > 0)]
    if missing:
        raise EdgePoseError(f"no usable activation range for {len(missing)} tensor(s) to quantize, e.g. {missing[:3]}",
                            hint="calibrate on frames that reach every layer, or exclude those nodes")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    rewire: Dict[Tuple[str, int], str] = {}
    pending: Dict[str, list] = {}  # node name -> Q/DQ nodes to emit right before it
    new_inits = []
    for t, consumers in plan.tensors.items():
        scale = np.float32(float(act_amax[t]) / QMAX)
        s_name, z_name = f"{t}_scale", f"{t}_zero_point"
        new_inits += [numpy_helper.from_array(np.array(scale, np.float32), s_name),
                      numpy_helper.from_array(np.array(0, np.int8), z_name)]
        q = helper.make_node("QuantizeLinear", [t, s_name, z_name], [f"{t}_quantized"], name=f"{t}_QuantizeLinear")
        dq = helper.make_node("DequantizeLinear", [f"{t}_quantized", s_name, z_name], [f"{t}_dequantized"],
                              name=f"{t}_DequantizeLinear")
        first = consumers[0][0]
        pending.setdefault(first, []).extend([q, dq])
        for c in consumers:
            rewire[c] = f"{t}_dequantized"
    weighted = set(plan.weighted)
    for n in g.node:
        if n.name in weighted:
            w_name = n.input[1]
            w = numpy_helper.to_array(inits[w_name])
            wq, scale = quantize_weight(w)
            base = f"{w_name}_{n.name}".replace("/", "_")
            new_inits += [numpy_helper.from_array(wq, f"{base}_quantized"),
                          numpy_helper.from_array(scale, f"{base}_scale"),
                          numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{base}_zero_point")]
            dq = helper.make_node("DequantizeLinear", [f"{base}_quantized", f"{base}_scale", f"{base}_zero_point"],
                                  [f"{base}_dequantized"], name=f"{base}_DequantizeLinear", axis=0)
            pending.setdefault(n.name, []).append(dq)
            rewire[(n.name, 1)] = f"{base}_dequantized"
    nodes = []
    for n in g.node:
        nodes.extend(pending.pop(n.name, []))
        for i, t in enumerate(n.input):
            if (n.name, i) in rewire:
                n.input[i] = rewire[(n.name, i)]
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    used = {t for n in g.node for t in n.input}
    keep = [i for i in g.initializer if i.name in used]  # float copies of int8 weights go
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    return out


def placement_problems(model) -> List[str]:
    """:func:`placement_findings` as ``"node: detail"`` lines."""
    return [f"{node}: {detail}" for node, detail in placement_findings(model)]


def placement_findings(model) -> List[Tuple[str, str]]:
    """``(node, detail)`` wherever a Q/DQ graph departs from TensorRT's placement recommendations (empty: it follows them).

    Rules: (1) no Q/DQ on the output of a weighted layer or of its activation when that output
    feeds an activation (Conv -> Q/DQ -> Clip: a requantize step, half the int8 range after
    ReLU6); (2) a Conv with int8 weights reads a dequantized activation (TensorRT would
    otherwise run it in float with its weights dequantized); (3) a Conv reading a dequantized
    activation has quantized weights.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    consumers: Dict[str, list] = {}
    for n in model.graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    problems = []
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear":
            src = producer.get(n.input[0])
            if src is not None and src.op_type in WEIGHTED_OPS + ("BatchNormalization",):
                acts = [c for dq in consumers.get(n.output[0], []) for c in consumers.get(dq.output[0], [])
                        if c.op_type in ACTIVATIONS]
                if acts:
                    problems.append((n.name, f"Q/DQ between {src.op_type} {src.name} and its activation "
                                     f"{acts[0].op_type} {acts[0].name} (quantize the next layer's input instead)"))
        if n.op_type in WEIGHTED_OPS and len(n.input) >= 2:
            x, w = producer.get(n.input[0]), producer.get(n.input[1])
            x_q = x is not None and x.op_type == "DequantizeLinear"
            w_q = (w is not None and w.op_type == "DequantizeLinear") or False
            if w_q and not x_q:
                problems.append((n.name, "int8 weights but a float input (quantize its input too)"))
            if x_q and not w_q and n.input[1] in inits:
                problems.append((n.name, "quantized input but float weights (quantize its weights too)"))
    return problems
