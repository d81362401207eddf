"""Accuracy, drift and uncertainty-calibration figures of one bench row (numpy only).

* accuracy: per-frame position error (m, Euclidean) and rotation error
  ``2·acos(|<q1, q2>|)`` (reported in degrees) against the ground truth, summarised by
  :func:`edgepose.geometry.summarize_errors`.
* drift: the same two distances between a row's predictions and the predictions of its
  FP32 reference row, frame by frame (p50 / p95 / max). Drift isolates what a precision
  change costs, independently of how good the model is.
* calibration: does ``sigma`` (the model's expected error per frame: ``sigma[:, 0]`` m,
  ``sigma[:, 1]`` rad) rank the frames by their actual error (Spearman correlation), and
  what fraction of frames have an error within 1, 2 and 3 sigma
  (:func:`edgepose.uncertainty.calibration`).
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from edgepose.errors import EdgePoseError
from edgepose.geometry import rotation_error_deg, summarize_drift, summarize_errors, translation_error
from edgepose.uncertainty import calibration, rankdata, spearman  # noqa: F401  (the bench's calibration figures)


def per_frame_errors(pos_pred: np.ndarray, rot_pred: np.ndarray, pos_ref: np.ndarray,
                     rot_ref: np.ndarray) -> Dict[str, np.ndarray]:
    """``{"position_m": (N,), "rotation_deg": (N,)}`` between two pose sets.

    ``pos_* (N, 3)`` m, ``rot_* (N, 4)`` wxyz quaternions (q and -q are equal).
    """
    pos_pred = np.asarray(pos_pred, np.float64)
    pos_ref = np.asarray(pos_ref, np.float64)
    if pos_pred.shape != pos_ref.shape or len(rot_pred) != len(rot_ref) or len(rot_pred) != len(pos_pred):
        raise EdgePoseError(f"pose arrays differ in length: {pos_pred.shape} vs {pos_ref.shape}, "
                            f"{np.shape(rot_pred)} vs {np.shape(rot_ref)}")
    return {"position_m": translation_error(pos_pred, pos_ref),
            "rotation_deg": rotation_error_deg(rot_pred, rot_ref)}


def accuracy(pos_pred, rot_pred, pos_true, rot_true) -> Dict[str, float]:
    """Summary of errors against the ground truth (keys of ``summarize_errors``)."""
    e = per_frame_errors(pos_pred, rot_pred, pos_true, rot_true)
    return summarize_errors(e["position_m"], e["rotation_deg"])


def drift(pos, rot, pos_ref, rot_ref) -> Dict[str, float]:
    """Frame-by-frame distance to the reference predictions.

    Keys: ``drift_p50_m, drift_p95_m, drift_max_m, drift_p50_deg, drift_p95_deg, drift_max_deg``.
    """
    e = per_frame_errors(pos, rot, pos_ref, rot_ref)
    s = summarize_drift(e["position_m"], e["rotation_deg"])
    return {f"drift_{k}": v for k, v in s.items() if k != "n_frames"}
