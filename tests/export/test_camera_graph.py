"""Camera-resolution graphs (export/camera_graph.py): the rule's crop and resize inside the graph.

Oracles: the network graph itself run in ONNX Runtime on (a) the numpy twin of the resize
(edgepose.resample, itself checked against Pillow in tests/core/test_resample.py) and (b) the
host path the runtime uses today (edgepose.preprocess.resize_crop, Pillow)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgepose.errors import ConfigError, EdgePoseError  # noqa: E402
from edgepose.export.camera_graph import (add_camera_input, camera_filename, camera_sizes,  # noqa: E402
                                          parse_camera_size, write_camera_graph)
from edgepose.export.graph_lint import lint_model  # noqa: E402
from edgepose.preprocess import resize_crop  # noqa: E402
from edgepose.resample import pooled_resample  # noqa: E402
from synthetic_bundles import make_synthetic_bundle  # noqa: E402

NET = (64, 48)
GRAPHS = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("camera_bundle")
    make_synthetic_bundle(d, size=NET, channels=8, depth=2, batch_max=4)
    return d


def _frames(size, n=3, seed=0):
    w, h = size
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.uniform(0, 255, (h // 24 + 2, w // 24 + 2, 3)).astype(np.uint8)
        out.append(np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC)))
    return np.stack(out)


def _run(model, batch):
    s = ort.InferenceSession(model.SerializeToString() if hasattr(model, "SerializeToString") else str(model))
    return dict(zip(("position", "rotation", "sigma"), s.run(None, {"image": batch})))


@pytest.mark.parametrize("precision", list(GRAPHS))
@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (480, 640), (333, 250)])
def test_the_camera_graph_computes_the_pooled_resample_then_the_network(bundle, precision, size):
    src = onnx.load(str(bundle / GRAPHS[precision]))
    cam = add_camera_input(src, size)
    frames = _frames(size)
    out = _run(cam, frames)
    # oracle: the unchanged network on the numpy twin of the in-graph resize (float input,
    # so the network's uint8 Cast is bypassed by feeding the float frame to the Cast's reader)
    twin = pooled_resample(size, NET)
    ref_in = np.stack([np.clip(np.rint(twin.apply(f)), 0, 255) for f in frames]).astype(np.uint8)
    ref = _run(src, ref_in)
    # rounding the twin to uint8 moves pixels by <= 0.5 grey level: the poses agree closely
    assert np.abs(out["position"] - ref["position"]).max() < 2e-3
    assert np.abs(np.abs((out["rotation"] * ref["rotation"]).sum(1)) - 1).max() < 1e-4


@pytest.mark.parametrize("size", [(1920, 1080), (640, 480), (480, 640)])
def test_poses_move_from_the_host_path_about_as_much_as_one_grey_level_of_noise(bundle, size):
    # the synthetic network's random filters react to single pixels far more than a trained
    # one; the scale is what +-1 grey level of noise on the host path's input does to the pose
    src = onnx.load(str(bundle / "model.onnx"))
    frames = _frames(size, n=6, seed=3)
    host_in = np.stack([resize_crop(f, NET) for f in frames])
    host = _run(src, host_in)
    noise = np.random.default_rng(0).integers(-1, 2, host_in.shape)
    noisy = _run(src, np.clip(host_in + noise, 0, 255).astype(np.uint8))
    one_level = np.abs(noisy["position"] - host["position"]).max()
    assert one_level > 1e-5, "the synthetic network must react to its input for this test to mean anything"
    out = _run(add_camera_input(src, size), frames)
    assert np.abs(out["position"] - host["position"]).max() <= 3 * one_level


def test_bgr_frames_give_the_rgb_poses(bundle):
    src = onnx.load(str(bundle / "model.onnx"))
    frames = _frames((640, 480), seed=5)
    rgb = _run(add_camera_input(src, (640, 480), "rgb"), frames)
    bgr = _run(add_camera_input(src, (640, 480), "bgr"), np.ascontiguousarray(frames[..., ::-1]))
    assert np.allclose(rgb["position"], bgr["position"], atol=1e-5)
    swapped = _run(add_camera_input(src, (640, 480), "rgb"), np.ascontiguousarray(frames[..., ::-1]))
    assert not np.allclose(rgb["position"], swapped["position"], atol=1e-4)  # the flag matters


def test_the_camera_graph_keeps_the_batch_axis_and_passes_the_tensorrt_lint(bundle):
    for precision, name in GRAPHS.items():
        cam = add_camera_input(onnx.load(str(bundle / name)), (1280, 720))
        dims = cam.graph.input[0].type.tensor_type.shape.dim
        assert (dims[0].dim_param or dims[0].dim_value) and [d.dim_value for d in dims[1:]] == [720, 1280, 3]
        assert cam.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert cam.graph.node[0].op_type == "Cast"  # TensorRT takes uint8 only straight into a Cast
        assert not lint_model(cam), (precision, lint_model(cam))
        assert all(n.name.startswith("/camera/") for n in cam.graph.node[:6])
    batch = _frames((1280, 720), n=4)
    assert _run(add_camera_input(onnx.load(str(bundle / "model.onnx")), (1280, 720)), batch)["position"].shape == (4, 3)


def test_written_file_and_record(bundle, tmp_path):
    rec = write_camera_graph(bundle / "model.onnx", tmp_path / camera_filename("model.onnx", (640, 480)),
                             (640, 480), "bgr")
    assert rec["size"] == [640, 480] and rec["channels"] == "bgr"
    assert rec["pool"] == pooled_resample((640, 480), NET).x.k == 1  # 10x (to 64x48): exact weights
    assert (tmp_path / "model.cam640x480.onnx").is_file()
    assert camera_filename("model.fp16.onnx", (1920, 1080)) == "model.fp16.cam1920x1080.onnx"


def test_a_float32_input_graph_is_refused_with_the_reason(tmp_path):
    make_synthetic_bundle(tmp_path, size=NET, precisions=("fp32",), layout="NCHW")
    with pytest.raises(EdgePoseError, match="uint8"):
        add_camera_input(onnx.load(str(tmp_path / "model.onnx")), (640, 480))


@pytest.mark.parametrize("bad", ["1920", "1920x", "axb", "0x480", "1920x1080x3", "99999x480", "-640x480"])
def test_bad_camera_sizes_say_what_is_expected(bad):
    with pytest.raises(ConfigError, match="expects WIDTHxHEIGHT|both sides must be >= 1|each side <= 8192"):
        parse_camera_size(bad)


def test_camera_sizes_keep_order_and_drop_duplicates():
    assert camera_sizes(["640x480", "1920x1080", "640X480"]) == [(640, 480), (1920, 1080)]
