"""The one manifest model (``edgepose.bundle``): precision names and fallback order, files by
role and precision, the input section written and read by the same class."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from edgepose import bundle as B
from edgepose.errors import BundleError, ConfigError
from edgepose.input_spec import InputMismatchError, InputSpec

def _entry(role, precision):
    return B.FileEntry(role, precision, "0" * 64, 1)


FILES = {
    "model.onnx": _entry("onnx", "fp32"),
    "model.int8.onnx": _entry("onnx", "int8"),
    "model.pt": _entry("checkpoint", "fp32"),
    "parity.npz": _entry("parity", None),
    "a.int8.engine": _entry("engine", "int8"),
    "b.int8.engine": _entry("engine", "int8"),
}


def test_files_by_role_and_precision():
    f = B.BundleFiles(FILES)
    assert f.precisions("onnx") == ["fp32", "int8"] and f.precisions("engine") == ["int8"]
    assert f.find("onnx", "int8") == "model.int8.onnx" and f.find("onnx", "fp16") is None
    assert f.find("parity") == "parity.npz" and f.find("calibration-cache") is None
    assert list(f.with_role("engine", "int8")) == ["a.int8.engine", "b.int8.engine"]  # manifest order
    assert f.by_precision("onnx") == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert len(f) == len(FILES) and dict(f) == FILES
    assert B.BundleFiles.of({"files": {k: e.to_json() for k, e in FILES.items()
                                       if e.role != "engine"}}).find("checkpoint") == "model.pt"


# hand-worked: which file serves each asked precision for each set of available ones
NEAREST_CASES = [
    ("fp32", {"fp16", "int8"}, "fp16"), ("fp32", {"int8"}, "int8"),
    ("fp16", {"fp32", "int8"}, "fp32"), ("fp16", {"int8"}, "int8"),
    ("int8", {"fp32", "fp16"}, "fp16"), ("int8", {"fp32"}, "fp32"),
    ("fp16", {"fp16", "fp32"}, "fp16"), ("int8", set(), None),
]


@pytest.mark.parametrize("asked,have,served", NEAREST_CASES)
def test_fallback_is_the_nearest_precision(asked, have, served):
    files = {B.onnx_filename(p): _entry("onnx", p) for p in have}
    assert B.BundleFiles(files).nearest("onnx", asked) == served
    assert B.BundleFiles(files).nearest("onnx", asked, strict=True) == (asked if asked in have else None)


def test_fallback_order_covers_every_precision_once():
    for p in B.PRECISIONS:
        order = B.fallback_order(p)
        assert order[0] == p and sorted(order) == sorted(B.PRECISIONS)
    assert B.fallback_order("fp16", strict=True) == ("fp16",)
    with pytest.raises(ConfigError, match="bf16.*fp32, fp16, int8"):
        B.fallback_order("bf16")
    assert [B.onnx_filename(p) for p in B.PRECISIONS] == ["model.onnx", "model.fp16.onnx", "model.int8.onnx"]


@pytest.mark.parametrize("kind,dynamic", list(itertools.product(("uint8", "float32"), (False, True))))
def test_input_spec_written_then_read_is_the_same_spec(kind, dynamic):
    batch = (1, 4, 8) if dynamic else (2, 2, 2)
    spec = InputSpec.for_model(kind, (40, 30), batch, dynamic)
    section = json.loads(json.dumps(spec.to_manifest()))  # through JSON, as a bundle stores it
    back = InputSpec.from_manifest({"input": section})
    assert back == spec and back.opt == batch[1]  # the runtime keeps the engine's opt batch
    assert back.size == (40, 30) and back.dynamic == dynamic
    H, W = 30, 40
    assert list(back.shape[1:]) == ([H, W, 3] if kind == "uint8" else [3, H, W])
    assert section["batch"] == {"min": batch[0], "opt": batch[1], "max": batch[2]}
    if kind == "float32":
        assert section["range"] == [0, 255]


def test_input_spec_reads_older_manifests_and_rejects_broken_ones():
    old = InputSpec.from_manifest({"input": {"name": "image", "dtype": "uint8", "layout": "NHWC",
                                             "shape": [1, 24, 32, 3]}})
    assert (old.batch_min, old.batch_max, old.opt) == (1, 1, 1)
    with pytest.raises(BundleError, match="input.shape is missing"):
        InputSpec.from_manifest({"input": {"dtype": "uint8"}})
    with pytest.raises(BundleError, match="shape"):
        InputSpec.from_manifest({"input": {"shape": [1, 24, 32], "layout": "NHWC"}})
    with pytest.raises(ConfigError, match="--input"):
        InputSpec.for_model("int8", (32, 24))


def test_input_spec_check_says_expected_and_received():
    spec = InputSpec.for_model("uint8", (32, 24), (1, 2, 4), dynamic=True)
    ok = np.zeros((3, 24, 32, 3), np.uint8)
    assert spec.check(ok).flags.c_contiguous
    with pytest.raises(InputMismatchError, match=r"looks like NCHW"):
        spec.check(np.zeros((1, 3, 24, 32), np.uint8))
    with pytest.raises(InputMismatchError, match="expected dtype uint8"):
        spec.check(ok.astype(np.float32))
    with pytest.raises(InputMismatchError, match="outside the bundle's range 1..4"):
        spec.check(np.zeros((5, 24, 32, 3), np.uint8))


def test_sections_are_json_and_follow_the_contract():
    out = B.outputs_section(True)
    assert [out[k]["shape"] for k in ("position", "rotation", "sigma")] == [[-1, 3], [-1, 4], [-1, 2]]
    assert out["position"]["unit"] == "m" and out["sigma"]["unit"] == ["m", "rad"]
    norm = B.normalization_section(np.array([1.0, 2.0, 3.0], np.float32), np.float32(0.5))
    assert norm == json.loads(json.dumps(norm))  # plain JSON types, not numpy
    assert norm["position_mean"] == [1.0, 2.0, 3.0] and norm["position_scale"] == 0.5
