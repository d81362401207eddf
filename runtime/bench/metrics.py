"""Accuracy, drift and uncertainty-calibration figures of one bench row (numpy only).

* accuracy: per-frame position error (m, Euclidean) and rotation error
  ``2·acos(|<q1, q2>|)`` (reported in degrees) against the ground truth, summarised by
  :func:`edgepose.metrics.summarize_errors` (the one vocabulary of training, export and bench).
* drift: the same two distances between a row's predictions and the predictions of its
  FP32 reference row, frame by frame (p50 / p95 / max). Drift isolates what a precision
  change costs, independently of how good the model is.
* calibration: does ``sigma`` (the model's expected error per frame: ``sigma[:, 0]`` m,
  ``sigma[:, 1]`` rad) rank the frames by their actual error (Spearman correlation), and
  what fraction of frames have an error within 1, 2 and 3 sigma
  (:func:`edgepose.uncertainty.calibration`).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from edgepose.metrics import DRIFT_KEYS, drift_summary, error_summary, pose_errors
from edgepose.uncertainty import calibration, rankdata, spearman  # noqa: F401  (the bench's calibration figures)


def per_frame_errors(pos_pred: np.ndarray, rot_pred: np.ndarray, pos_ref: np.ndarray,
                     rot_ref: np.ndarray) -> Dict[str, np.ndarray]:
    """``{"position_m": (N,), "rotation_deg": (N,)}`` between two pose sets.

    ``pos_* (N, 3)`` m, ``rot_* (N, 4)`` wxyz quaternions (q and -q are equal).
    """
    position_m, rotation_deg = pose_errors(pos_pred, rot_pred, pos_ref, rot_ref)
    return {"position_m": position_m, "rotation_deg": rotation_deg}


def accuracy(pos_pred, rot_pred, pos_true, rot_true) -> Dict[str, float]:
    """Summary of errors against the ground truth (keys of ``edgepose.metrics.summarize_errors``)."""
    return error_summary(pos_pred, rot_pred, pos_true, rot_true)


def drift(pos, rot, pos_ref, rot_ref) -> Dict[str, float]:
    """Frame-by-frame distance to the reference predictions: the :data:`edgepose.metrics.DRIFT_KEYS`
    (``drift_p50_m, drift_p95_m, drift_max_m, drift_p50_deg, drift_p95_deg, drift_max_deg``)."""
    s = drift_summary(pos, rot, pos_ref, rot_ref)
    return {k: s[k] for k in DRIFT_KEYS}
