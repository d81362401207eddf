"""Pose accuracy of a model or of the mean-pose baseline on cached frames.

Evaluation sees exactly what the runtime will see: the cached images were made with
:func:`edgepose.preprocess.resize_crop` and go through the model with no augmentation.
Errors follow the design: Euclidean distance in metres and ``2 acos |<q1, q2>|`` in degrees,
summarised by :func:`edgepose.metrics.summarize_errors`.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from edgepose.geometry import quat_canonical, rotation_error_deg, translation_error
from edgepose.metrics import summarize_errors

from .data import FrameCache


@torch.no_grad()
def eval_batches(model, images: torch.Tensor, device: torch.device, fn: Callable, batch_size: int = 64) -> List:
    """``[fn(batch) for each batch of images]`` (batches moved to ``device``) with the model in
    eval mode for the call; its mode is restored afterwards."""
    was = model.training
    model.eval()
    try:
        return [fn(images[i : i + batch_size].to(device, non_blocking=True))
                for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was)


def predict(model, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World-unit predictions for ``images (N, H, W, 3)`` uint8.

    Returns ``(position (N, 3) m, rotation (N, 4) wxyz, sigma (N, 2) [m, rad])`` as float64.
    The model is put in eval mode for the call and restored afterwards.
    """
    outs = eval_batches(model, images, device, lambda x: [t.double().cpu() for t in model.to_world(model(x))],
                        batch_size)
    return tuple(torch.cat([o[j] for o in outs]).numpy() for j in range(3))


def pose_summary(pred_position: np.ndarray, pred_rotation: np.ndarray, true_position: np.ndarray,
                 true_rotation: np.ndarray) -> Dict[str, float]:
    """:func:`summarize_errors` of predictions against ground truth (metres, degrees)."""
    return summarize_errors(translation_error(pred_position, true_position),
                            rotation_error_deg(pred_rotation, true_rotation))


def evaluate(model, cache: FrameCache, device: torch.device, batch_size: int = 64) -> Dict[str, float]:
    """Summary of the model's errors on ``cache`` plus ``mean_sigma_position_m`` and
    ``mean_sigma_rotation_deg`` (what its uncertainty heads predicted on average)."""
    p, q, s = predict(model, cache.images, device, batch_size)
    out = pose_summary(p, q, cache.position_m, cache.rotation_q)
    out["mean_sigma_position_m"] = float(s[:, 0].mean())
    out["mean_sigma_rotation_deg"] = float(np.degrees(s[:, 1].mean()))
    return out


def selection_score(summary: Dict[str, float], position_scale: float) -> float:
    """One number to choose the best epoch on the validation frames (lower is better):
    median position error in scene units (metres / ``position_scale``) plus median rotation
    error in radians. A position error of one scene radius weighs as much as one radian."""
    return float(summary["median_position_m"] / position_scale + np.radians(summary["median_rotation_deg"]))


def mean_quaternion(q: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Average rotation of ``q (N, 4)``: the principal eigenvector of ``sum w q q^T``
    (Markley et al. 2007), which ignores the sign of each ``q``. Returns ``(4,)``, ``w >= 0``."""
    q = quat_canonical(np.asarray(q, dtype=np.float64))
    w = np.ones(len(q)) if weights is None else np.asarray(weights, dtype=np.float64)
    M = (q * w[:, None]).T @ q
    vals, vecs = np.linalg.eigh(M)
    return quat_canonical(vecs[:, int(np.argmax(vals))])


def mean_pose_baseline(train: FrameCache, test: FrameCache) -> Dict[str, float]:
    """Errors on ``test`` of always answering the training split's mean pose (mean camera
    centre, average rotation): what a network must beat to have learnt anything."""
    p = train.position_m.mean(axis=0)
    q = mean_quaternion(train.rotation_q)
    n = len(test)
    return pose_summary(np.repeat(p[None], n, 0), np.repeat(q[None], n, 0), test.position_m, test.rotation_q)
