"""Pose-error and drift figures: one vocabulary for training, export and the bench.

Two comparisons of poses on the same frames, both per frame as a position distance (m,
Euclidean) and a rotation angle (deg, ``2·acos(|<q1, q2>|)``: q and -q are the same rotation):

* **error** against the ground truth, summarised by :func:`summarize_errors`:
  ``n_frames, median_position_m, mean_position_m, p90_position_m, median_rotation_deg,
  mean_rotation_deg, p90_rotation_deg, within_{m}m_{d}deg``;
* **drift** between two models' predictions (a precision vs its FP32 reference), summarised by
  :func:`summarize_drift`: ``n_frames`` and :data:`DRIFT_KEYS` = ``drift_p50_m, drift_p95_m,
  drift_max_m, drift_p50_deg, drift_p95_deg, drift_max_deg``.

The same keys appear in ``metrics.json`` (training), the bundle manifest's ``validation`` rows
(export), guided INT8's search record and ``report.json``/``report.csv`` (bench); nothing
renames them on the way. :func:`within_bounds` is the one drift-bound check. Pure numpy.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from .errors import EdgePoseError
from .geometry import rotation_error_deg, translation_error

#: thresholds (metres, degrees) reported by :func:`summarize_errors`
DEFAULT_THRESHOLDS: Tuple[Tuple[float, float], ...] = ((0.25, 2.0), (0.5, 5.0), (5.0, 10.0))
#: the keys of a drift summary (besides ``n_frames``)
DRIFT_KEYS = ("drift_p50_m", "drift_p95_m", "drift_max_m", "drift_p50_deg", "drift_p95_deg", "drift_max_deg")


def pose_errors(pos_a: np.ndarray, rot_a: np.ndarray, pos_b: np.ndarray,
                rot_b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame ``(position distance (N,) m, rotation angle (N,) deg)`` between two pose sets.

    ``pos_* (N, 3)`` m, ``rot_* (N, 4)`` wxyz quaternions. Raises :class:`EdgePoseError` when
    the sets differ in length or shape.
    """
    pa, pb = np.asarray(pos_a, np.float64), np.asarray(pos_b, np.float64)
    qa, qb = np.asarray(rot_a, np.float64), np.asarray(rot_b, np.float64)
    if pa.shape != pb.shape or qa.shape != qb.shape or pa.shape[:-1] != qa.shape[:-1] \
            or pa.shape[-1:] != (3,) or qa.shape[-1:] != (4,):
        raise EdgePoseError(f"pose sets differ: positions {pa.shape} vs {pb.shape}, rotations {qa.shape} vs "
                            f"{qb.shape}; expected (N, 3) and (N, 4) for both")
    return translation_error(pa, pb), rotation_error_deg(qa, qb)


def summarize_errors(pos_err_m: Iterable[float], rot_err_deg: Iterable[float],
                     thresholds=DEFAULT_THRESHOLDS) -> Dict[str, float]:
    """Median, mean and p90 of per-frame errors and the fraction under each threshold.

    Keys: ``median_position_m, mean_position_m, p90_position_m, median_rotation_deg,
    mean_rotation_deg, p90_rotation_deg, n_frames`` and ``within_{m}m_{d}deg``.
    """
    pe = np.asarray(list(pos_err_m), dtype=np.float64)
    re = np.asarray(list(rot_err_deg), dtype=np.float64)
    if pe.shape != re.shape:
        raise EdgePoseError(f"error arrays differ in shape: {pe.shape} vs {re.shape}")
    if pe.size == 0:
        raise EdgePoseError("no frames to summarise", hint="check that the split is not empty")
    out = {
        "n_frames": int(pe.size),
        "median_position_m": float(np.median(pe)),
        "mean_position_m": float(np.mean(pe)),
        "p90_position_m": float(np.percentile(pe, 90)),
        "median_rotation_deg": float(np.median(re)),
        "mean_rotation_deg": float(np.mean(re)),
        "p90_rotation_deg": float(np.percentile(re, 90)),
    }
    for m, d in thresholds:
        out[f"within_{m:g}m_{d:g}deg"] = float(np.mean((pe <= m) & (re <= d)))
    return out


def summarize_drift(distance_m: Iterable[float], angle_deg: Iterable[float]) -> Dict[str, float]:
    """Median, p95 and max of per-frame drift between two models' outputs on the same frames.

    ``distance_m (N,)`` position distances (m), ``angle_deg (N,)`` rotation angles (deg), as
    :func:`pose_errors` gives them. Keys: ``n_frames`` and :data:`DRIFT_KEYS`.
    """
    dp = np.asarray(list(distance_m), dtype=np.float64)
    dq = np.asarray(list(angle_deg), dtype=np.float64)
    if dp.shape != dq.shape:
        raise EdgePoseError(f"drift arrays differ in shape: {dp.shape} vs {dq.shape}")
    if dp.size == 0:
        raise EdgePoseError("no frames to compare for drift")
    return {
        "n_frames": int(dp.size),
        "drift_p50_m": float(np.median(dp)), "drift_p95_m": float(np.percentile(dp, 95)),
        "drift_max_m": float(dp.max()),
        "drift_p50_deg": float(np.median(dq)), "drift_p95_deg": float(np.percentile(dq, 95)),
        "drift_max_deg": float(dq.max()),
    }


def error_summary(pos_pred, rot_pred, pos_true, rot_true, thresholds=DEFAULT_THRESHOLDS) -> Dict[str, float]:
    """:func:`summarize_errors` of predictions against the ground truth."""
    return summarize_errors(*pose_errors(pos_pred, rot_pred, pos_true, rot_true), thresholds=thresholds)


def drift_summary(pos, rot, pos_ref, rot_ref) -> Dict[str, float]:
    """:func:`summarize_drift` of predictions against reference predictions on the same frames."""
    return summarize_drift(*pose_errors(pos, rot, pos_ref, rot_ref))


def within_bounds(summary: Dict[str, float], max_drift_m: Optional[float] = None,
                  max_drift_deg: Optional[float] = None, stat: str = "p50") -> bool:
    """Whether a drift summary's ``stat`` (``p50``, ``p95`` or ``max``) respects the bounds
    (``None`` = no bound).

    >>> within_bounds({"drift_p50_m": 0.01, "drift_p50_deg": 2.0}, max_drift_m=0.02)
    True
    >>> within_bounds({"drift_p50_m": 0.01, "drift_p50_deg": 2.0}, 0.02, 1.0)
    False
    """
    ok = True
    if max_drift_m is not None:
        ok &= summary[f"drift_{stat}_m"] <= max_drift_m
    if max_drift_deg is not None:
        ok &= summary[f"drift_{stat}_deg"] <= max_drift_deg
    return bool(ok)
