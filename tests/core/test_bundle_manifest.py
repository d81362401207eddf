"""Manifest round trip, verification, engine fingerprints and atomic writes."""
import json
import re
from pathlib import Path

import pytest

from edgepose import bundle as B
from edgepose.atomic import atomic_dir, atomic_write_json
from edgepose.errors import BundleError, EngineMismatchError

README = Path(__file__).resolve().parents[2] / "README.md"


def make_bundle(d):
    d.mkdir()
    (d / "model.onnx").write_bytes(b"onnx-bytes")
    B.write_manifest(d, {"model": {"backbone": "tiny"}, "input": B.InputSpec.for_model("uint8", (32, 24)).to_manifest(),
                         "outputs": B.outputs_section(False, 1), "normalization": B.normalization_section([0, 0, 0], 1),
                         "files": {"model.onnx": B.file_entry(d, "model.onnx", "onnx", "fp32")}})
    return d


def test_manifest_roundtrip_and_verify(tmp_path):
    d = make_bundle(tmp_path / "b")
    m = B.load_manifest(d)
    # the schema users and other tools read is the one README's "Bundle format" heading names
    documented = re.search(r"### Bundle format \(`edgepose.json`, schema `([^`]+)`\)", README.read_text()).group(1)
    assert m["schema"] == documented == "edgepose.bundle/1" and "conventions" in m
    assert B.verify_files(d) == ["model.onnx"]
    typed = B.Manifest.load(d)
    assert B.find_file(typed, "onnx", "fp32") == "model.onnx" and B.find_file(typed, "onnx", "int8") is None
    (d / "model.onnx").write_bytes(b"onnx-bytEs")
    with pytest.raises(BundleError, match="model.onnx: sha256"):
        B.verify_files(d)


def test_manifest_errors_say_what_to_do(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        B.load_manifest(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(BundleError, match="edgepose.json is missing"):
        B.load_manifest(tmp_path / "x")
    (tmp_path / "x" / "edgepose.json").write_text('{"schema": "edgepose.bundle/1",\n oops}')
    with pytest.raises(BundleError, match=r"edgepose.json:2"):
        B.load_manifest(tmp_path / "x")
    atomic_write_json(tmp_path / "x" / "edgepose.json", {"schema": "edgepose.bundle/0"})
    with pytest.raises(BundleError, match="schema"):
        B.load_manifest(tmp_path / "x")


def test_engine_fingerprint_naming_and_mismatch():
    fp = B.EngineFingerprint("10.3.0", "Orin (nvgpu)", "8.7", "fp16", None)
    assert B.engine_filename(fp) == "model.trt10.3.0.orin-nvgpu.sm87.gpu.fp16.engine"
    dla = B.EngineFingerprint("8.5.2", "Xavier", "7.2", "int8", 1)
    assert ".dla1.int8." in B.engine_filename(dla)
    assert B.EngineFingerprint.from_json(json.loads(json.dumps(fp.to_json()))) == fp
    B.check_engine({"fingerprint": fp.to_json()}, fp)
    other = B.EngineFingerprint("10.3.0", "NVIDIA H100", "9.0", "fp16", None)
    with pytest.raises(EngineMismatchError, match="compute_capability") as e:
        B.check_engine({"fingerprint": fp.to_json()}, other, "my_bundle")
    assert "edgepose-export my_bundle --precision fp16 --engine yes" in str(e.value)


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "bundle"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.onnx").write_bytes(b"x")
            raise RuntimeError("crash mid-export")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with atomic_dir(target) as tmp:  # replaces the old one whole
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
