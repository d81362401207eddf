"""Real TensorRT builds from a real ONNX bundle (skipped here: no TensorRT, no GPU).

On a machine with TensorRT and a GPU these build FP32/FP16/INT8 engines from the synthetic
contract bundle of tests/synthetic_bundles.py, name them by the device fingerprint,
list them in the manifest with their sha256 and check that the files are plain TensorRT
plans that a bare ``trt.Runtime`` deserializes (nothing glued to the bytes).
"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (engines are built on the Jetson/GPU host)")


@pytest.fixture(scope="module")
def contract_bundle(tmp_path_factory):
    from synthetic_bundles import make_synthetic_bundle

    out = tmp_path_factory.mktemp("trt") / "bundle"
    make_synthetic_bundle(out)
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_built_named_and_listed(contract_bundle, tmp_path, precision):
    from edgepose.bundle import load_manifest, verify_files
    from edgepose.export.cli import main

    out = tmp_path / "b"
    rc = main([str(contract_bundle), "--out", str(out), "--precision", precision, "--engine", "yes",
               "--allow-slow-precision", "--timing-cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    m = load_manifest(out)
    engines = {rel: e for rel, e in m["files"].items() if e["role"] == "engine"}
    assert len(engines) == 1
    (rel, entry), = engines.items()
    assert rel.startswith(f"model.trt{trt.__version__}.") and rel.endswith(f".{precision}.engine")
    assert entry["fingerprint"]["trt_version"] == trt.__version__
    verify_files(out, m)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    assert runtime.deserialize_cuda_engine((out / rel).read_bytes()) is not None
    assert list((tmp_path / "cache").glob("tensorrt.*.timingcache"))


def test_parser_errors_are_listed_in_full(tmp_path):
    from edgepose.export.tensorrt.builder import TensorRTBuildError, TrtCaps, build_serialized_engine, plan_build

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    plan = plan_build(TrtCaps.from_module(trt), "fp32")
    with pytest.raises(TensorRTBuildError, match="cannot parse"):
        build_serialized_engine(trt, bad, plan, "image", ((1, 24, 32, 3),) * 3)
