"""The torch runner on CUDA (fp32, fp16) against the CPU row, and ``edgepose-bench`` with the
torch CUDA rows (marked ``gpu``; ``make gpu-check``). Skipped with the reason without a GPU;
the CPU-only check at the end runs everywhere."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench_support import write_sevenscenes  # noqa: E402

from edgepose.bundle import file_entry, load_manifest, write_manifest

SIZE = (40, 30)  # (W, H)
#: drift bounds vs the CPU fp32 row: fp32 on the GPU may use TF32 convolutions, fp16 rounds more
BOUND = {"fp32": (5e-3, 0.5), "fp16": (5e-2, 3.0)}  # (m, deg)


@pytest.fixture(scope="module")
def torch_bundle(tmp_path_factory):
    """A bundle whose checkpoint is a small random PoseNet (scene 2 m from the origin, scale 1.5 m)."""
    torch = pytest.importorskip("torch")
    from edgepose.runtime.testing import make_synthetic_bundle
    from edgepose.train.model import CHECKPOINT_FORMAT, PoseNet

    out = tmp_path_factory.mktemp("gpu") / "bundle"
    make_synthetic_bundle(out, size=SIZE, precisions=("fp32",))
    torch.manual_seed(0)
    m = PoseNet("efficientnet_lite0", "none", input_size=SIZE, hidden=32, dropout=0.0,
                position_mean=(2.0, -1.0, 0.5), position_scale=1.5)
    torch.save({"format": CHECKPOINT_FORMAT, "config": m.config, "model": m.state_dict(), "data": {}, "metrics": {}},
               out / "model.pt")
    man = load_manifest(out)
    man["files"]["model.pt"] = file_entry(out, "model.pt", "checkpoint", "fp32")
    write_manifest(out, man)
    return out


def angle_deg(q1, q2):
    dot = np.abs(np.sum(np.asarray(q1, np.float64) * np.asarray(q2, np.float64), axis=1)).clip(0, 1)
    return np.degrees(2 * np.arccos(dot))


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_on_cuda_matches_the_cpu_row(cuda_gpu, torch_bundle, precision, gpu_record):
    from edgepose.runtime import open_runner

    x = np.random.default_rng(1).integers(0, 256, (8, SIZE[1], SIZE[0], 3), dtype=np.uint8)
    with open_runner(torch_bundle, "torch", "fp32") as cpu:
        ref = cpu.infer(x)
    with open_runner(torch_bundle, "torch-cuda", precision, strict=True) as gpu:
        assert gpu.precision == precision and gpu.name == "torch:cuda"
        out = gpu.infer(x)
    d_m = np.linalg.norm(out.position - ref.position, axis=1)
    d_deg = angle_deg(out.rotation, ref.rotation)
    gpu_record(f"torch-cuda/{precision} vs torch/fp32 (cpu)", max_position_m=float(d_m.max()),
               max_rotation_deg=float(d_deg.max()), frames=len(x))
    bound_m, bound_deg = BOUND[precision]
    assert d_m.max() <= bound_m and d_deg.max() <= bound_deg, (d_m.max(), d_deg.max())
    assert np.all(np.abs(np.linalg.norm(out.rotation, axis=1) - 1) < 1e-3)  # unit quaternions (FP32 post-processing)


@pytest.mark.gpu
def test_bench_runs_the_torch_cuda_rows_against_the_cpu_row(cuda_gpu, torch_bundle, tmp_path, gpu_record):
    data = write_sevenscenes(tmp_path / "scene", n_train=2, n_test=6, size=SIZE)
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "edgepose", "bench", str(torch_bundle), "--data", str(data), "--backends",
           "torch,torch-cuda", "--precisions", "fp32,fp16", "--iters", "30", "--warmup-s", "0.2", "--no-plots",
           "--no-power", "--quiet", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = {r["label"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    for label in ("torch-cuda/fp32", "torch-cuda/fp16"):
        r = rows[label]
        assert r["status"] == "ok" and r["drift_reference"] == "torch/fp32", r
        gpu_record(f"edgepose-bench {label}", **{k: r.get(k) for k in (
            "infer_p50_ms", "e2e_p50_ms", "throughput_fps", "drift_p50_m", "drift_max_m", "drift_p50_deg",
            "drift_max_deg") if k in r})
    assert "torch/fp16" not in rows  # the CPU runner serves fp32 only


def test_without_a_gpu_the_torch_cuda_rows_are_left_out_with_the_reason():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU (the rows run: test_bench_runs_the_torch_cuda_rows...)")
    from edgepose.runtime.bench.rows import plan_rows

    rows, notes = plan_rows(["fp32", "fp16"], has_checkpoint=True)
    assert not any(r.backend == "torch-cuda" for r in rows)
    assert any(n.startswith("torch-cuda: skipped (torch.cuda.is_available() is False") for n in notes), notes
