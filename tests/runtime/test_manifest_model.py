"""The test bundles, the exporter and the runtime share one manifest model.

``tests/synthetic_bundles.py``'s ``make_synthetic_bundle`` used to write its manifest by hand (outputs without
dtypes, normalisation without its note); the ONNX and TensorRT fallbacks were two loops over
one table. These tests hold them to the model in ``edgepose.bundle``.
"""
from __future__ import annotations

import shutil
import warnings

import pytest

from edgepose.bundle import (EngineFingerprint, InputSpec, engine_filename, file_entry, load_manifest,
                             normalization_section, outputs_section, write_manifest)
from edgepose.runtime import PrecisionFallbackWarning, open_bundle

pytest.importorskip("onnx")


@pytest.mark.parametrize("layout,dynamic", [("NHWC", True), ("NCHW", False)])
def test_synthetic_bundle_manifest_is_the_model_s(tmp_path, layout, dynamic):
    from synthetic_bundles import make_synthetic_bundle

    params = make_synthetic_bundle(tmp_path / "b", size=(32, 24), precisions=("fp32",), layout=layout,
                                   batch_max=4, dynamic_batch=dynamic)
    m = load_manifest(tmp_path / "b")
    kind = "uint8" if layout == "NHWC" else "float32"
    assert m["input"] == InputSpec.for_model(kind, (32, 24), (1, 1, 4 if dynamic else 1), dynamic).to_manifest()
    assert m["outputs"] == outputs_section(dynamic)
    assert m["normalization"] == normalization_section(params["position_mean"], params["position_scale"])
    assert open_bundle(tmp_path / "b").input_spec == InputSpec.from_manifest(m)


def test_onnx_and_engine_fallbacks_pick_the_same_precision(tmp_path):
    """Asked fp16 with fp32 and int8 present: both backends serve fp32 (the nearest), with a warning."""
    from edgepose.runtime.runners.tensorrt_runner import bundle_profile, select_engine
    from synthetic_bundles import make_synthetic_bundle

    src = tmp_path / "src"
    make_synthetic_bundle(src, precisions=("fp32", "int8"))
    dst = tmp_path / "b"
    shutil.copytree(src, dst)
    m = load_manifest(dst)
    device = EngineFingerprint("10.3.0", "Orin", "8.7", "fp16")
    for prec in ("int8", "fp32"):  # int8 listed first: a loop over files (not the order) would pick it
        # built from the bundle's FP32 ONNX with the manifest's profile, as edgepose-export records it
        fp = EngineFingerprint("10.3.0", "Orin", "8.7", prec, onnx_sha256=m["files"]["model.onnx"]["sha256"],
                               profile=bundle_profile(m))
        (dst / engine_filename(fp)).write_bytes(b"selection reads the manifest only")
        m["files"][engine_filename(fp)] = file_entry(dst, engine_filename(fp), "engine", prec,
                                                     fingerprint=fp.to_json(), onnx="model.onnx")
    write_manifest(dst, m)
    view = open_bundle(dst)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        onnx_prec, onnx_path = view.resolve_precision("onnx", "fp16")
        engine_prec, engine_path, _ = select_engine(view, "fp16", device)
    assert onnx_prec == engine_prec == "fp32"
    assert onnx_path.name == "model.onnx" and ".fp32.engine" in engine_path.name
    assert sum(issubclass(w.category, PrecisionFallbackWarning) for w in caught) == 2
