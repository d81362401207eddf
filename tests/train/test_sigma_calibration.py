"""The sigma calibration travels with the weights: PyTorch, checkpoints and the ONNX graph.

The ONNX check runs a real ONNX Runtime session on the exported graph; the oracle for the
calibrated sigma is the uncalibrated one times the scale, taken from the same model.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgepose.train.model import PoseNet, load_model  # noqa: E402
from edgepose.train.checkpoint import save_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PoseNet(pretrained="none", input_size=(32, 32), hidden=16, position_scale=2.0).eval()


def images(n=3):
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_to_world_multiplies_sigma_by_the_calibration(model):
    x = torch.from_numpy(images())
    _, _, raw = model.predict_world(x)
    model.sigma_scale.copy_(torch.tensor([2.0, 0.5]))
    try:
        _, _, cal = model.predict_world(x)
    finally:
        model.sigma_scale.fill_(1.0)
    np.testing.assert_allclose(cal.numpy(), raw.numpy() * [2.0, 0.5], rtol=1e-6)


def test_checkpoints_without_a_calibration_load_uncalibrated(model, tmp_path):
    state = {k: v for k, v in model.state_dict().items() if k != "sigma_scale"}  # written before calibration
    save_checkpoint(tmp_path / "old.pt", {"config": model.config, "model": state})
    old = load_model(tmp_path / "old.pt")
    assert old.sigma_scale.tolist() == [1.0, 1.0]
    with torch.no_grad():
        model.sigma_scale.copy_(torch.tensor([3.0, 4.0]))
    try:
        save_checkpoint(tmp_path / "new.pt", {"config": model.config, "model": model.state_dict()})
        assert load_model(tmp_path / "new.pt").sigma_scale.tolist() == [3.0, 4.0]
    finally:
        model.sigma_scale.fill_(1.0)


def test_onnx_graph_applies_the_calibration_in_fp32(model, tmp_path):
    from edgepose.export.onnx_export import export_onnx

    x = images()
    raw = ort.InferenceSession(str(export_onnx(model, tmp_path / "raw.onnx", simplify=False, batch=3,
                                               parity_images=x)["path"])).run(["sigma"], {"image": x})[0]
    with torch.no_grad():
        model.sigma_scale.copy_(torch.tensor([2.5, 0.25]))
    try:
        info = export_onnx(model, tmp_path / "cal.onnx", simplify=False, batch=3, parity_images=x)
        cal = ort.InferenceSession(str(info["path"])).run(["sigma"], {"image": x})[0]
    finally:
        model.sigma_scale.fill_(1.0)
    assert cal.dtype == np.float32
    np.testing.assert_allclose(cal, raw * np.array([2.5, 0.25], np.float32), rtol=1e-5)


def test_fp16_graph_keeps_the_calibrated_sigma_in_float32(model, tmp_path):
    """One Mul under /post_sigma applies scale and calibration, so the FP16 pass keeps it in
    float32 and the TensorRT graph lint accepts the graph (two chained constant Muls were
    fused by onnxsim into an unnamed node that went to float16)."""
    from edgepose.export.fp16 import to_fp16
    from edgepose.export.graph_lint import lint_file
    from edgepose.export.onnx_export import export_onnx

    with torch.no_grad():
        model.sigma_scale.copy_(torch.tensor([1.5, 0.7]))
    try:
        export_onnx(model, tmp_path / "m.onnx", simplify=True)
    finally:
        model.sigma_scale.fill_(1.0)
    to_fp16(tmp_path / "m.onnx", tmp_path / "m16.onnx")
    assert lint_file(tmp_path / "m16.onnx") == []
