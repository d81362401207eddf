"""Atomic bundle assembly: a bundle appears complete with its manifest, or not at all."""
from __future__ import annotations

import hashlib
import json

import pytest

from edgepose.bundle import MANIFEST, InputSpec, load_manifest, outputs_section, verify_files
from edgepose.errors import BundleError
from edgepose.export.bundle_writer import assemble
from edgepose.manifest import Manifest, ModelInfo, Normalization
from edgepose.export.out_folder import check_out_dir

CONFIG = {"backbone": "efficientnet_lite0", "input_size": [32, 24], "hidden": 32, "dropout": 0.2,
          "position_mean": [1.0, 2.0, 3.0], "position_scale": 4.0, "pixel_mean": [0.5] * 3, "pixel_std": [0.5] * 3}


FINGERPRINT = {"trt_version": "8.5.2.2", "gpu": "Orin", "compute_capability": "8.7", "precision": "fp16"}


def manifest_base(dynamic=False):
    spec = InputSpec.for_model("uint8", (32, 24), (1, 2, 4) if dynamic else (1, 1, 1), dynamic)
    return Manifest(ModelInfo.from_config(CONFIG), spec, Normalization((1.0, 2.0, 3.0), 4.0), files={})


def write_bundle(out, payload=b"graph-bytes"):
    src = out.parent / "src.onnx"
    src.write_bytes(payload)
    with assemble(out) as asm:
        asm.add_file(src, "model.onnx", "onnx", "fp32")
        asm.add_bytes(b"ckpt", "model.pt", "checkpoint", "fp32")
        asm.finish(manifest_base())
    return out


def test_assembled_bundle_lists_every_file_with_its_hash(tmp_path):
    out = write_bundle(tmp_path / "b")
    m = load_manifest(out)
    assert set(m["files"]) == {"model.onnx", "model.pt"}
    # oracle: hashlib on the bytes the test handed over, not the writer's own sha256_file
    assert m["files"]["model.onnx"]["sha256"] == hashlib.sha256(b"graph-bytes").hexdigest()
    assert m["files"]["model.pt"]["sha256"] == hashlib.sha256(b"ckpt").hexdigest()
    assert (m["files"]["model.onnx"]["size"], m["files"]["model.pt"]["size"]) == (len(b"graph-bytes"), 4)
    assert m["files"]["model.pt"]["role"] == "checkpoint"
    assert m["schema"] == "edgepose.bundle/1" and "conventions" in m
    # the input size is stored once (input.shape), not copied into model or model.config
    assert m["input"]["shape"] == [1, 24, 32, 3] and Manifest.load(out).input_size == (32, 24)
    assert "input_size" not in m["model"] and "input_size" not in m["model"]["config"]
    assert m["model"]["config"] == {"backbone": "efficientnet_lite0", "hidden": 32, "dropout": 0.2}
    assert verify_files(out) == ["model.onnx", "model.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "src.onnx"]  # no temporary folder left


def test_an_error_midway_leaves_the_previous_bundle_untouched(tmp_path):
    out = write_bundle(tmp_path / "b", b"old")
    before = (out / MANIFEST).read_text()
    with pytest.raises(RuntimeError, match="boom"):
        with assemble(out) as asm:
            asm.add_bytes(b"new", "model.onnx", "onnx", "fp32")
            raise RuntimeError("boom")
    assert (out / MANIFEST).read_text() == before and (out / "model.onnx").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "src.onnx"]


def test_an_unfinished_assembly_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not finished"):
        with assemble(tmp_path / "b") as asm:
            asm.add_bytes(b"x", "model.onnx", "onnx", "fp32")
    assert not (tmp_path / "b").exists()


def test_start_from_keeps_files_and_never_writes_through_hard_links(tmp_path):
    old = write_bundle(tmp_path / "old", b"fp32-graph")
    m = Manifest.load(old)
    new_src = tmp_path / "replacement.onnx"
    new_src.write_bytes(b"changed")
    with assemble(tmp_path / "new") as asm:
        asm.start_from(old, m, drop_roles=("checkpoint",))
        assert set(asm.files) == {"model.onnx"}
        asm.add_file(new_src, "model.onnx", "onnx", "fp32")  # replaces a (possibly hard-linked) copy
        asm.add_bytes(b"plan", "model.trt8.5.2.2.orin.sm87.gpu.fp16.engine", "engine", "fp16",
                      fingerprint=FINGERPRINT)
        asm.finish(Manifest.load(old))
    assert (old / "model.onnx").read_bytes() == b"fp32-graph"  # the source bundle is intact
    verify_files(old)
    new = load_manifest(tmp_path / "new")
    assert new["files"]["model.onnx"]["sha256"] == hashlib.sha256(b"changed").hexdigest()
    assert new["files"]["model.trt8.5.2.2.orin.sm87.gpu.fp16.engine"]["fingerprint"] == FINGERPRINT
    assert "model.pt" not in new["files"] and not (tmp_path / "new" / "model.pt").exists()


def test_out_must_not_be_a_non_bundle_folder(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(BundleError, match="no edgepose export wrote.*thesis.tex"):
        check_out_dir(precious)
    with pytest.raises(BundleError):
        with assemble(precious) as asm:
            asm.finish(manifest_base())
    assert (precious / "thesis.tex").read_text() == "do not delete"
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="is a file"):
        check_out_dir(tmp_path / "file")
    check_out_dir(tmp_path / "new")  # absent: fine
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty")  # empty: fine


def test_input_and_output_specs_follow_the_model_contract():
    u8 = InputSpec.for_model("uint8", (32, 24), (1, 4, 8), True).to_manifest()
    assert u8 == {"name": "image", "dtype": "uint8", "layout": "NHWC", "shape": [-1, 24, 32, 3],
                  "batch": {"min": 1, "opt": 4, "max": 8}}
    f32 = InputSpec.for_model("float32", (32, 24), (2, 2, 2), False).to_manifest()
    assert f32["layout"] == "NCHW" and f32["shape"] == [2, 3, 24, 32] and f32["range"] == [0, 255]
    out = outputs_section(True)
    assert out["position"]["shape"] == [-1, 3] and out["rotation"]["shape"] == [-1, 4]
    assert out["sigma"]["unit"] == ["m", "rad"]
    norm = Normalization((1.0, 2.0, 3.0), 4.0).to_json()
    assert norm["position_mean"] == [1.0, 2.0, 3.0] and norm["position_scale"] == 4.0
    assert norm["where"] == "graph-fp32"
    json.dumps(manifest_base(True).to_json())  # all JSON types
