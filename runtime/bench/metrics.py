"""Accuracy, drift and uncertainty-calibration figures of one bench row (numpy only).

* accuracy: per-frame position error (m, Euclidean) and rotation error
  ``2·acos(|<q1, q2>|)`` (reported in degrees) against the ground truth, summarised by
  :func:`edgepose.geometry.summarize_errors`.
* drift: the same two distances between a row's predictions and the predictions of its
  FP32 reference row, frame by frame (p50 / p95 / max). Drift isolates what a precision
  change costs, independently of how good the model is.
* calibration: does ``sigma`` (the model's expected error per frame: ``sigma[:, 0]`` m,
  ``sigma[:, 1]`` rad) rank the frames by their actual error (Spearman correlation), and
  what fraction of frames have an error within 1 and 2 sigma.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ...errors import EdgePoseError
from ...geometry import rotation_error_deg, summarize_drift, summarize_errors, translation_error


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


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks ``1..N`` of ``x (N,)``; tied values share the mean of their ranks.

    >>> rankdata(np.array([10.0, 30.0, 20.0, 20.0])).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    x = np.asarray(x, np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.size, np.float64)
    # boundaries of runs of equal values in the sorted array
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], x.size]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = 0.5 * (s + 1 + e)  # mean of ranks s+1 .. e
    return ranks


def spearman(x, y) -> Optional[float]:
    """Spearman rank correlation of ``x (N,)`` and ``y (N,)`` (Pearson on average ranks).

    ``None`` when it is undefined: fewer than 3 frames, or one side is constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 45])
    1.0
    """
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise EdgePoseError(f"spearman: lengths differ ({x.size} vs {y.size})")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return None
    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
    if den == 0.0:
        return None
    return float(np.clip(np.sum(rx * ry) / den, -1.0, 1.0))


def calibration(sigma: np.ndarray, pos_err_m: np.ndarray, rot_err_deg: np.ndarray) -> Dict[str, Optional[float]]:
    """How well ``sigma (N, 2)`` ([m, rad]) predicts the actual per-frame errors.

    Keys: ``sigma_spearman_position``, ``sigma_spearman_rotation`` (rank correlation of sigma
    with the error; 1 = sigma orders the frames perfectly), ``within_1sigma_position``,
    ``within_2sigma_position``, ``within_1sigma_rotation``, ``within_2sigma_rotation``
    (fraction of frames whose error is at most k times its sigma), and the medians
    ``median_sigma_position_m``, ``median_sigma_rotation_deg``.
    """
    sigma = np.asarray(sigma, np.float64)
    pe = np.asarray(pos_err_m, np.float64)
    re = np.asarray(rot_err_deg, np.float64)
    if sigma.ndim != 2 or sigma.shape[1] != 2 or sigma.shape[0] != pe.size or pe.size != re.size:
        raise EdgePoseError(f"sigma must be (N, 2) with N = {pe.size} frames; got {sigma.shape}")
    s_pos = sigma[:, 0]
    s_rot = np.degrees(sigma[:, 1])
    return {
        "sigma_spearman_position": spearman(s_pos, pe),
        "sigma_spearman_rotation": spearman(s_rot, re),
        "within_1sigma_position": float(np.mean(pe <= s_pos)),
        "within_2sigma_position": float(np.mean(pe <= 2 * s_pos)),
        "within_1sigma_rotation": float(np.mean(re <= s_rot)),
        "within_2sigma_rotation": float(np.mean(re <= 2 * s_rot)),
        "median_sigma_position_m": float(np.median(s_pos)),
        "median_sigma_rotation_deg": float(np.median(s_rot)),
    }
