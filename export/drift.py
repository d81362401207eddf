"""Drift and accuracy of graph outputs: :mod:`edgepose.metrics` for ``{"position", "rotation", ...}`` dicts.

Drift is what a precision pass changes: for each frame, the distance (m) between the two
models' positions and the angle (deg, ``2·acos(|<q1,q2>|)``) between their rotations,
summarised with the one vocabulary of :mod:`edgepose.metrics` (``drift_p50_m``,
``drift_p95_m``, ``drift_max_m``, ``drift_p50_deg``, ...). Accuracy is the per-frame pose
error against the ground truth (``median_position_m``, ...).

Outputs are dicts ``{"position" (N,3) m, "rotation" (N,4) wxyz, ...}`` as returned by
:func:`edgepose.export.parity.evaluate_onnx` and :func:`~edgepose.export.parity.torch_outputs`.
Pure numpy.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from edgepose.errors import EdgePoseError
from edgepose.metrics import drift_summary, error_summary, pose_errors, within_bounds  # noqa: F401  (within_bounds: the one check)
from edgepose.uncertainty import calibration

#: what a row says of sigma when the outputs carry it: training's ``test.*`` keys, the bench's keys
SIGMA_KEYS = ("within_1sigma_position", "within_2sigma_position", "within_3sigma_position",
              "within_1sigma_rotation", "within_2sigma_rotation", "within_3sigma_rotation",
              "sigma_spearman_position", "sigma_spearman_rotation")


def _check(outputs: Dict[str, np.ndarray], name: str) -> None:
    for k, w in (("position", 3), ("rotation", 4)):
        if k not in outputs:
            raise EdgePoseError(f"{name} lacks {k!r}; has {sorted(outputs)}")
        a = np.asarray(outputs[k])
        if a.ndim != 2 or a.shape[1] != w:
            raise EdgePoseError(f"{name}[{k!r}] must be (N, {w}); got {a.shape}")


def drift(outputs_a: Dict[str, np.ndarray], outputs_b: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Drift summary (:func:`edgepose.metrics.summarize_drift`): ``n_frames, drift_p50_m,
    drift_p95_m, drift_max_m, drift_p50_deg, drift_p95_deg, drift_max_deg``."""
    _check(outputs_a, "outputs_a")
    _check(outputs_b, "outputs_b")
    if len(outputs_a["position"]) != len(outputs_b["position"]):
        raise EdgePoseError(f"outputs cover different frames: {len(outputs_a['position'])} vs "
                            f"{len(outputs_b['position'])}")
    return drift_summary(outputs_a["position"], outputs_a["rotation"], outputs_b["position"], outputs_b["rotation"])


def accuracy(outputs: Dict[str, np.ndarray], true_position: np.ndarray,
             true_rotation: np.ndarray) -> Dict[str, float]:
    """Pose errors against ground truth (``(N,3)`` m, ``(N,4)`` wxyz); see ``summarize_errors``."""
    _check(outputs, "outputs")
    tp, tq = np.asarray(true_position), np.asarray(true_rotation)
    if tp.shape != np.shape(outputs["position"]) or tq.shape != np.shape(outputs["rotation"]):
        raise EdgePoseError(f"ground truth {tp.shape}/{tq.shape} does not match outputs "
                            f"{np.shape(outputs['position'])}/{np.shape(outputs['rotation'])}")
    return error_summary(outputs["position"], outputs["rotation"], tp, tq)


def drift_row(outputs: Dict[str, np.ndarray], reference: Dict[str, np.ndarray],
              true_position: Optional[np.ndarray] = None, true_rotation: Optional[np.ndarray] = None,
              reference_error_m: Optional[float] = None) -> Dict[str, float]:
    """One validation row for the manifest: the :func:`drift` summary vs ``reference`` and, with
    ground truth, the median/mean errors; with a reference error, ``drift_p50_rel`` = drift
    median / reference median position error; with ground truth and ``outputs["sigma"] (N, 2)``
    [m, rad], how sigma covers and ranks the errors (:data:`SIGMA_KEYS`, fractions and Spearman,
    :func:`edgepose.uncertainty.calibration`): what each precision does to the uncertainty a
    filter fuses."""
    row = drift(outputs, reference)
    if true_position is not None and true_rotation is not None:
        acc = accuracy(outputs, true_position, true_rotation)
        row.update({k: acc[k] for k in ("median_position_m", "median_rotation_deg",
                                        "mean_position_m", "mean_rotation_deg")})
        if outputs.get("sigma") is not None:
            e_p, e_deg = pose_errors(outputs["position"], outputs["rotation"], true_position, true_rotation)
            cal = calibration(np.asarray(outputs["sigma"], np.float64), e_p, e_deg)
            row.update({k: cal[k] for k in SIGMA_KEYS})
        if reference_error_m is None:
            reference_error_m = accuracy(reference, true_position, true_rotation)["median_position_m"]
    if reference_error_m:
        row["drift_p50_rel"] = row["drift_p50_m"] / reference_error_m
    return row
