"""Sensitivity-guided mixed precision: leave the INT8-sensitive parts in float until drift fits.

Naive post-training INT8 moves a pose regressor's output by a large fraction of its own error.
:func:`guided_int8` measures, on validation frames, how much drift each quantizable unit adds
on its own and greedily leaves the most sensitive units in float (FP32 in ONNX Runtime; the
TensorRT builder runs them in FP16 when its FP16 flag is set) until the median drift against
FP32 is within ``max_drift_m`` / ``max_drift_deg`` -- or reports the best it reached.

Units (:func:`quant_units`) are the backbone's blocks as the ONNX node names show them: for
EfficientNet-Lite0 the stem, ``_blocks.0`` .. ``_blocks.15`` and the head conv. A unit is
the scope of a weighted node (Conv/Gemm/MatMul) cut after its first indexed part
(``_blocks.3``), and every other node joins the unit of the weighted node before it.

All drift here is Q/DQ evaluated in float (ONNX Runtime with graph optimisations disabled),
the arithmetic TensorRT's INT8 approximates; calibration runs once (a ranges cache).
"""
from __future__ import annotations

import re
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from edgepose.errors import ConfigError, require
from edgepose.metrics import within_bounds

from ..drift import drift
from .qdq import pre_process_graph, quantize_int8
from ..onnx_export import node_group
from ..parity import evaluate_onnx

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_INDEXED = re.compile(r".*\.\d+$")


def _unit_key(name: str) -> str:
    parts = [p for p in name.strip("/").split("/")[:-1] if p]  # drop the op part
    for i, p in enumerate(parts):
        if _INDEXED.match(p):
            return "/".join(parts[: i + 1])
    return "/".join(parts) or name


def quant_units(model_or_path) -> "OrderedDict[str, List[str]]":
    """``{unit: [node names]}`` of the backbone, in graph order (see the module docstring)."""
    onnx = require("onnx", "reading ONNX graphs")
    model = model_or_path if hasattr(model_or_path, "graph") else onnx.load(str(model_or_path))
    units: "OrderedDict[str, List[str]]" = OrderedDict()
    current = None
    for n in model.graph.node:
        if node_group(n.name) != "backbone" or n.op_type == "Constant":
            continue
        if n.op_type in WEIGHTED_OPS or current is None:
            current = _unit_key(n.name)
        units.setdefault(current, []).append(n.name)
    return units


def unit_label(unit: str) -> str:
    """A short name: ``backbone/_blocks.3`` -> ``_blocks.3``."""
    return unit.split("/", 1)[1] if unit.startswith("backbone/") and "/" in unit else unit


def _score(d: Dict[str, float], max_m: Optional[float], max_deg: Optional[float]) -> float:
    s = 0.0
    if max_m:
        s = max(s, d["drift_p50_m"] / max_m)
    if max_deg:
        s = max(s, d["drift_p50_deg"] / max_deg)
    return s


def guided_int8(src_onnx: Union[str, Path], dst_onnx: Union[str, Path], calib_images: np.ndarray,
                val_images: np.ndarray, max_drift_m: Optional[float] = None,
                max_drift_deg: Optional[float] = None, method: str = "minmax", max_steps: int = 32,
                batch: Optional[int] = None, progress: Optional[Callable[[str], None]] = None,
                workdir: Optional[Union[str, Path]] = None,
                candidates: Optional[Sequence[str]] = None) -> dict:
    """Quantize ``src_onnx`` to ``dst_onnx``, leaving sensitive units in float until drift fits.

    Args:
        calib_images: ``uint8 (N, H, W, 3)`` training-split frames.
        val_images: ``uint8 (M, H, W, 3)`` validation frames (not the calibration ones).
        max_drift_m / max_drift_deg: bounds on the median per-frame drift against FP32.
        max_steps: at most this many units are moved to float.
        progress: called with a line of text after each measurement.
        candidates: unit labels (e.g. ``["_conv_stem", "_blocks.0"]``) that may be left in
            float; default all units. Each candidate costs one quantization to rank it.

    Returns ``{path, naive {drift}, guided {drift}, float_units [labels, most sensitive
    first], float_nodes, sensitivity {label: drift}, steps [{float_units, drift}], met, bound}``.
    """
    if max_drift_m is None and max_drift_deg is None:
        raise ConfigError("guided INT8 needs a bound: --int8-max-drift-m and/or --int8-max-drift-deg")
    for v, what in ((max_drift_m, "max_drift_m"), (max_drift_deg, "max_drift_deg")):
        if v is not None and not v > 0:
            raise ConfigError(f"{what} must be > 0, got {v}")
    say = progress or (lambda s: None)
    units = quant_units(src_onnx)
    if candidates is not None:
        labels = {unit_label(u): u for u in units}
        unknown = [c for c in candidates if c not in labels]
        if unknown:
            raise ConfigError(f"unknown units {unknown}; the graph has {list(labels)}")
        ranked_units = [labels[c] for c in candidates]
    else:
        ranked_units = list(units)
    ref = evaluate_onnx(src_onnx, val_images, optimization="disable")
    dst = Path(dst_onnx)
    with tempfile.TemporaryDirectory(prefix="edgepose-guided-", dir=workdir) as tmp:
        tmp = Path(tmp)
        cache = tmp / "ranges.json"
        trial = tmp / "trial.onnx"

        pre = pre_process_graph(src_onnx, tmp / "pre.onnx")

        def measure(float_nodes: List[str], out: Path = trial) -> (dict, dict):
            info = quantize_int8(pre, out, calib_images, method=method, exclude_nodes=float_nodes,
                                 batch=batch, calibration_cache=cache, pre_process=False)
            return drift(evaluate_onnx(out, val_images, optimization="disable"), ref), info

        naive, naive_info = measure([], dst)
        say(f"naive INT8: drift p50 {naive['drift_p50_m']:.4g} m, {naive['drift_p50_deg']:.4g} deg")
        steps = [{"float_units": [], "drift": naive}]
        result = {"naive": naive, "guided": naive, "float_units": [], "float_nodes": [],
                  "sensitivity": {}, "steps": steps, "info": naive_info,
                  "bound": {"max_drift_m": max_drift_m, "max_drift_deg": max_drift_deg}}
        if within_bounds(naive, max_drift_m, max_drift_deg):
            result.update(met=True, path=str(dst))
            return result

        # sensitivity: quantize one unit alone, the rest in float
        all_nodes = [n for ns in units.values() for n in ns]
        sens = {}
        for unit in ranked_units:
            nodes = units[unit]
            others = [n for n in all_nodes if n not in set(nodes)]
            d, _ = measure(others)
            sens[unit] = d
            say(f"  sensitivity {unit_label(unit)}: {d['drift_p50_m']:.4g} m, {d['drift_p50_deg']:.4g} deg")
        order = sorted(ranked_units, key=lambda u: _score(sens[u], max_drift_m, max_drift_deg), reverse=True)
        result["sensitivity"] = {unit_label(u): sens[u] for u in order}

        best = (naive, [], naive_info)
        floated: List[str] = []
        met = False
        for unit in order[:max_steps]:
            floated.append(unit)
            nodes = [n for u in floated for n in units[u]]
            d, info = measure(nodes)
            steps.append({"float_units": [unit_label(u) for u in floated], "drift": d})
            say(f"  float {len(floated)}: +{unit_label(unit)} -> {d['drift_p50_m']:.4g} m, "
                f"{d['drift_p50_deg']:.4g} deg")
            if _score(d, max_drift_m, max_drift_deg) < _score(best[0], max_drift_m, max_drift_deg):
                best = (d, list(floated), info)
            if within_bounds(d, max_drift_m, max_drift_deg):
                met = True
                break
        d, floated_best, _ = best
        nodes = [n for u in floated_best for n in units[u]]
        _, info = measure(nodes, dst)  # write the chosen graph (same cache, deterministic)
        result.update(guided=d, float_units=[unit_label(u) for u in floated_best], float_nodes=nodes,
                      info=info, met=met, path=str(dst))
        return result
