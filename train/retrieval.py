"""The nearest-neighbour retrieval baseline a pose regressor has to beat.

Sattler et al. (CVPR 2019, "Understanding the limitations of CNN-based absolute camera pose
regression") found that absolute pose regressors behave much like image retrieval. So every
run reports, beside the model, what looking up the most similar training image gives: the
global-average-pooled features of the same backbone with its ImageNet weights (not the
fine-tuned ones), compared by cosine similarity, and the pose of the nearest training frame
as the answer. The frames are the cached network-resolution images the model itself sees.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch

from edgepose.errors import EdgePoseError

from .data import FrameCache
from .evaluate import eval_batches, pose_summary
from .model import PoseNet


def pooled_features(model: PoseNet, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Unit-length pooled backbone features ``(N, D)`` of ``images (N, H, W, 3)`` uint8."""
    def pooled(x):
        return torch.nn.functional.normalize(model.backbone(model.normalize_input(x)).float(), dim=1).cpu()

    return torch.cat(eval_batches(model, images, device, pooled, batch_size)).double().numpy()


def nearest_training_pose(train_feat: np.ndarray, query_feat: np.ndarray, train_position: np.ndarray,
                          train_rotation: np.ndarray):
    """``(position (N, 3), rotation (N, 4), index (N,))`` of the most cosine-similar training
    frame of each query (features unit length, so the dot product is the cosine)."""
    idx = np.argmax(query_feat @ train_feat.T, axis=1)
    return train_position[idx], train_rotation[idx], idx


def retrieval_baseline(backbone: str, train: Sequence[FrameCache], test: FrameCache, device: torch.device,
                       input_size=(128, 96)) -> Optional[Dict[str, float]]:
    """Errors on ``test`` of answering each frame with its nearest training frame's pose.

    ``train``: the caches whose frames form the database (fit and validation frames).
    Returns ``None`` when the backbone's ImageNet weights cannot be had (offline, not cached).
    """
    try:
        net = PoseNet(backbone=backbone, pretrained="imagenet", input_size=input_size).to(device)
    except EdgePoseError:
        return None
    caches = [c for c in train if c is not None and len(c)]
    feats = np.concatenate([pooled_features(net, c.images, device) for c in caches])
    pos = np.concatenate([c.position_m for c in caches])
    rot = np.concatenate([c.rotation_q for c in caches])
    p, q, _ = nearest_training_pose(feats, pooled_features(net, test.images, device), pos, rot)
    return pose_summary(p, q, test.position_m, test.rotation_q)
