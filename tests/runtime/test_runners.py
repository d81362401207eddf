"""Runners on real ONNX graphs: numbers, conventions, input checks, registry, fallbacks."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgepose.errors import BundleError, ConfigError, EdgePoseError
from edgepose.preprocess import resize_crop
from edgepose.runtime import (BACKENDS, InputMismatchError, PoseBatch, PrecisionFallbackWarning, open_runner,
                              preprocess_batch)
from synthetic_oracle import synthetic_forward  # tests/ is on sys.path (its conftest.py)

SIZE = (32, 24)  # the network size of the conftest bundles


def _batch(n=3, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE[1], SIZE[0], 3), dtype=np.uint8)


def test_onnxruntime_fp32_computes_the_graph(bundle):
    path, params = bundle
    x = _batch()
    pos, rot, sig = synthetic_forward(params, x)
    with open_runner(path, "onnxruntime", "fp32") as r:
        out = r.infer(x)
        assert r.name == "onnxruntime:CPUExecutionProvider"
        assert set(r.last_timing) == {"compute", "total"} and r.last_timing["total"] >= r.last_timing["compute"] > 0
    assert isinstance(out, PoseBatch) and len(out) == 3
    assert out.position.dtype == np.float64 and out.position.shape == (3, 3)
    np.testing.assert_allclose(out.position, pos, atol=1e-4)
    np.testing.assert_allclose(out.rotation, rot, atol=1e-5)
    np.testing.assert_allclose(out.sigma, sig, atol=1e-5)
    # different images give different poses: the runner really reads the batch
    assert np.ptp(out.position[:, 0]) > 1e-3


@pytest.mark.parametrize("backend,precision", [("onnxruntime", "fp32"), ("onnxruntime", "fp16"),
                                               ("onnxruntime", "int8"), ("qdq-reference", "int8")])
def test_the_graphs_own_outputs_keep_the_contract(bundle, backend, precision):
    # the RAW outputs of each file, before Runner._to_pose_batch re-normalises and flips them:
    # unit quaternions, w >= 0, in wxyz order (this bundle's rotations are near identity, so
    # w is the largest component), positive sigma
    path, params = bundle
    x = _batch(8, seed=3)
    with open_runner(path, backend, precision) as r:
        raw = dict(zip(("position", "rotation", "sigma"),
                       r.session.run(["position", "rotation", "sigma"], {"image": x})))
        out = r.infer(x)
    q = raw["rotation"].astype(np.float64)
    tol = 1e-5 if precision == "fp32" else 2e-3
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=tol)
    assert np.all(q[:, 0] >= 0)
    assert np.all(np.abs(q[:, 0]) > np.abs(q[:, 1:]).max(axis=1)), "w is not first: the order is not wxyz"
    _, want, _ = synthetic_forward(params, x)
    assert np.abs(q - want).max() < (1e-5 if precision == "fp32" else 0.05)
    assert np.all(raw["sigma"] > 0)
    np.testing.assert_allclose(out.rotation, q, atol=tol)  # the runner only polishes the last bits


@pytest.mark.parametrize("backend,precision,atol", [("onnxruntime", "fp16", 0.02), ("onnxruntime", "int8", 0.05),
                                                    ("qdq-reference", "int8", 0.05)])
def test_lower_precisions_stay_close_to_fp32(bundle, backend, precision, atol):
    path, _ = bundle
    x = _batch(4, seed=2)
    with open_runner(path, "onnxruntime", "fp32") as r:
        ref = r.infer(x)
    with open_runner(path, backend, precision) as r:
        assert r.precision == precision
        out = r.infer(x)
    err = np.abs(out.position - ref.position).max()
    assert err < atol
    assert precision == "fp32" or err > 0  # a different file really ran


def test_qdq_reference_runs_the_int8_file_without_graph_optimisations(bundle):
    import onnxruntime as ort

    path, _ = bundle
    with open_runner(path, "qdq-reference", "int8") as r:
        assert r.model_path.name == "model.int8.onnx"
        assert r.name.startswith("qdq-reference:")
        so = r.session.get_session_options()
        assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    with open_runner(path, "onnxruntime", "int8") as r:
        assert r.session.get_session_options().graph_optimization_level != ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    with pytest.raises(EdgePoseError, match="int8 Q/DQ file only"):
        open_runner(path, "qdq-reference", "fp32")


def test_io_binding_gives_the_same_numbers(bundle):
    path, _ = bundle
    x = _batch(2)
    with open_runner(path, "onnxruntime", "fp32", io_binding=False) as a, \
            open_runner(path, "onnxruntime", "fp32", io_binding=True, intra_op_threads=1) as b:
        assert b._binding is not None and a._binding is None
        pa, pb = a.infer(x), b.infer(x)
        pb2 = b.infer(x[:1])  # batch size change re-binds the outputs
    np.testing.assert_array_equal(pa.position, pb.position)
    np.testing.assert_array_equal(pa.position[:1], pb2.position)


def test_input_checked_against_manifest_with_expected_and_received(bundle):
    path, _ = bundle
    x = _batch(2)
    with open_runner(path, "onnxruntime", "fp32") as r:
        assert r.input_spec.dtype == "uint8" and r.input_spec.layout == "NHWC"
        with pytest.raises(InputMismatchError, match=r"expected dtype uint8.*received float32"):
            r.infer(x.astype(np.float32))
        with pytest.raises(InputMismatchError, match=r"expected shape .*received \[2, 3, 24, 32\].*looks like NCHW"):
            r.infer(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        with pytest.raises(InputMismatchError, match=r"received \[2, 48, 32, 3\]"):
            r.infer(np.zeros((2, 48, 32, 3), np.uint8))
        with pytest.raises(InputMismatchError, match="batch size 9 is outside"):
            r.infer(_batch(9))
        with pytest.raises(InputMismatchError, match="received list"):
            r.infer(x.tolist())
    with pytest.raises(EdgePoseError, match="not active"):
        r.infer(x)


def test_registry_and_auto_backend(bundle):
    path, _ = bundle
    assert {"tensorrt", "onnxruntime", "qdq-reference", "torch"} <= set(BACKENDS)
    with open_runner(path, "auto", "fp32") as r:  # no engine in the bundle, ORT present
        assert r.backend == "onnxruntime"
    with pytest.raises(ConfigError, match="unknown backend 'tflite'"):
        open_runner(path, "tflite")


def test_missing_precision_falls_back_with_a_warning_or_raises_when_strict(bundle_fp32_only):
    with pytest.warns(PrecisionFallbackWarning, match="no fp16 onnx file; using fp32"):
        r = open_runner(bundle_fp32_only, "onnxruntime", "fp16")
    assert r.precision == "fp32"
    with pytest.raises(BundleError, match="no int8 onnx file; it has \\['fp32'\\]"):
        open_runner(bundle_fp32_only, "onnxruntime", "int8", strict=True)


def test_torch_backend_needs_a_checkpoint(bundle):
    path, _ = bundle
    with pytest.raises(BundleError, match="no checkpoint"):
        open_runner(path, "torch", "fp32")


def test_preprocess_batch_is_the_trainers_rule(bundle, bundle_nchw):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (50, 70, 3), dtype=np.uint8), rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)]
    with open_runner(bundle[0], "onnxruntime", "fp32") as r:
        out = r.allocate_input(2)
        got = preprocess_batch(images, r.input_spec, out=out)
        assert got is out
    for i, im in enumerate(images):
        np.testing.assert_array_equal(got[i], resize_crop(im, SIZE))
    with open_runner(bundle_nchw[0], "onnxruntime", "fp32") as r:
        got = preprocess_batch([Image.fromarray(images[0])], r.input_spec)
        assert got.dtype == np.float32 and got.shape == (1, 3, SIZE[1], SIZE[0])
        np.testing.assert_array_equal(got[0], resize_crop(images[0], SIZE).transpose(2, 0, 1).astype(np.float32))
        with pytest.raises(InputMismatchError, match="expected float32"):
            preprocess_batch(images, r.input_spec, out=np.zeros((2, 24, 32, 3), np.uint8))


def test_float32_nchw_variant_matches_uint8_nhwc(bundle, bundle_nchw):
    x = _batch(2)
    with open_runner(bundle[0], "onnxruntime", "fp32") as a, open_runner(bundle_nchw[0], "onnxruntime", "fp32") as b:
        assert b.input_spec.layout == "NCHW" and b.input_spec.dtype == "float32"
        pa = a.infer(x)
        pb = b.infer(np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32))
    np.testing.assert_allclose(pa.position, pb.position, atol=1e-5)
