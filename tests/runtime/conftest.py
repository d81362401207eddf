"""Fixtures for the runtime tests: small REAL bundles (onnx graphs that honour the model
contract, see tests/synthetic_bundles.py) and a folder of real PNG frames with one corrupt."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIZE = (32, 24)  # network (W, H)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """uint8 NHWC bundle with fp32 / fp16 / int8 ONNX files, dynamic batch 1..8; returns (path, params)."""
    from synthetic_bundles import make_synthetic_bundle

    path = tmp_path_factory.mktemp("bundle") / "bundle"
    params = make_synthetic_bundle(path, size=SIZE)
    return path, params


@pytest.fixture(scope="session")
def bundle_fp32_only(tmp_path_factory):
    from synthetic_bundles import make_synthetic_bundle

    path = tmp_path_factory.mktemp("bundle32") / "bundle"
    make_synthetic_bundle(path, size=SIZE, precisions=("fp32",))
    return path


@pytest.fixture(scope="session")
def bundle_nchw(tmp_path_factory):
    """The float32 NCHW variant (values 0..255, normalised in the graph)."""
    from synthetic_bundles import make_synthetic_bundle

    path = tmp_path_factory.mktemp("bundlenchw") / "bundle"
    params = make_synthetic_bundle(path, size=SIZE, precisions=("fp32",), layout="NCHW")
    return path, params


def write_frames(folder: Path, n: int = 12, corrupt: tuple = (5,), size=(40, 30), seed: int = 0) -> Path:
    """``n`` PNG frames of a moving gradient (real files); the indices in ``corrupt`` are broken PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        path = folder / f"frame{i}.png"  # natural order: frame2 before frame10
        if i in corrupt:
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(64))  # PNG signature, garbage body
            continue
        img = np.stack([(xx * 6 + i * 9) % 256, (yy * 8 + i * 5) % 256, np.full_like(xx, (i * 40) % 256)], -1)
        Image.fromarray(img.astype(np.uint8)).save(path)
    return folder


@pytest.fixture(scope="session")
def frames(tmp_path_factory):
    """12 PNG frames, frame5.png corrupt."""
    return write_frames(tmp_path_factory.mktemp("frames") / "frames")


@pytest.fixture()
def clean_threads():
    """Asserts that a test leaves no edgepose pipeline thread behind."""
    import threading

    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("edgepose-") and t.is_alive()]
    assert not left, f"pipeline threads left running: {left}"


@pytest.fixture(scope="session")
def make_frames():
    """The frame writer, for tests that need their own folder."""
    return write_frames
