"""The torch runner on CUDA (fp32, fp16) against the CPU row, and ``edgepose-bench`` with the
torch CUDA rows (marked ``gpu``; ``make gpu-check``). Skipped with the reason without a GPU;
the CPU-side checks (the reference model's spread, TF32 off while inferring, the rows left out
without a GPU) run everywhere.

The reference model must be able to fail the drift bounds: a freshly initialised PoseNet gives
the same pose for every frame (its features collapse: std across frames ~1e-10), so any finite
GPU result would pass. :func:`reference_posenet` re-estimates its BatchNorm statistics on
frames and scales its heads, so the pose follows the image (asserted first), and the bounds
are fractions of that spread."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench_support import write_sevenscenes  # noqa: E402

from edgepose.bundle import file_entry, load_manifest, write_manifest

SIZE = (40, 30)  # (W, H)
#: drift bounds vs the CPU fp32 row, as fractions of the model's spread over the frames (median
#: distance / angle of a frame's pose from the batch's first; 1.23 m and 74.7 deg for these frames):
#: fp32 with TF32 off agrees to float rounding; fp16 simulated on the CPU (weights and every
#: Conv/Linear/BatchNorm output rounded to FP16) drifted 0.078 m / 4.2 deg = 6.3 % / 5.6 % of the
#: spread, bfloat16 autocast (8-bit mantissa) 35 % / 44 %
BOUND = {"fp32": 1e-3, "fp16": 0.15}
#: the reference model's pose must move at least this much between frames (m, deg)
MIN_SPREAD = (0.2, 5.0)


def reference_posenet():
    """A small PoseNet whose pose depends on the image (scene 2 m from the origin, scale 1.5 m)."""
    torch = pytest.importorskip("torch")
    from edgepose.train.model import PoseNet

    torch.manual_seed(0)
    m = PoseNet("efficientnet_lite0", "none", input_size=SIZE, hidden=32, dropout=0.0,
                position_mean=(2.0, -1.0, 0.5), position_scale=1.5)
    for mod in m.modules():  # BatchNorm statistics of real activations instead of the init's (0, 1)
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
    frames = np.random.default_rng(5).integers(0, 256, (32, SIZE[1], SIZE[0], 3), dtype=np.uint8)
    m.train()
    with torch.no_grad():
        m(torch.from_numpy(frames))
        for head in (m.fc_position, m.fc_rotation):
            head.weight.mul_(40.0)
    return m.eval()


def spread(position, rotation):
    """``(m, deg)``: median distance and angle of each frame's pose from the first frame's."""
    d = np.linalg.norm(position - position[:1], axis=1)[1:]
    a = angle_deg(rotation, np.repeat(rotation[:1], len(rotation), 0))[1:]
    return float(np.median(d)), float(np.median(a))


def frames(n=8, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE[1], SIZE[0], 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def torch_bundle(tmp_path_factory):
    """A bundle whose checkpoint is :func:`reference_posenet`."""
    torch = pytest.importorskip("torch")
    from synthetic_bundles import make_synthetic_bundle
    from edgepose.train.model import CHECKPOINT_FORMAT

    out = tmp_path_factory.mktemp("gpu") / "bundle"
    make_synthetic_bundle(out, size=SIZE, precisions=("fp32",))
    m = reference_posenet()
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

    x = frames()
    with open_runner(torch_bundle, "torch", "fp32") as cpu:
        ref = cpu.infer(x)
    s_m, s_deg = spread(ref.position, ref.rotation)
    assert s_m >= MIN_SPREAD[0] and s_deg >= MIN_SPREAD[1], (s_m, s_deg)  # the bounds below can fail
    with open_runner(torch_bundle, "torch-cuda", precision, strict=True) as gpu:
        assert gpu.precision == precision and gpu.name == "torch:cuda" and gpu.tf32 is False
        out = gpu.infer(x)
    d_m = np.linalg.norm(out.position - ref.position, axis=1)
    d_deg = angle_deg(out.rotation, ref.rotation)
    gpu_record(f"torch-cuda/{precision} vs torch/fp32 (cpu)", max_position_m=float(d_m.max()),
               max_rotation_deg=float(d_deg.max()), spread_m=s_m, spread_deg=s_deg, tf32=gpu.tf32, frames=len(x))
    bound = BOUND[precision]
    assert d_m.max() <= bound * s_m and d_deg.max() <= bound * s_deg, (d_m.max(), d_deg.max(), s_m, s_deg)
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
    assert any(n.startswith("torch-cuda: skipped (CUDA is not available here (torch.cuda.is_available() is False): "
                            "torch ") for n in notes), notes


def test_the_reference_model_pose_follows_the_image():
    """CPU side of the GPU check: without a spread, the drift bounds above could not fail."""
    torch = pytest.importorskip("torch")
    m = reference_posenet()
    x = frames()
    with torch.no_grad():
        p, q, _ = (t.double().numpy() for t in m.predict_world(torch.from_numpy(x)))
        p0, q0, _ = (t.double().numpy() for t in m.predict_world(torch.from_numpy(np.zeros_like(x))))
        pr, qr, _ = (t.double().numpy() for t in m.predict_world(torch.from_numpy(x[::-1].copy())))
    s_m, s_deg = spread(p, q)
    assert s_m >= MIN_SPREAD[0] and s_deg >= MIN_SPREAD[1], (s_m, s_deg)
    assert np.linalg.norm(p0[0] - p[0]) > 0.05  # an all-zero image is not answered like a real frame
    np.testing.assert_allclose(pr, p[::-1], atol=1e-5)  # the batch order is kept, frame by frame


def test_the_torch_runner_turns_tf32_off_while_inferring_and_restores_it(torch_bundle):
    torch = pytest.importorskip("torch")
    from edgepose.runtime import open_runner

    seen = []
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # cuDNN's own default
    try:
        with open_runner(torch_bundle, "torch", "fp32") as r:
            real = r.model.predict_world

            def spy(x):
                seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
                return real(x)

            r.model.predict_world = spy
            r.infer(frames(2))
            assert r.tf32 is False
        assert seen == [(False, False)]
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
