"""Frames of a camera graph's size go to it, and the host only copies them (runtime/camera.py).

The bundle gets its camera graphs from the real ``edgepose-export BUNDLE --camera-size`` CLI;
the oracle is the host path (Pillow resize, then the network graph) on the same frames."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from edgepose.runtime import ArraySource, Pipeline, PoseEstimator, open_runner  # noqa: E402
from edgepose.runtime.camera import InputRoutes, camera_graphs  # noqa: E402
from synthetic_bundles import make_synthetic_bundle  # noqa: E402

NET = (64, 48)


def _export_cameras(bundle, *args):
    p = subprocess.run([sys.executable, "-m", "edgepose.export.cli", str(bundle), "--engine", "no", *args],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("camroute") / "bundle"
    make_synthetic_bundle(d, size=NET, channels=8, depth=2, batch_max=4)
    out = _export_cameras(d, "--camera-size", "640x480", "--camera-size", "480x640")
    assert "camera graphs for 640x480 rgb frames" in out.stdout
    return d


def _frames(size, n, seed=0):
    w, h = size
    rng = np.random.default_rng(seed)
    return [np.asarray(Image.fromarray(rng.uniform(0, 255, (h // 20 + 2, w // 20 + 2, 3)).astype(np.uint8))
                       .resize((w, h), Image.BICUBIC)) for _ in range(n)]


def test_the_manifest_lists_a_camera_graph_per_precision_and_size(bundle):
    with open_runner(bundle, "onnxruntime", "fp32") as r:
        graphs = camera_graphs(r.bundle)
    assert sorted((g.precision, g.size, g.channels) for g in graphs) == sorted(
        (p, s, "rgb") for p in ("fp32", "fp16", "int8") for s in ((640, 480), (480, 640)))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_predict_takes_the_camera_graph_and_agrees_with_the_host_path(bundle, precision):
    frames = _frames((640, 480), 4)
    with PoseEstimator.from_bundle(bundle, "onnxruntime", precision, strict=True) as cam, \
            PoseEstimator.from_bundle(bundle, "onnxruntime", precision, strict=True) as host:
        host._routes = InputRoutes(host.runner, 0, enabled=False)
        a = [cam.predict(f) for f in frames]
        b = [host.predict(f) for f in frames]
        assert [r.camera for r in cam.routes.routes] == [False, True]  # the twin was opened ...
        assert cam.routes.routes[1].spec.shape[1:] == (480, 640, 3)  # ... on the camera frame's input
        assert len(host.routes.routes) == 1
    pa, pb = np.array([r.position for r in a]), np.array([r.position for r in b])
    assert all(r.ok for r in a + b)
    # the synthetic network reacts to single grey levels; the rule inside the graph is within a
    # few levels of Pillow's (tests/core/test_resample.py), so the poses are close, not equal
    assert np.abs(pa - pb).max() <= 0.1 * np.ptp(pb, axis=0).max() + 1e-6
    assert np.abs(pa - pb).max() > 0  # and they did come from different graphs


def test_other_sizes_and_grey_frames_keep_the_host_path(bundle):
    with PoseEstimator.from_bundle(bundle, "onnxruntime", "fp32") as est:
        r1 = est.predict(_frames((800, 600), 1)[0])
        r2 = est.predict(np.zeros((480, 640), np.uint8))  # grey: not a camera frame
        assert r1.ok and r2.ok and len(est.routes.routes) == 1


def test_the_pipeline_routes_each_frame_and_keeps_order(bundle):
    frames = _frames((640, 480), 3, seed=1) + _frames((320, 240), 2, seed=2) + _frames((480, 640), 3, seed=3)
    with PoseEstimator.from_bundle(bundle, "onnxruntime", "fp32") as est:
        expected = [est.predict(f).position for f in frames]
        with open_runner(bundle, "onnxruntime", "fp32") as r:
            pipe = Pipeline(r, ArraySource(frames), policy="every")
            got = list(pipe)
        assert pipe.routes.opened == [((640, 480), "rgb"), ((480, 640), "rgb")]  # 320x240 took the host path
        assert pipe.routes.routes == [pipe.routes.host]  # the twins were closed with the pipeline
    assert [g.index for g in got] == list(range(len(frames)))
    assert np.allclose(np.array([g.position for g in got]), np.array(expected), atol=1e-5)


def test_bgr_frames_use_a_bgr_graph_or_are_turned_to_rgb(tmp_path):
    d = tmp_path / "bgr"
    make_synthetic_bundle(d, size=NET, channels=8, depth=2, precisions=("fp32",))
    _export_cameras(d, "--camera-size", "640x480", "--camera-channels", "bgr")
    rgb = _frames((640, 480), 2, seed=4)
    with PoseEstimator.from_bundle(d, "onnxruntime", "fp32") as est:
        via_graph = [est.predict(np.ascontiguousarray(f[..., ::-1]), channels="bgr") for f in rgb]
        assert len(est.routes.routes) == 2  # the BGR camera graph took them
        host = [est.predict(f) for f in rgb]  # RGB frames: this bundle has no RGB camera graph
        assert len(est.routes.routes) == 2
        turned = [est.predict(np.ascontiguousarray(f[::2, ::2, ::-1]), channels="bgr") for f in rgb]
        small = [est.predict(f[::2, ::2]) for f in rgb]
    assert np.abs(np.array([r.position for r in via_graph]) - np.array([r.position for r in host])).max() < 0.05
    assert np.allclose([r.position for r in turned], [r.position for r in small], atol=1e-6)


def test_a_camera_graph_for_a_float_input_bundle_is_refused_by_the_cli(tmp_path):
    d = tmp_path / "nchw"
    make_synthetic_bundle(d, size=NET, precisions=("fp32",), layout="NCHW")
    p = subprocess.run([sys.executable, "-m", "edgepose.export.cli", str(d), "--engine", "no",
                        "--camera-size", "640x480"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "uint8" in p.stderr and "Traceback" not in p.stderr


def test_edgepose_run_takes_the_camera_graph_unless_told_not_to(bundle, tmp_path):
    import json

    folder = tmp_path / "frames"
    folder.mkdir()
    frames = _frames((640, 480), 3, seed=7)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    got = {}
    for mode in ("auto", "off"):
        out = tmp_path / f"{mode}.jsonl"
        p = subprocess.run([sys.executable, "-m", "edgepose.runtime.cli", str(bundle), "--source", str(folder),
                            "--backend", "onnxruntime", "--precision", "fp32", "--out", str(out), "--quiet",
                            "--camera-graph", mode], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 3 and all(r["ok"] for r in rows)
        assert all("preprocess" in r["timings_ms"] and "infer" in r["timings_ms"] for r in rows)
        got[mode] = np.array([r["position_m"] for r in rows])
    with PoseEstimator.from_bundle(bundle, "onnxruntime", "fp32") as est:
        cam = np.array([est.predict(f).position for f in frames])
        est._routes = InputRoutes(est.runner, 0, enabled=False)
        host = np.array([est.predict(f).position for f in frames])
    assert np.allclose(got["auto"], cam, atol=1e-5) and np.allclose(got["off"], host, atol=1e-5)
    assert not np.allclose(cam, host, atol=1e-7)  # the two paths are distinguishable


def test_on_onnx_runtime_the_pipeline_hands_camera_frames_over_without_a_copy(bundle):
    frames = _frames((640, 480), 3, seed=9)
    with open_runner(bundle, "onnxruntime", "fp32") as r:
        pipe = Pipeline(r, ArraySource(frames), policy="every")
        twin = pipe.routes.route(frames[0]).runner  # opened before the stream starts, to watch it
        got, infer = [], twin.infer
        twin.infer = lambda batch: got.append(batch) or infer(batch)
        results = list(pipe)
    assert [res.ok for res in results] == [True] * 3
    assert len(got) == 3 and all(np.shares_memory(b, f) for b, f in zip(got, frames))


@pytest.mark.parametrize("camera", [{"size": ["640", 480]}, {"size": [640]}, {"size": [0, 480]},
                                    {"size": [640, 480], "channels": "yuv"}, None])
def test_a_bundle_whose_camera_section_is_wrong_is_refused_when_it_loads(bundle, tmp_path, camera):
    import json
    import shutil

    from edgepose.errors import BundleError
    from edgepose.runtime import open_bundle

    d = tmp_path / "b"
    shutil.copytree(bundle, d)
    doc = json.loads((d / "edgepose.json").read_text())
    rel = next(r for r, e in doc["files"].items() if e["role"] == "camera-onnx")
    if camera is None:
        del doc["files"][rel]["camera"]
    else:
        doc["files"][rel]["camera"] = camera
    (d / "edgepose.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=rf"files\[{rel!r}\]\.camera"):
        open_bundle(d)
