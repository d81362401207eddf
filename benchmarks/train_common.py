"""Helpers shared by the ``benchmarks/train_*.py`` scripts (not part of the package).

The *frozen-backbone* protocol: the ImageNet EfficientNet-Lite0 backbone runs once over every
frame (eval mode, no augmentation) and its pooled features are cached; only PoseNet's FC layer
and heads are trained. It keeps the comparison about the *losses* (same features, same seed,
same steps for every cell) at a cost a 2-core CPU can pay for a whole grid; full-network
fine-tuning through ``edgepose-train`` is the expensive check of the same question.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch

from edgepose.datasets import load_dataset
from edgepose.geometry import rotation_error_deg, translation_error
from edgepose.train.data import FrameCache, Normalisation, build_cache
from edgepose.train.model import PoseNet


@dataclass
class Split:
    train: FrameCache
    test: FrameCache
    norm: Normalisation
    n_synthetic_points: int


def load_split(data: str, size: Tuple[int, int], max_points: int = 64, seed: int = 0) -> Split:
    """Train/test caches of a dataset (its own split, or every 5th frame for test)."""
    ds = load_dataset(data)
    tr = [f for f in ds.frames if f.split == "train"]
    te = [f for f in ds.frames if f.split == "test"]
    norm = Normalisation.fit(np.stack([f.position for f in tr]))
    train = build_cache(tr, size, norm, max_points=max_points, seed=seed, progress=True, desc="train")
    test = build_cache(te, size, norm, max_points=0, progress=True, desc="test")
    return Split(train, test, norm, train.n_synthetic_points)


@torch.no_grad()
def backbone_features(model: PoseNet, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Pooled backbone features ``(N, F)`` of uint8 images ``(N, H, W, 3)`` (eval mode)."""
    was = model.training
    model.eval()
    out = [model.backbone(model.normalize_input(images[i:i + batch])) for i in range(0, len(images), batch)]
    model.train(was)
    return torch.cat(out)


def head_forward(model: PoseNet, feats: torch.Tensor) -> Dict[str, torch.Tensor]:
    """PoseNet's output dict from cached backbone features (FC + heads only)."""
    return model.heads(model.fc(feats))


def evaluate(model: PoseNet, out: Dict[str, torch.Tensor], cache: FrameCache) -> Dict[str, float]:
    """Median/mean position (m) and rotation (deg) errors of a forward output on ``cache``."""
    p, q, _ = model.to_world({k: v.detach() for k, v in out.items()})
    pe = translation_error(p.double().numpy(), cache.position_m)
    re = rotation_error_deg(q.double().numpy(), cache.rotation_q)
    return {"median_m": float(np.median(pe)), "median_deg": float(np.median(re)),
            "mean_m": float(np.mean(pe)), "mean_deg": float(np.mean(re))}


def machine_line() -> str:
    try:
        load = "load avg %.1f/%.1f/%.1f" % os.getloadavg()
    except OSError:
        load = "load n/a"
    return (f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}; {platform.machine()} CPU, "
            f"{os.cpu_count()} cores shared with other jobs ({load} at the end), "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
