"""Per-frame drift between two models' outputs, and accuracy against ground truth.

Drift is what a precision pass changes: for each frame, the distance (m) between the two
models' positions and the angle (deg, ``2·acos(|<q1,q2>|)``) between their rotations. It is
summarised as median (p50), p95 and max. Accuracy is the usual per-frame pose error against
the ground truth, summarised by :func:`edgepose.geometry.summarize_errors`.

Outputs are dicts ``{"position" (N,3) m, "rotation" (N,4) wxyz, ...}`` as returned by
:func:`edgepose.export.parity.evaluate_onnx` and :func:`~edgepose.export.parity.torch_outputs`.
Pure numpy.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from edgepose.errors import EdgePoseError
from edgepose.geometry import rotation_error_deg, summarize_drift, summarize_errors, translation_error


def _check(outputs: Dict[str, np.ndarray], name: str) -> None:
    for k, w in (("position", 3), ("rotation", 4)):
        if k not in outputs:
            raise EdgePoseError(f"{name} lacks {k!r}; has {sorted(outputs)}")
        a = np.asarray(outputs[k])
        if a.ndim != 2 or a.shape[1] != w:
            raise EdgePoseError(f"{name}[{k!r}] must be (N, {w}); got {a.shape}")


def per_frame_drift(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]):
    """``(position distance (N,) m, rotation angle (N,) deg)`` between two outputs."""
    _check(a, "outputs_a")
    _check(b, "outputs_b")
    if len(a["position"]) != len(b["position"]):
        raise EdgePoseError(f"outputs cover different frames: {len(a['position'])} vs {len(b['position'])}")
    return translation_error(a["position"], b["position"]), rotation_error_deg(a["rotation"], b["rotation"])


def drift(outputs_a: Dict[str, np.ndarray], outputs_b: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Drift summary: ``position_p50_m, position_p95_m, position_max_m, rotation_p50_deg,
    rotation_p95_deg, rotation_max_deg, n_frames``."""
    s = summarize_drift(*per_frame_drift(outputs_a, outputs_b))
    return {
        "n_frames": s["n_frames"],
        "position_p50_m": s["p50_m"], "position_p95_m": s["p95_m"], "position_max_m": s["max_m"],
        "rotation_p50_deg": s["p50_deg"], "rotation_p95_deg": s["p95_deg"], "rotation_max_deg": s["max_deg"],
    }


def accuracy(outputs: Dict[str, np.ndarray], true_position: np.ndarray,
             true_rotation: np.ndarray) -> Dict[str, float]:
    """Pose errors against ground truth (``(N,3)`` m, ``(N,4)`` wxyz); see ``summarize_errors``."""
    _check(outputs, "outputs")
    tp, tq = np.asarray(true_position), np.asarray(true_rotation)
    if tp.shape != np.shape(outputs["position"]) or tq.shape != np.shape(outputs["rotation"]):
        raise EdgePoseError(f"ground truth {tp.shape}/{tq.shape} does not match outputs "
                            f"{np.shape(outputs['position'])}/{np.shape(outputs['rotation'])}")
    return summarize_errors(translation_error(outputs["position"], tp), rotation_error_deg(outputs["rotation"], tq))


def within_bounds(d: Dict[str, float], max_drift_m: Optional[float], max_drift_deg: Optional[float]) -> bool:
    """Whether a :func:`drift` summary's medians respect the bounds (``None`` = no bound)."""
    ok = True
    if max_drift_m is not None:
        ok &= d["position_p50_m"] <= max_drift_m
    if max_drift_deg is not None:
        ok &= d["rotation_p50_deg"] <= max_drift_deg
    return bool(ok)


def drift_row(outputs: Dict[str, np.ndarray], reference: Dict[str, np.ndarray],
              true_position: Optional[np.ndarray] = None, true_rotation: Optional[np.ndarray] = None,
              reference_error_m: Optional[float] = None) -> Dict[str, float]:
    """One validation row for the manifest: drift vs ``reference``, and accuracy if ground
    truth is given. ``drift_p50_m``/``drift_p95_m``/``drift_p50_deg``/``drift_p95_deg`` and,
    with a reference error, ``drift_p50_rel`` = drift median / reference median error."""
    d = drift(outputs, reference)
    row = {"drift_p50_m": d["position_p50_m"], "drift_p95_m": d["position_p95_m"],
           "drift_p50_deg": d["rotation_p50_deg"], "drift_p95_deg": d["rotation_p95_deg"],
           "n_frames": d["n_frames"]}
    if true_position is not None and true_rotation is not None:
        acc = accuracy(outputs, true_position, true_rotation)
        row.update({k: acc[k] for k in ("median_position_m", "median_rotation_deg",
                                        "mean_position_m", "mean_rotation_deg")})
        if reference_error_m is None:
            reference_error_m = accuracy(reference, true_position, true_rotation)["median_position_m"]
    if reference_error_m:
        row["drift_p50_rel"] = d["position_p50_m"] / reference_error_m
    return row
