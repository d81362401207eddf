"""INT8 explicit quantization: a Q/DQ ONNX that runs in ONNX Runtime and builds in TensorRT.

:func:`quantize_int8` writes symmetric INT8 (zero points 0, per-channel weights on axis 0, int8
weight initializers, biases left in float: TensorRT folds them itself), opset <= 20, with the
Q/DQ placement TensorRT's developer guide recommends (:mod:`edgepose.export.int8.placement`):
the inputs of every Conv are quantized, residual Add inputs share those pairs, and no Conv or
activation output is. The preprocessing, the FC layer, the heads and the post-processing stay
unquantized (:func:`default_exclusions`). Activation ranges come from calibration on training
frames (:mod:`edgepose.export.int8.ranges`, ONNX Runtime's calibrators; see there why entropy
used to equal MinMax) or, for a quantization-aware fine-tuned model, from the model itself
(``act_amax``): the same placement and the same writer either way.

Earlier versions called ``onnxruntime.quantization.quantize_static``. With symmetric
activations it quantizes the output of every Conv before its Clip (ReLU6) as well as the next
input: TensorRT then runs a requantize step per layer, and half of the int8 range covers
negative values the Clip removes. The placement rule is checked by
:func:`edgepose.export.int8.placement.placement_problems`.

:func:`check_qdq_graph` verifies a file node by node against TensorRT's Q/DQ rules. Evaluate
the result with :func:`edgepose.export.parity.evaluate_onnx` and ``optimization="disable"``
for quantize->dequantize in float (what TensorRT approximates), ``"all"`` for ORT's int8 kernels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional, Union

import numpy as np

from edgepose.atomic import atomic_write_bytes
from edgepose.errors import ConfigError, EdgePoseError, require
from edgepose.input_spec import as_model_input

from ..onnx_export import MAX_OPSET, node_groups
from .calibration import check_calibration_count, iter_batches
from .placement import placement_problems, plan_placement, write_qdq
from .ranges import activation_amax

METHODS = ("minmax", "entropy", "percentile")
DEFAULT_PERCENTILE = 99.99
#: node groups never quantized
EXCLUDED_GROUPS = ("preprocess", "fc", "heads", "post")

_INSTALL = "pip install onnxruntime"


def _quant():
    return require("onnxruntime.quantization", "INT8 quantization", _INSTALL)


def default_exclusions(model) -> list:
    """Names of the nodes of :data:`EXCLUDED_GROUPS` (preprocess, FC, heads, post-processing)."""
    groups = node_groups(model)
    return [n for g in EXCLUDED_GROUPS for n in groups[g]]


def make_reader(input_name: str, input_kind: str, images: np.ndarray, batch: int):
    """An ORT ``CalibrationDataReader`` over frames ``uint8 (N, H, W, 3)`` in full batches."""
    q = _quant()

    class FrameReader(q.CalibrationDataReader):
        def __init__(self):
            self._batches = [as_model_input(b, input_kind) for b in iter_batches(images, batch)]
            self._i = 0

        def get_next(self):
            if self._i >= len(self._batches):
                return None
            self._i += 1
            return {input_name: self._batches[self._i - 1]}

        def rewind(self):
            self._i = 0

        def __len__(self):
            return len(self._batches)

        def set_range(self, start_index: int, end_index: int):
            self._batches = self._batches[start_index:end_index]
            self._i = 0

    return FrameReader()


def _input_spec(model):
    onnx = require("onnx", "INT8 quantization")
    inp = model.graph.input[0]
    elem = inp.type.tensor_type.elem_type
    kind = "uint8" if elem == onnx.TensorProto.UINT8 else "float32"
    dim0 = inp.type.tensor_type.shape.dim[0]
    fixed = dim0.dim_value if dim0.HasField("dim_value") else None
    return inp.name, kind, fixed


def _opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def quantize_int8(src_onnx: Union[str, Path], dst_onnx: Union[str, Path], calib_images: Optional[np.ndarray] = None,
                  method: str = "minmax", exclude_nodes: Iterable[str] = (), batch: Optional[int] = None,
                  percentile: float = DEFAULT_PERCENTILE, calibration_cache: Optional[Union[str, Path]] = None,
                  exclude_defaults: bool = True, pre_process: bool = True,
                  act_amax: Optional[Dict[str, float]] = None) -> dict:
    """Write a symmetric INT8 Q/DQ copy of ``src_onnx`` at TensorRT's placement (:mod:`.placement`).

    Args:
        calib_images: ``uint8 (N, H, W, 3)`` training-split frames at the network resolution
            (not needed when ``act_amax`` is given).
        method: ``"minmax"``, ``"entropy"`` or ``"percentile"`` (``percentile`` then applies);
            ranges come from :func:`edgepose.export.int8.ranges.activation_amax`.
        exclude_nodes: more node names to leave in float (on top of :func:`default_exclusions`).
        batch: calibration batch; a fixed-batch graph forces its own batch (default 8 otherwise).
        calibration_cache: a JSON file of ``{tensor: amax}``: written on the first call and reused
            afterwards, so variants of one graph (the sensitivity search) are calibrated once.
            Must be for the same graph and method.
        pre_process: kept for callers of the earlier ORT-based version (shape inference now
            always runs inside the calibration).
        act_amax: activation ranges to use as they are (``method`` is then ``"qat"``: the ranges a
            quantization-aware fine-tune learned; no calibration runs).

    Returns ``{path, method, frames, batch, opset, quantized_nodes, float_nodes, excluded,
    calibration_cache, n_qdq, placement}``. Raises :class:`EdgePoseError` for too few frames, an
    opset above 20 or a graph that violates the TensorRT rules after quantization.
    """
    onnx = require("onnx", "INT8 quantization", "pip install onnx")
    if method not in METHODS + ("qat",):
        raise ConfigError(f"calibration method must be one of {METHODS}, not {method!r}")
    src = Path(src_onnx)
    if not src.is_file():
        raise EdgePoseError(f"ONNX file not found: {src}", hint="export the FP32 graph first")
    model = onnx.load(str(src))
    opset = _opset(model)
    if opset > MAX_OPSET:
        raise EdgePoseError(f"{src} has opset {opset}; ONNX Runtime static INT8 quantization needs <= {MAX_OPSET}",
                            hint=f"re-export with --opset {min(17, MAX_OPSET)}")
    name, kind, fixed = _input_spec(model)
    excluded = sorted(set((default_exclusions(model) if exclude_defaults else []) + list(exclude_nodes)))
    known = {n.name for n in model.graph.node}
    unknown = [n for n in excluded if n not in known]
    if unknown:
        raise ConfigError(f"nodes to exclude are not in {src}: {unknown[:5]}")
    plan = plan_placement(model, excluded)
    n_frames = 0
    if act_amax is None:
        images = np.asarray(calib_images) if calib_images is not None else None
        if images is None or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise EdgePoseError("calibration frames must be uint8 (N, H, W, 3); got "
                                f"{None if images is None else (images.dtype, images.shape)}")
        if fixed and batch and batch != fixed:
            raise ConfigError(f"{src} has a fixed batch of {fixed}; calibration batch {batch} does not fit it")
        batch = int(fixed or batch or min(8, len(images)) or 1)
        check_calibration_count(len(images), batch)
        n_frames = int(len(images))
        act_amax = _cached_ranges(src, plan, images, name, kind, batch, method, percentile, calibration_cache)
    else:
        method = "qat"
    qmodel = write_qdq(model, act_amax, excluded)
    report = check_qdq_graph(qmodel)
    problems = placement_problems(qmodel)
    if problems:  # the writer's own placement must pass the rule it documents
        raise EdgePoseError(f"Q/DQ placement breaks TensorRT's recommendations: {problems[:3]}")
    dst = Path(dst_onnx)
    atomic_write_bytes(dst, qmodel.SerializeToString())
    quantized = quantized_nodes(qmodel)
    floats = [n.name for n in qmodel.graph.node
              if n.op_type not in ("QuantizeLinear", "DequantizeLinear", "Constant") and n.name not in quantized]
    return {"path": str(dst), "method": method, "percentile": percentile if method == "percentile" else None,
            "frames": n_frames, "batch": batch, "opset": report["opset"],
            "quantized_nodes": quantized, "float_nodes": floats, "excluded": excluded,
            "calibration_cache": str(calibration_cache) if calibration_cache is not None else None,
            "n_qdq": report["n_quantize"] + report["n_dequantize"],
            "placement": {"rule": "TensorRT: inputs of Conv (activation per tensor, weights per channel), "
                                  "residual Add inputs shared with them; no Conv/activation outputs",
                          "activation_tensors": len(plan.tensors), "weighted_nodes": len(plan.weighted)}}


def _cached_ranges(src, plan, images, name, kind, batch, method, percentile, cache) -> Dict[str, float]:
    """Ranges of the plan's tensors, from ``cache`` (JSON) when it has them all, else calibrated."""
    import json

    if cache is not None and Path(cache).is_file():
        stored = json.loads(Path(cache).read_text())
        if stored.get("method") == method and all(t in stored["amax"] for t in plan.tensors):
            return {t: float(stored["amax"][t]) for t in plan.tensors}
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # ORT's calibrators print progress lines
        amax = activation_amax(src, list(plan.tensors), make_reader(name, kind, images, batch), method, percentile)
    if cache is not None:
        atomic_write_bytes(Path(cache), json.dumps({"method": method, "amax": amax}).encode())
    return amax


def pre_process_graph(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """ORT's ``quant_pre_process`` (shape inference only: its optimiser would rename the nodes
    excluded by name) into ``dst``; returns ``src`` unchanged if pre-processing fails."""
    q = _quant()
    try:
        q.quant_pre_process(str(src), str(dst), skip_optimization=True)
        return Path(dst)
    except Exception:  # pre-processing is advisory; quantize the graph as it is
        return Path(src)


def quantized_nodes(model) -> list:
    """Names of compute nodes that read at least one dequantized input (weights or activations)."""
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(i in dq_out for i in n.input)]


def check_qdq_graph(model_or_path) -> dict:
    """Check every Q/DQ node against the TensorRT rules; raise :class:`EdgePoseError` listing violations.

    Rules: opset <= 20; each QuantizeLinear/DequantizeLinear has 3 inputs (x, scale, zero
    point); zero points are int8 and all 0 (symmetric); scales are positive and finite; a
    per-channel (``axis``) scale has the zero point's shape. Returns counts:
    ``{opset, n_quantize, n_dequantize, n_per_channel, n_int8_weights}``.
    """
    onnx = require("onnx", "checking Q/DQ graphs")
    from onnx import numpy_helper

    model = model_or_path if hasattr(model_or_path, "graph") else onnx.load(str(model_or_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:  # Constant nodes can also hold scales/zero points
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    problems = []
    opset = _opset(model)
    if opset > MAX_OPSET:
        problems.append(f"opset {opset} > {MAX_OPSET}")
    nq = ndq = nchan = nw = 0
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if n.op_type == "QuantizeLinear":
            nq += 1
        else:
            ndq += 1
        if len(n.input) != 3 or not n.input[2]:
            problems.append(f"{n.name}: {len(n.input)} inputs, TensorRT needs x, scale and zero point")
            continue
        scale, zp = inits.get(n.input[1]), inits.get(n.input[2])
        if scale is None or zp is None:
            problems.append(f"{n.name}: scale/zero point are not constants")
            continue
        if zp.dtype != np.int8:
            problems.append(f"{n.name}: zero point dtype {zp.dtype}, TensorRT needs int8")
        if np.any(zp != 0):
            problems.append(f"{n.name}: non-zero zero point (asymmetric); TensorRT needs symmetric")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            problems.append(f"{n.name}: scale not positive/finite")
        if scale.size > 1:
            nchan += 1
            if zp.shape != scale.shape:
                problems.append(f"{n.name}: per-channel scale {scale.shape} vs zero point {zp.shape}")
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            nw += 1
            if inits[n.input[0]].dtype != np.int8:
                problems.append(f"{n.name}: weight dtype {inits[n.input[0]].dtype}, expected int8")
    if problems:
        raise EdgePoseError(f"the Q/DQ graph breaks TensorRT's rules ({len(problems)} problems): "
                            + "; ".join(problems[:8]), hint="quantize with edgepose.export.int8.qdq.quantize_int8")
    return {"opset": opset, "n_quantize": nq, "n_dequantize": ndq, "n_per_channel": nchan,
            "n_int8_weights": nw}
