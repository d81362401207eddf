"""Session fixtures for the export tests: tiny PoseNets, exported once, shared by all tests.

``trained_posenet`` is an EfficientNet-Lite0 PoseNet (random init, 48x32 input, hidden 64)
trained for 80 steps (a few seconds) on procedural frames whose content encodes the pose: a grating
whose phase follows x/y, whose frequency follows z and whose orientation is the yaw. The
scene sits far from the origin (mean (50, -20, 3) m, scale 2 m), so position de-normalisation
in FP16 would show. Its accuracy is poor, but its outputs depend on the image, which is what
drift measurements need.
"""
from __future__ import annotations

import numpy as np
import pytest

try:  # the torch-free tests here (verify, TensorRT decisions) also run under Python 3.8 without torch
    import torch
except ImportError:
    torch = None
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SIZE = (48, 32)  # (W, H)
MEAN = (50.0, -20.0, 3.0)
SCALE = 2.0


def render(poses: np.ndarray, yaw: np.ndarray, size=SIZE, seed: int = 0) -> np.ndarray:
    """Frames ``uint8 (N, H, W, 3)`` for normalised positions ``(N, 3)`` and yaw ``(N,)`` rad."""
    W, H = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    out = np.empty((len(poses), H, W, 3), dtype=np.uint8)
    for i, ((x, y, z), a) in enumerate(zip(poses, yaw)):
        f = 0.25 + 0.1 * z
        u = np.cos(a) * xx + np.sin(a) * yy
        g = np.sin(f * u + 2.0 * x) * np.cos(0.2 * yy + 2.0 * y)
        img = np.stack([g, np.roll(g, 3, axis=1), -g], -1) * 90 + 128 + rng.normal(0, 4, (H, W, 3))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def yaw_quaternion(yaw: np.ndarray) -> np.ndarray:
    """Camera-to-world quaternions ``(N, 4)`` wxyz for a rotation about z by ``yaw`` (w >= 0)."""
    return np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], -1)


def make_frames(n: int, seed: int):
    rng = np.random.default_rng(seed)
    p = rng.uniform(-1, 1, (n, 3))
    yaw = rng.uniform(-1.0, 1.0, n)
    return render(p, yaw, seed=seed), p * SCALE + np.array(MEAN), yaw_quaternion(yaw)


@pytest.fixture(scope="session")
def tiny_posenet():
    """Untrained Lite0 PoseNet at 48x32 (graph-structure tests)."""
    pytest.importorskip("torch")
    from edgepose.train.model import PoseNet

    torch.manual_seed(0)
    return PoseNet("efficientnet_lite0", "none", input_size=SIZE, hidden=64, dropout=0.0,
                   position_mean=MEAN, position_scale=SCALE).eval()


@pytest.fixture(scope="session")
def trained_posenet():
    """Lite0 PoseNet trained 80 steps on procedural frames (see the module docstring)."""
    pytest.importorskip("torch")
    from edgepose.train.model import PoseNet

    torch.manual_seed(0)
    model = PoseNet("efficientnet_lite0", "none", input_size=SIZE, hidden=64, dropout=0.0,
                    position_mean=MEAN, position_scale=SCALE)
    images, pos, rot = make_frames(256, seed=1)
    x = torch.from_numpy(images)
    p = model.normalize_position(torch.from_numpy(pos).float())
    q = torch.from_numpy(rot).float()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster and robust to a busy machine
    for step in range(80):
        idx = torch.randint(0, len(x), (16,), generator=g)
        out = model(x[idx])
        loss = (out["position"] - p[idx]).abs().sum(1).mean() + 10 * (out["rotation"] - q[idx]).abs().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # BatchNorm momentum is 0.01 (EfficientNet's): re-estimate the running statistics on the
    # training frames, else the eval-mode network saturates its ReLU6 and outputs a constant.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.reset_running_stats()
                mod.momentum = None  # cumulative average
        for i in range(0, len(x), 64):
            model(x[i:i + 64])
    torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="session")
def val_frames():
    """``(images, positions m, rotations)`` of 24 held-out frames."""
    return make_frames(24, seed=2)


@pytest.fixture(scope="session")
def calib_frames():
    """32 'training split' frames for calibration (other seed than the validation frames)."""
    return make_frames(32, seed=3)[0]


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_posenet, export_dir):
    from edgepose.export.onnx_export import export_onnx

    path = export_dir / "tiny.onnx"
    return path, export_onnx(tiny_posenet, path)


@pytest.fixture(scope="session")
def trained_onnx(trained_posenet, export_dir, val_frames):
    """The trained model exported with a dynamic batch (1, 8, 16), parity on real frames."""
    from edgepose.export.onnx_export import export_onnx

    path = export_dir / "trained.onnx"
    return path, export_onnx(trained_posenet, path, dynamic=(1, 8, 16), parity_images=val_frames[0][:8])
