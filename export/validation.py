"""Accuracy and drift vs FP32 of every exported graph on the validation frames (the manifest's
``validation`` section), and the ``--max-drift-*`` check over them.

INT8 is run twice: Q/DQ in float (``int8``: the numerics TensorRT approximates) and through
ONNX Runtime's own int8 kernels (``int8-ort``, labelled as such).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edgepose.metrics import within_bounds
from edgepose.progress import progress

from .drift import drift_row
from .frames import ExportFrames
from .parity import evaluate_onnx

LABELS = {"int8": "INT8 Q/DQ run in float (TensorRT-like numerics)",
          "int8-ort": "INT8 through ONNX Runtime's int8 kernels (CPU; not what TensorRT runs)"}


def measure(bundle_dir: Path, onnx_files: Dict[str, str], frames: ExportFrames,
            max_drift_m: Optional[float] = None, max_drift_deg: Optional[float] = None) -> Tuple[dict, List[str]]:
    """``(rows, failures)``: one row per graph (``fp32``, ``fp16``, ``int8``, ``int8-ort``) with
    accuracy against the ground truth and drift against FP32, and one line per row whose median
    drift exceeds a bound (``None`` = no bound)."""
    bundle_dir = Path(bundle_dir)
    runs = [(p, rel, "disable") for p, rel in onnx_files.items()]
    if "int8" in onnx_files:
        runs.append(("int8-ort", onnx_files["int8"], "all"))
    outs = {}
    for key, rel, opt in progress(runs, desc="drift evaluation", unit="graph"):
        outs[key] = evaluate_onnx(bundle_dir / rel, frames.val, optimization=opt)
    ref = outs["fp32"]
    rows, failures = {}, []
    for key, out in outs.items():
        row = drift_row(out, ref, frames.val_position, frames.val_rotation)
        row["file"] = onnx_files[key.split("-")[0]]
        row["label"] = LABELS.get(key, f"{key.upper()} in ONNX Runtime")
        rows[key] = row
        if key != "fp32":
            if not within_bounds(row, max_drift_m, max_drift_deg):
                failures.append(f"{key}: median drift {row['drift_p50_m']:.4g} m / {row['drift_p50_deg']:.4g} deg "
                                f"exceeds --max-drift-m {max_drift_m} / --max-drift-deg {max_drift_deg}")
    return rows, failures
