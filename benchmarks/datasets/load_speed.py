"""How long reading datasets and drawing visible points take (CPU, one process).

    .venv/bin/python benchmarks/datasets/load_speed.py [--dino DIR] [--synth DIR] > benchmarks/datasets/results.md

Measures: load_dataset on the real Middlebury dino set (with and without image checks),
visible_points for every dino frame (frustum fallback) and for every frame of a synthetic
7-Scenes render (depth back-projection), and parsing a generated Cambridge-sized NVM file.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from edgepose.datasets import load_dataset, visible_points
from edgepose.datasets.nvm import read_nvm

REPO = Path(__file__).resolve().parents[2]


def best_of(fn, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def write_nvm(path: Path, n_cams=1500, n_points=100_000, per_point=5, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(f"NVM_V3\n\n{n_cams}\n")
        for i in range(n_cams):
            f.write(f"seq1/frame{i:05d}.jpg 1670.0 1 0 0 0 {i * 0.1} 0 0 0 0\n")
        f.write(f"\n{n_points}\n")
        X = rng.normal(size=(n_points, 3))
        cams = rng.integers(0, n_cams, size=(n_points, per_point))
        for k in range(n_points):
            meas = " ".join(f"{c} {k} 1.5 2.5" for c in cams[k])
            f.write(f"{X[k, 0]:.6f} {X[k, 1]:.6f} {X[k, 2]:.6f} 10 20 30 {per_point} {meas}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dino", default=str(REPO.parent / "shared/data/middlebury_dino/dino"))
    ap.add_argument("--synth", help="a rendered synthetic scene (edgepose-synth OUT); rendered to a temp dir if absent")
    args = ap.parse_args()
    print(f"# dataset loading speed\n\nmachine: {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, load average at start {os.getloadavg()[0]:.1f} "
          f"(other jobs share the 2 cores: treat these as upper bounds)\n\ncommand: .venv/bin/python benchmarks/datasets/load_speed.py\n")
    print("| what | frames | time | per frame |\n|---|---|---|---|")
    t, ds = best_of(lambda: load_dataset(args.dino))
    n = len(ds.frames)
    print(f"| load_dataset(dino), check_images=True | {n} | {t * 1e3:.0f} ms | {t / n * 1e3:.2f} ms |")
    t, _ = best_of(lambda: load_dataset(args.dino, check_images=False))
    print(f"| load_dataset(dino), check_images=False | {n} | {t * 1e3:.0f} ms | {t / n * 1e3:.2f} ms |")
    t, _ = best_of(lambda: [visible_points(f, 256) for f in ds.frames])
    print(f"| visible_points, frustum fallback (dino), 256 pts | {n} | {t * 1e3:.0f} ms | {t / n * 1e3:.3f} ms |")
    with tempfile.TemporaryDirectory() as tmp:
        synth = args.synth
        if synth is None:
            import subprocess
            import sys
            synth = str(Path(tmp) / "synth")
            subprocess.run([sys.executable, "-m", "edgepose", "synth", synth, "--frames", "60", "--size", "320x240",
                            "--quiet"], check=True, capture_output=True)
        sd = load_dataset(synth)
        m = len(sd.frames)
        w, h = sd.frames[0].width, sd.frames[0].height
        t, _ = best_of(lambda: [visible_points(f, 256) for f in sd.frames])
        print(f"| visible_points, depth back-projection ({w}x{h} uint16 PNG), 256 pts | {m} | {t * 1e3:.0f} ms "
              f"| {t / m * 1e3:.2f} ms |")
        nvm = Path(tmp) / "big.nvm"
        write_nvm(nvm)
        t, model = best_of(lambda: read_nvm(nvm), n=1)
        print(f"| read_nvm: 1500 cameras, 100k points x 5 measurements | {len(model.cameras)} | {t:.1f} s | - |")


if __name__ == "__main__":
    main()
