"""The retrieval baseline: cosine nearest neighbour over pooled ImageNet features."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgepose.geometry import look_at  # noqa: E402
from edgepose.train.data import FrameCache  # noqa: E402
from edgepose.train.retrieval import nearest_training_pose, retrieval_baseline  # noqa: E402


def test_nearest_by_cosine_not_by_length():
    train = np.array([[1.0, 0.0], [0.6, 0.8]])
    query = np.array([[0.8, 0.6], [0.1, 0.99]]) / np.array([[1.0], [np.hypot(0.1, 0.99)]])
    pos = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    rot = np.array([[1.0, 0, 0, 0], [0.0, 1, 0, 0]])
    p, q, idx = nearest_training_pose(train, query, pos, rot)
    # cosines: query 0 -> 0.8 vs 0.96 (the second); query 1 -> 0.10 vs 0.85 (the second)
    assert idx.tolist() == [1, 1] and p[0, 0] == 5.0 and q[1, 1] == 1.0


def cache(images, positions):
    n = len(images)
    rot = np.stack([look_at(p, np.zeros(3)) for p in positions])
    return FrameCache(images=torch.from_numpy(images), position=torch.zeros(n, 3), rotation=torch.zeros(n, 4),
                      K=torch.zeros(n, 3, 3), points=torch.zeros(n, 0, 3), points_mask=torch.zeros(n, 0, dtype=torch.bool),
                      position_m=np.asarray(positions, np.float64), rotation_q=rot)


def test_a_test_frame_seen_in_training_gets_its_own_pose():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)
    pos = rng.normal(size=(6, 3)) * 3
    train = cache(imgs[:5], pos[:5])
    test = cache(imgs[[3, 1]], pos[[3, 1]])   # exact copies of training frames 3 and 1
    out = retrieval_baseline("efficientnet_lite0", [train, None], test, torch.device("cpu"), (64, 48))
    if out is None:
        pytest.skip("ImageNet weights of efficientnet_lite0 are not available offline here")
    assert out["median_position_m"] == pytest.approx(0.0, abs=1e-9)
    assert out["median_rotation_deg"] == pytest.approx(0.0, abs=1e-6)
    assert out["n_frames"] == 2
