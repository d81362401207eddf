"""The test bundles, the exporter and the runtime share one manifest model.

``tests/synthetic_bundles.py``'s ``make_synthetic_bundle`` used to write its manifest by hand (outputs without
dtypes, normalisation without its note); the ONNX and TensorRT fallbacks were two loops over
one table. The manifest is checked against the graph it describes (ONNX Runtime reads and runs
it), not against the helpers that wrote it.
"""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from edgepose.bundle import EngineFingerprint, engine_filename, file_entry, load_manifest, write_manifest
from edgepose.manifest import Manifest
from edgepose.runtime import PrecisionFallbackWarning, open_bundle

pytest.importorskip("onnx")


#: ONNX Runtime's element type names -> the manifest's dtype words
ORT_DTYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32"}


def _dims(shape):
    """ONNX Runtime names a dynamic axis ('N'); the manifest writes it as -1."""
    return [d if isinstance(d, int) else -1 for d in shape]


@pytest.mark.parametrize("layout,dynamic", [("NHWC", True), ("NCHW", False)])
def test_synthetic_bundle_manifest_describes_its_own_graph(tmp_path, layout, dynamic):
    """Oracles independent of the manifest helpers the maker calls: the ONNX graph itself, read
    and run by ONNX Runtime (input name, element type and shape, the batch sizes it accepts,
    each output's dtype and shape), README's bundle-format table (uint8 NHWC or float32 NCHW,
    sigma in [m, rad]) and the network's own parameters for the normalisation."""
    ort = pytest.importorskip("onnxruntime")
    from synthetic_bundles import make_synthetic_bundle

    params = make_synthetic_bundle(tmp_path / "b", size=(32, 24), precisions=("fp32",), layout=layout,
                                   batch_max=4, dynamic_batch=dynamic)
    m = load_manifest(tmp_path / "b")
    sess = ort.InferenceSession(str(tmp_path / "b" / "model.onnx"), providers=["CPUExecutionProvider"])
    (graph_input,) = sess.get_inputs()
    section = m["input"]
    assert (section["name"], section["dtype"]) == (graph_input.name, ORT_DTYPES[graph_input.type])
    assert section["shape"] == _dims(graph_input.shape)
    assert (section["layout"], section["shape"][1:]) == (("NHWC", [24, 32, 3]) if layout == "NHWC"
                                                         else ("NCHW", [3, 24, 32]))
    outputs = {o.name: _dims(o.shape) for o in sess.get_outputs()}
    assert {k: v["shape"] for k, v in m["outputs"].items()} == outputs
    assert m["outputs"]["position"]["unit"] == "m" and m["outputs"]["sigma"]["unit"] == ["m", "rad"]
    # the batch range the manifest promises is what the graph runs, and a fixed graph refuses more
    batch = section["batch"]
    assert (batch["min"], batch["max"]) == ((1, 4) if dynamic else (1, 1))
    for n in (batch["min"], batch["max"]):
        got = sess.run(None, {"image": np.zeros([n] + section["shape"][1:], section["dtype"])})
        for (name, entry), value in zip(m["outputs"].items(), got):
            assert value.dtype == np.dtype(entry["dtype"]) and list(value.shape) == [n] + entry["shape"][1:], name
    if not dynamic:
        with pytest.raises(Exception, match="invalid dimensions"):
            sess.run(None, {"image": np.zeros([2] + section["shape"][1:], section["dtype"])})
    assert m["normalization"]["position_mean"] == params["position_mean"].tolist()
    assert m["normalization"]["position_scale"] == float(params["position_scale"])
    view = open_bundle(tmp_path / "b")
    assert (view.input_spec.size, view.input_spec.batch_max) == ((32, 24), batch["max"])


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
                               profile=bundle_profile(Manifest.from_json(m)))
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
