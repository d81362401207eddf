"""The camera-resolution path on a GPU (marked ``gpu``; ``make gpu-check``): the in-graph resize
(:mod:`edgepose.resample`'s block mean and two matrices) computed by torch on CUDA against the
numpy twin, and, where ONNX Runtime has the CUDA provider, the camera graph itself against the
CPU provider. Skipped with the reason without a GPU."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.resample import pooled_resample

pytestmark = pytest.mark.gpu


def _cuda_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    return torch


def _frame(size, seed=0):
    w, h = size
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (640, 480), (480, 640)])
def test_the_camera_resize_on_cuda_matches_its_numpy_twin(size):
    torch = _cuda_torch()
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 as the graph's types say
    plan = pooled_resample(size, (128, 96))
    frame = _frame(size)
    ref = plan.apply(frame)  # float64 (H, W, 3)
    x = torch.from_numpy(frame).cuda().float()[plan.y.start:plan.y.stop, plan.x.start:plan.x.stop]
    x = x.reshape(plan.y.cells, plan.y.k, plan.x.cells, plan.x.k, 3).mean(dim=(1, 3))
    rows = torch.from_numpy(plan.y.weights.astype(np.float32)).cuda()
    cols = torch.from_numpy(plan.x.weights.astype(np.float32)).cuda()
    out = torch.einsum("ij,jkc,lk->ilc", rows, x, cols).cpu().numpy()
    assert np.abs(out - ref).max() < 0.05  # grey levels: float32 rounding only


def test_the_camera_graph_on_onnxruntime_cuda_matches_the_cpu_provider(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"ONNX Runtime here has no CUDA provider ({ort.get_available_providers()})")
    onnx = pytest.importorskip("onnx")
    from edgepose.export.camera_graph import add_camera_input
    from edgepose.runtime.testing import make_synthetic_bundle

    make_synthetic_bundle(tmp_path, size=(128, 96), precisions=("fp32",))
    model = add_camera_input(onnx.load(str(tmp_path / "model.onnx")), (1920, 1080)).SerializeToString()
    batch = _frame((1920, 1080), 1)[None]
    cpu = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"image": batch})
    gpu = ort.InferenceSession(model, providers=["CUDAExecutionProvider"]).run(None, {"image": batch})
    for a, b in zip(cpu, gpu):
        assert np.allclose(a, b, atol=1e-3)
