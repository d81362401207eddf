"""Test helpers for the bench tests: a tiny REAL 7-Scenes-layout dataset (PNG frames and
4x4 camera-to-world pose files) whose pixel colours follow the camera position."""
from pathlib import Path

import numpy as np
from PIL import Image

from edgepose.geometry import look_at, pose_to_matrix


def write_sevenscenes(root: Path, n_train: int = 4, n_test: int = 10, size=(40, 30)) -> Path:
    root = Path(root)
    rng = np.random.default_rng(3)
    W, H = size
    for seq, n in ((1, n_train), (2, n_test)):
        d = root / f"seq-{seq:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = 2 * np.pi * (i + 0.5 * seq) / max(n, 1)
            pos = np.array([np.cos(a), np.sin(a), 0.3 * seq])
            rot = look_at(pos, np.zeros(3))
            np.savetxt(d / f"frame-{i:06d}.pose.txt", pose_to_matrix(pos, rot), fmt="%.9f", delimiter="\t")
            base = np.clip((pos[:3] + 1.5) / 3.0 * 255, 0, 255)
            img = np.clip(base[None, None, :] + rng.normal(0, 20, (H, W, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"frame-{i:06d}.color.png")
    (root / "TrainSplit.txt").write_text("sequence1\n")
    (root / "TestSplit.txt").write_text("sequence2\n")
    return root
