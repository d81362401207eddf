"""The runtime's view of a bundle (runtime/bundles.py): opening one, which file serves a
precision, and the never-silent fallback to the nearest precision, on real bundle folders."""
from __future__ import annotations

import json
import shutil
import warnings

import pytest

from edgepose.bundle import load_manifest, write_manifest
from edgepose.errors import BundleError
from edgepose.runtime import BundleView, PrecisionFallbackWarning, open_bundle

FILE = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


@pytest.fixture()
def bundle_with(tmp_path, bundle):
    """A copy of the conftest bundle listing only the given precisions' ONNX files."""
    def make(*precisions):
        dst = tmp_path / ("b_" + "_".join(precisions))
        shutil.copytree(bundle[0], dst)
        m = load_manifest(dst)
        m["files"] = {rel: e for rel, e in m["files"].items() if e["precision"] in precisions}
        for p in set(FILE) - set(precisions):
            (dst / FILE[p]).unlink()
        write_manifest(dst, m)
        return open_bundle(dst)
    return make


def test_open_bundle_reads_the_manifest_and_input_spec(bundle):
    view = open_bundle(bundle[0])
    assert isinstance(view, BundleView) and open_bundle(view) is view
    assert view.precisions("onnx") == ["fp32", "fp16", "int8"]
    assert view.input_spec.size == (32, 24) and view.input_spec.batch_max == 8
    assert view.file_for("onnx", "int8") == view.path / "model.int8.onnx"
    assert view.file_for("checkpoint", None) is None and view.files("engine") == {}


@pytest.mark.parametrize("make,expect", [
    (lambda d: None, "bundle folder not found"),
    (lambda d: d.mkdir(), "edgepose.json is missing"),
    (lambda d: (d.mkdir(), (d / "edgepose.json").write_text('{"schema": ')), r"edgepose.json:1: not valid JSON"),
    (lambda d: (d.mkdir(), (d / "edgepose.json").write_text(json.dumps({"schema": "other/9"}))), "schema is 'other/9'"),
])
def test_a_bad_folder_is_a_clear_error(tmp_path, make, expect):
    d = tmp_path / "b"
    make(d)
    with pytest.raises(BundleError, match=expect):
        open_bundle(d)


# the fallback order, by hand: fp32 -> fp16 -> int8; fp16 -> fp32 -> int8; int8 -> fp16 -> fp32
@pytest.mark.parametrize("have,ask,got", [
    (("fp32", "int8"), "fp16", "fp32"),
    (("fp16", "int8"), "fp32", "fp16"),
    (("int8",), "fp32", "int8"),
    (("fp32", "fp16"), "int8", "fp16"),
    (("fp32",), "int8", "fp32"),
])
def test_a_missing_precision_falls_back_to_the_nearest_with_a_warning(bundle_with, have, ask, got):
    view = bundle_with(*have)
    with pytest.warns(PrecisionFallbackWarning, match=f"no {ask} onnx file; using {got} instead"):
        prec, path = view.resolve_precision("onnx", ask)
    assert prec == got and path == view.path / FILE[got] and path.is_file()
    with pytest.raises(BundleError, match=rf"has no {ask} onnx file; it has \["):
        view.resolve_precision("onnx", ask, strict=True)


def test_a_present_precision_is_used_silently_and_allowed_limits_the_fallback(bundle_with):
    view = bundle_with("fp32", "fp16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert view.resolve_precision("onnx", "fp16") == ("fp16", view.path / "model.fp16.onnx")
    with pytest.warns(PrecisionFallbackWarning, match="using fp32"):
        assert view.resolve_precision("onnx", "int8", allowed=("fp32",))[0] == "fp32"
    with pytest.raises(BundleError, match="has no 'engine' file"):
        view.resolve_precision("engine", "fp16")
    with pytest.raises(BundleError, match="bf16"):
        view.resolve_precision("onnx", "bf16")


def test_a_file_verified_once_is_checked_again_when_it_changes(bundle_with, monkeypatch):
    """The view hashes an unchanged file once (a runner's camera twins reuse it), but a file
    edited or swapped after the first load is refused at the next one: the memo is keyed on
    what a change alters (size, modification time, inode), never trusted blindly; a file
    written within RACY_S of its hashing is hashed every time (coarse file times)."""
    import os

    import edgepose.bundle_integrity as integrity

    hashed = []
    real = integrity._hash_and_find
    monkeypatch.setattr(integrity, "_hash_and_find", lambda p, *a: hashed.append(p.name) or real(p, *a))
    view = bundle_with("fp32", "fp16")
    path = view.path / "model.fp16.onnx"
    os.utime(path)  # just written (copytree keeps the source's old times)
    assert view.file_for("onnx", "fp16") == path and view.file_for("onnx", "fp16") == path
    assert hashed == ["model.fp16.onnx"] * 2  # racy: hashed at each load
    old = path.stat().st_mtime - 60
    os.utime(path, (old, old))
    hashed.clear()
    assert view.file_for("onnx", "fp16") == path and view.file_for("onnx", "fp16") == path
    assert hashed == ["model.fp16.onnx"]  # settled and unchanged: hashed once
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes, a new modification time
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 differs"):
        view.file_for("onnx", "fp16")
    path.unlink()  # another file in its place, dated back: a new inode
    shutil.copyfile(view.path / "model.onnx", path)
    os.utime(path, (old, old))
    with pytest.raises(BundleError, match="size|sha256"):
        view.file_for("onnx", "fp16")
