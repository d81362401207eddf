"""Fill a finished model's pose memory and choose how it blends with the regressor.

:mod:`edgepose.train.pose_memory` describes what the memory computes. After training,
:func:`fit_memory`

1. stores the fit frames' FC features and poses;
2. chooses ``k`` and the softmax temperature by leave-one-out over those frames (each frame
   answered by the others: honest for retrieval, and many more frames than validation has);
3. chooses the blend weights (position and rotation separately) on the validation frames, from
   the regressor's and the memory's answers there (median error, :data:`BLEND_GRID`);
4. chooses the disagreement weight of sigma on the validation frames (Spearman rank
   correlation of sigma with the error, :data:`DISAGREEMENT_GRID`).

Sigma is then calibrated on the same validation frames (:func:`edgepose.train.finish.calibrate_sigma`,
with the memory of the fit frames only, so no validation frame finds itself), and
:func:`extend_memory` adds the validation frames to the memory: at test time the database is
every training frame, as for the retrieval baseline.

Without validation frames there is nothing honest to choose a blend on: the memory stays empty.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from edgepose.geometry import quat_canonical

from .data import FrameCache
from .evaluate import eval_batches, predict
from .pose_memory import UNIFORM_TEMPERATURE, neighbour_pose

#: candidates, chosen by leave-one-out over the fit frames
K_GRID = (1, 2, 3, 5, 8)
TEMPERATURE_GRID = (0.01, 0.03, UNIFORM_TEMPERATURE)
#: weight of the memory's estimate, chosen on the validation frames (0: regressor only)
BLEND_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: weight of the regressor/memory disagreement in sigma, chosen on the validation frames
DISAGREEMENT_GRID = (0.0, 0.5, 1.0, 2.0)
#: fewer validation frames than this cannot rank sigma: the disagreement weight stays 1
MIN_RANK_FRAMES = 8
#: the default cap on stored views (``--memory-size``); more training frames are subsampled evenly
DEFAULT_SIZE = 4096


def fc_features(model, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """The FC features ``(N, hidden)`` of ``images (N, H, W, 3)`` uint8, in eval mode."""
    return torch.cat(eval_batches(model, images, device,
                                  lambda x: model.forward_features(model.normalize_input(x)).float().cpu(), batch_size))


def _rows(n: int, cap: int) -> np.ndarray:
    """Evenly spread row indices, at most ``cap`` of ``n``."""
    return np.arange(n) if n <= cap else np.unique(np.linspace(0, n - 1, cap).round().astype(int))


def _database(model, caches: Sequence[Optional[FrameCache]], device, cap: int):
    caches = [c for c in caches if c is not None and len(c)]
    feats = torch.cat([fc_features(model, c.images, device) for c in caches])
    pos = torch.from_numpy(np.concatenate([model.normalize_position(torch.from_numpy(c.position_m).float()).numpy()
                                           for c in caches])).float()
    rot = torch.from_numpy(quat_canonical(np.concatenate([c.rotation_q for c in caches]))).float()
    rows = torch.from_numpy(_rows(len(feats), cap))
    return feats[rows], pos[rows], rot[rows]


def _angle(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    return 2.0 * torch.acos((q1 * q2).sum(-1).abs().clamp(max=1.0))


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _choose_neighbours(feats, pos, rot):
    """``(k, temperature, score)`` of the best leave-one-out answers over the stored views."""
    f = _unit_rows(feats)
    sim = f @ f.t()
    sim.fill_diagonal_(-3.0)  # a view never answers itself (cosine >= -1)
    best = None
    for k in K_GRID:
        if k >= len(f):
            break
        for t in TEMPERATURE_GRID:
            if k == 1 and t != TEMPERATURE_GRID[0]:
                continue  # one neighbour: the temperature does not matter
            p, q, _ = neighbour_pose(sim, pos, rot, k, torch.tensor([t]))
            score = float((p - pos).norm(dim=-1).median() + _angle(q, rot).median())
            if best is None or score < best[2]:
                best = (k, t, score)
    return best if best is not None else (1, TEMPERATURE_GRID[0], float("nan"))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return -1.0  # a constant cannot rank anything
    r = spearmanr(a, b).correlation
    return float(r) if np.isfinite(r) else -1.0


@torch.no_grad()
def fit_memory(model, fit: FrameCache, val: Optional[FrameCache], device: torch.device,
               size: int = DEFAULT_SIZE) -> Dict[str, object]:
    """Store the fit frames in ``model.memory`` and choose its settings (see the module doc).

    Returns what was chosen and the validation scores behind it (errors in metres/degrees).
    ``size`` 0, or no validation frames, leaves the memory empty.
    """
    memory = model.memory
    memory.store(torch.zeros(0, memory.features.shape[1]), torch.zeros(0, 3), torch.zeros(0, 4), 1)
    if size <= 0:
        return {"size": 0, "method": "off (--memory-size 0)"}
    if val is None or len(val) < 2:
        return {"size": 0, "method": "off: no validation frames to choose the blend on (pass --val-every K)"}
    feats, pos, rot = _database(model, [fit], device, size)
    k, t, loo = _choose_neighbours(feats, pos, rot)
    memory.store(feats, pos, rot, k)
    memory.temperature.fill_(t)
    memory.disagreement.zero_()
    scale = float(model.position_scale)
    # the regressor's and the memory's answers on the validation frames (blend 0 and 1)
    answers = {}
    for name, b in (("regressor", 0.0), ("memory", 1.0)):
        memory.blend.fill_(b)
        answers[name] = predict(model, val.images, device)
    p0, q0, s0 = answers["regressor"]
    p1, q1, _ = answers["memory"]
    p0t, p1t = torch.from_numpy(p0), torch.from_numpy(p1)
    q0t = torch.from_numpy(q0)
    q1t = torch.from_numpy(q1)
    q0t = q0t * torch.where((q0t * q1t).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    true_p = torch.from_numpy(val.position_m)
    true_q = torch.from_numpy(val.rotation_q)

    def pos_err(a):
        return (p0t + a * (p1t - p0t) - true_p).norm(dim=-1)

    def rot_err(b):
        return _angle(_unit_rows(q0t + b * (q1t - q0t)), true_q)

    a = min(BLEND_GRID, key=lambda v: float(pos_err(v).median()))
    b = min(BLEND_GRID, key=lambda v: float(rot_err(v).median()))
    memory.blend.copy_(torch.tensor([a, b], dtype=torch.float32))
    # disagreement weight of sigma: the ranking of the errors on validation
    e_p, e_q = pos_err(a).numpy(), rot_err(b).numpy()
    d = np.stack([np.linalg.norm(p0 - p1, axis=1) / scale, 2.0 * (q0t - q1t).norm(dim=-1).numpy()], axis=1)
    head = s0 / np.array([scale, 1.0])  # the heads' sigma, normalised units / radians (scale still 1)
    weights = [1.0, 1.0]
    if len(val) >= MIN_RANK_FRAMES:
        for j, e in enumerate((e_p, e_q)):
            weights[j] = max(DISAGREEMENT_GRID,
                             key=lambda w: (_spearman(np.hypot(head[:, j], w * d[:, j]), e), -w))
    memory.disagreement.copy_(torch.tensor(weights, dtype=torch.float32))
    model.config.update(memory_size=memory.size, memory_k=memory.k)
    return {"size": memory.size, "k": int(k), "temperature": float(t), "blend": [float(a), float(b)],
            "disagreement": [float(w) for w in weights], "leave_one_out_score": loo,
            "method": "k, temperature: leave-one-out over the fit frames; blend, disagreement: validation frames",
            "val": {"regressor_median_position_m": float(pos_err(0.0).median()),
                    "regressor_median_rotation_deg": float(np.degrees(float(rot_err(0.0).median()))),
                    "memory_median_position_m": float(pos_err(1.0).median()),
                    "memory_median_rotation_deg": float(np.degrees(float(rot_err(1.0).median()))),
                    "blend_median_position_m": float(np.median(e_p)),
                    "blend_median_rotation_deg": float(np.degrees(np.median(e_q)))}}


@torch.no_grad()
def extend_memory(model, caches: List[Optional[FrameCache]], device: torch.device, size: int = DEFAULT_SIZE) -> int:
    """Refill a fitted memory with every frame of ``caches`` (fit + validation); keeps its
    settings. Returns the number of stored views (0: the memory was off and stays off)."""
    memory = model.memory
    if memory.size == 0:
        return 0
    feats, pos, rot = _database(model, caches, device, size)
    k = memory.k
    memory.store(feats, pos, rot, k)
    model.config.update(memory_size=memory.size, memory_k=memory.k)
    return memory.size
