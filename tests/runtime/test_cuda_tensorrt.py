"""The CUDA wrapper's error path (real cuda-bindings, no GPU here) and the TensorRT runner:
engine selection by fingerprint runs everywhere; running an engine needs TensorRT + a GPU
and is skipped here with the reason."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from edgepose.bundle import EngineFingerprint, engine_filename, file_entry, load_manifest, write_manifest
from edgepose.manifest import Manifest
from edgepose.errors import BundleError, EngineMismatchError
from edgepose.runtime import PrecisionFallbackWarning, open_bundle
from edgepose.runtime.runners.tensorrt_runner import TensorRTRunner, bundle_profile, select_engine


def _cuda_state():
    try:
        from edgepose.runtime.cuda import load_cuda

        return load_cuda().device_count(), None
    except Exception as exc:  # noqa: BLE001 - we only classify here
        return 0, exc


def test_cuda_wrapper_turns_a_driver_error_into_our_error():
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings (cuda-python) is not installed")
    from edgepose.runtime.cuda import CudaError, load_cuda

    api = load_cuda()
    assert api.binding == "cuda.bindings.runtime"
    try:
        count = api.device_count()
    except CudaError as exc:
        # this machine: the runtime is there, the NVIDIA driver is not
        assert exc.call == "cudaGetDeviceCount"
        assert exc.code in ("cudaErrorInsufficientDriver", "cudaErrorNoDevice")
        text = str(exc)
        assert "CUDA call cudaGetDeviceCount failed" in text and exc.code in text
        assert "--backend onnxruntime" in text  # says what to do
        return
    assert count >= 1  # a machine with a GPU: the same call answers


def _engine_bundle(tmp_path, src, fps):
    dst = tmp_path / "bundle"
    shutil.copytree(src, dst)
    m = load_manifest(dst)
    for fp in fps:
        # built from the bundle's FP32 ONNX with the manifest's profile, as edgepose-export records it
        fp = dataclasses.replace(fp, onnx_sha256=m["files"]["model.onnx"]["sha256"], profile=bundle_profile(Manifest.from_json(m)))
        name = engine_filename(fp)
        (dst / name).write_bytes(b"not a real plan; selection only reads the manifest")
        m["files"][name] = file_entry(dst, name, "engine", fp.precision, fingerprint=fp.to_json(), onnx="model.onnx")
    write_manifest(dst, m)
    return open_bundle(dst)


def test_select_engine_matches_fingerprint_and_explains_mismatch(tmp_path, bundle):
    orin = EngineFingerprint("8.6.2", "Orin", "8.7", "fp16")
    orin_dla = EngineFingerprint("8.6.2", "Orin", "8.7", "int8", dla_core=0)
    view = _engine_bundle(tmp_path, bundle[0], [orin, orin_dla])
    prec, path, built = select_engine(view, "fp16", EngineFingerprint("8.6.2", "Orin", "8.7", "fp16"))
    assert prec == "fp16" and path.name == engine_filename(orin) and built.dla_core is None
    prec, path, built = select_engine(view, "int8", EngineFingerprint("8.6.2", "Orin", "8.7", "int8"))
    assert built.dla_core == 0  # the DLA core comes from the engine's fingerprint
    with pytest.raises(EngineMismatchError) as ei:
        select_engine(view, "fp16", EngineFingerprint("10.3.0", "Orin", "8.7", "fp16"))
    text = str(ei.value)
    assert "trt_version: engine has '8.6.2', this device has '10.3.0'" in text
    assert f"edgepose-export {view.path} --precision fp16 --engine yes" in text
    with pytest.warns(PrecisionFallbackWarning, match="no fp32 engine"):
        prec, _, _ = select_engine(view, "fp32", EngineFingerprint("8.6.2", "Orin", "8.7", "fp32"))
    assert prec == "fp16"
    with pytest.raises(BundleError, match="no fp32 engine"):
        select_engine(view, "fp32", EngineFingerprint("8.6.2", "Orin", "8.7", "fp32"), strict=True)


def test_bundle_without_engine_says_how_to_build_one(bundle):
    with pytest.raises(BundleError, match="--engine yes"):
        select_engine(open_bundle(bundle[0]), "fp16", EngineFingerprint("10.3.0", "Orin", "8.7", "fp16"))


def test_tensorrt_backend_unavailable_here_is_reported_not_faked():
    why = TensorRTRunner.available()
    try:
        import tensorrt  # noqa: F401
        has_trt = True
    except ImportError:
        has_trt = False
    if not has_trt:
        assert why is not None and "tensorrt" in why


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_runner_matches_onnxruntime(tmp_path):
    """Build an engine from the bundle's ONNX on this GPU, run it, compare with ORT.

    The skips come before any bundle is made: the session ``bundle`` fixture needs
    onnxconverter-common (its FP16 file), which a GPU machine may lack, and a fixture error
    there made ``make gpu-check`` fail where this test should have said why it skipped."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (JetPack / pip install tensorrt)")
    count, err = _cuda_state()
    if not count:
        pytest.skip(f"no usable CUDA GPU here: {err}")
    from edgepose.runtime import open_runner
    from edgepose.runtime.runners.tensorrt_runner import device_fingerprint
    from synthetic_bundles import make_synthetic_bundle

    dst = tmp_path / "b"
    make_synthetic_bundle(dst, size=(32, 24), precisions=("fp32",))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse((dst / "model.onnx").read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 24, 32, 3), (1, 24, 32, 3), (8, 24, 32, 3))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    m = load_manifest(dst)
    fp = dataclasses.replace(device_fingerprint("fp32"), onnx_sha256=m["files"]["model.onnx"]["sha256"],
                             profile=bundle_profile(Manifest.from_json(m)))
    name = engine_filename(fp)
    (dst / name).write_bytes(bytes(plan))
    m["files"][name] = file_entry(dst, name, "engine", "fp32", fingerprint=fp.to_json(), onnx="model.onnx")
    write_manifest(dst, m)
    x = np.random.default_rng(0).integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
    with open_runner(dst, "onnxruntime", "fp32") as r:
        ref = r.infer(x)
    for graph in (False, True):
        with open_runner(dst, "tensorrt", "fp32", cuda_graph=graph) as r:
            pinned = r.allocate_input(2)
            pinned[...] = x
            out = r.infer(pinned)
            out2 = r.infer(x)
            assert set(r.last_timing) >= {"h2d", "compute", "d2h", "total"}
        np.testing.assert_allclose(out.position, ref.position, atol=1e-3)
        np.testing.assert_allclose(out2.position, ref.position, atol=1e-3)


def test_the_tensorrt_test_skips_rather_than_errors_without_onnxconverter_common(tmp_path):
    """``make gpu-check`` ran on a machine without onnxconverter-common: the TensorRT test must
    report its skip, not an error in a fixture that it does not need."""
    import subprocess
    import sys
    from pathlib import Path

    block = tmp_path / "block"
    block.mkdir()
    (block / "onnxconverter_common.py").write_text("raise ImportError('blocked for this test')\n")
    here = Path(__file__).resolve()
    env = dict(__import__("os").environ, PYTHONPATH=str(block))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                        f"{here}::test_tensorrt_runner_matches_onnxruntime"], cwd=here.parents[2],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and "ERROR" not in r.stdout, r.stdout[-2000:]
    assert "SKIPPED" in r.stdout or "PASSED" in r.stdout, r.stdout[-2000:]


def test_a_camera_twin_selects_the_camera_engine_of_its_frame_size(tmp_path, bundle):
    """Engines of camera-resolution graphs (role camera-engine) are chosen by frame size and
    fingerprint, never for the network-size path, and never with a precision fallback."""
    import subprocess
    import sys

    from edgepose.export.tensorrt.engines import camera_engine_name

    src = tmp_path / "src"
    shutil.copytree(bundle[0], src)
    p = subprocess.run([sys.executable, "-m", "edgepose.export.cli", str(src), "--engine", "no",
                        "--camera-size", "640x480"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    orin = EngineFingerprint("8.6.2", "Orin", "8.7", "fp16")
    view = _engine_bundle(tmp_path, src, [orin])  # the network-size engine
    m = load_manifest(view.path)
    cam_onnx = next(r for r, e in m["files"].items() if e["role"] == "camera-onnx" and e["precision"] == "fp16")
    profile = [[s[0], 480, 640, 3] for s in bundle_profile(Manifest.from_json(m))]
    fp = dataclasses.replace(orin, onnx_sha256=m["files"][cam_onnx]["sha256"], profile=profile)
    name = camera_engine_name(engine_filename(fp), (640, 480))
    (view.path / name).write_bytes(b"not a real plan; selection only reads the manifest")
    m["files"][name] = file_entry(view.path, name, "camera-engine", "fp16", fingerprint=fp.to_json(), onnx=cam_onnx,
                                  camera=m["files"][cam_onnx]["camera"])
    write_manifest(view.path, m)
    view = open_bundle(view.path)
    here = EngineFingerprint("8.6.2", "Orin", "8.7", "fp16")
    assert select_engine(view, "fp16", here)[1].name == engine_filename(orin)  # the network path is unchanged
    assert select_engine(view, "fp16", here, camera=(640, 480))[1].name == name
    with pytest.raises(BundleError):  # no engine for these frames: the runtime keeps the host path
        select_engine(view, "fp16", here, camera=(1280, 720))
    with pytest.raises(BundleError):  # a camera twin never falls back to another precision
        select_engine(view, "int8", EngineFingerprint("8.6.2", "Orin", "8.7", "int8"), camera=(640, 480))
    runner = TensorRTRunner(view, "fp16")
    twin = runner.camera_twin((640, 480))  # built without a GPU: activation would select the engine above
    assert twin.camera == (640, 480) and twin.input_spec.shape[1:] == (480, 640, 3)
