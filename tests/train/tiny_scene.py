"""A tiny dataset in edgepose's CSV format, written by the tests themselves.

Real PNG files (random texture plus a gradient that depends on the camera position, so the
images carry some pose signal), poses on a small arc looking at the origin, and a ``split``
column. Small enough that a training run of a few epochs takes seconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from edgepose.geometry import look_at


def write_csv_scene(root: Path, n_train: int = 16, n_test: int = 4, size=(80, 60), seed: int = 0) -> Path:
    root = Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    W, H = size
    rows = ["image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy,split"]
    n = n_train + n_test
    for i in range(n):
        a = 2 * np.pi * i / n
        pos = np.array([2.0 * np.cos(a), 2.0 * np.sin(a), 0.5 + 0.1 * (i % 3)])
        q = look_at(pos, np.zeros(3), up=(0.0, 0.0, 1.0))
        img = rng.integers(0, 256, (H, W, 3)).astype(np.float64) * 0.5
        img[..., 0] += 120 * (np.cos(a) + 1) / 2 * np.linspace(0, 1, W)[None, :]
        img[..., 1] += 120 * (np.sin(a) + 1) / 2 * np.linspace(0, 1, H)[:, None]
        name = f"frames/{i:04d}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name)
        split = "test" if i % (n // n_test) == n // n_test - 1 else "train"
        vals = [*pos, *q, 60.0, 60.0, W / 2, H / 2]
        rows.append(name + "," + ",".join(f"{v:.9f}" for v in vals) + f",{split}")
    (root / "poses.csv").write_text("\n".join(rows) + "\n")
    return root
