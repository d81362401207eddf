"""Two training steps with ``--device cuda`` (marked ``gpu``; ``make gpu-check``): 8 training
frames in batches of 4, one epoch, stage 2 off, through the CLI as a user runs it."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tiny_scene import write_csv_scene  # noqa: E402


@pytest.mark.gpu
def test_two_training_steps_on_cuda(cuda_gpu, tmp_path, gpu_record):
    torch = cuda_gpu
    data = write_csv_scene(tmp_path / "scene", n_train=8, n_test=2, size=(64, 48))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgepose.train", str(data), "--out", str(out), "--device", "cuda",
           "--pretrained", "none", "--input-size", "64x48", "--stage1-epochs", "1", "--stage2-epochs", "0",
           "--batch-size", "4", "--val-every", "0", "--max-points", "16", "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    final = torch.load(out / "final.pt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())
    m = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(m["test.median_position_m"])
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + the one epoch of 8 frames = 2 steps of 4
    gpu_record("edgepose-train --device cuda (2 steps)", test_median_position_m=m["test.median_position_m"],
               gpu=torch.cuda.get_device_name(0))
