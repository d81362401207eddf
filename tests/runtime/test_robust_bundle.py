"""Bundles are verified where they load (issue 14, item 2).

A real synthetic bundle (ONNX graphs honouring the model contract) is copied per test and
damaged the way a copy, an editor or a hostile user would: one flipped bit, a wrong hash in the
manifest, a symbolic link, a path leaving the folder, a manifest of the wrong shape. The
runtime (edgepose-run, PoseEstimator.from_bundle, edgepose-bench) and edgepose-export --verify
must refuse each with the fix, before loading anything.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.bundle import load_manifest, sha256_file, verify_files
from edgepose.errors import BundleError

from bench_support import write_sevenscenes

PY = sys.executable


def cli(name):
    return [str(Path(PY).with_name(name))]


@pytest.fixture()
def copy(bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(bundle[0], dst)
    return dst


def _manifest(path: Path) -> dict:
    return json.loads((path / "edgepose.json").read_text())


def _write(path: Path, manifest: dict) -> None:
    (path / "edgepose.json").write_text(json.dumps(manifest, indent=1))


def flip_one_bit(path: Path, offset: int = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _run(bundle, frames, tmp_path, *extra):
    return subprocess.run(cli("edgepose-run") + [str(bundle), "--source", str(frames), "--out",
                                                 str(tmp_path / "p.jsonl"), "--quiet", "--precision", "fp32", *extra],
                          capture_output=True, text=True, timeout=180)


def test_one_flipped_bit_is_refused_by_run_estimator_and_bench(copy, frames, tmp_path):
    flip_one_bit(copy / "model.onnx")
    proc = _run(copy, frames, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "model.onnx: sha256 differs" in proc.stderr and "edgepose-export --verify" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "p.jsonl").exists()

    from edgepose.runtime import PoseEstimator

    with pytest.raises(BundleError, match="sha256 differs"):
        PoseEstimator.from_bundle(copy, backend="onnxruntime", precision="fp32", strict=True)

    data = write_sevenscenes(tmp_path / "data", n_train=2, n_test=3)
    proc = subprocess.run(cli("edgepose-bench") + [str(copy), "--data", str(data), "--out", str(tmp_path / "r"),
                                                   "--iters", "2", "--warmup-s", "0", "--no-plots", "--quiet"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2 and "model.onnx: sha256 differs" in proc.stderr, proc.stderr
    assert not (tmp_path / "r" / "report.json").exists()


def test_a_wrong_hash_in_the_manifest_is_refused(copy, frames, tmp_path):
    m = _manifest(copy)
    m["files"]["model.onnx"]["sha256"] = "0" * 64
    _write(copy, m)
    proc = _run(copy, frames, tmp_path)
    assert proc.returncode == 2 and "sha256 differs" in proc.stderr


def test_the_other_precisions_still_load_when_one_file_is_damaged(copy, frames, tmp_path):
    """Only the files a run loads are hashed: a damaged int8 file does not stop an fp32 run."""
    flip_one_bit(copy / "model.int8.onnx")
    proc = _run(copy, frames, tmp_path)
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(BundleError, match="model.int8.onnx: sha256 differs"):
        verify_files(copy)


def test_a_symlinked_precision_is_refused(copy, frames, tmp_path):
    """model.fp16.onnx -> model.int8.onnx with a manifest made to match the int8 bytes: a bench
    row labelled fp16 would run the int8 graph."""
    (copy / "model.fp16.onnx").unlink()
    os.symlink("model.int8.onnx", copy / "model.fp16.onnx")
    m = _manifest(copy)
    m["files"]["model.fp16.onnx"].update(sha256=sha256_file(copy / "model.int8.onnx"),
                                         size=(copy / "model.int8.onnx").stat().st_size)
    _write(copy, m)
    proc = _run(copy, frames, tmp_path, "--precision", "fp16")
    assert proc.returncode == 2 and "symbolic link" in proc.stderr, proc.stderr
    with pytest.raises(BundleError, match="symbolic link"):
        verify_files(copy)


@pytest.mark.parametrize("name", ["../evil.onnx", "ABSOLUTE"])
def test_paths_leaving_the_bundle_are_refused(copy, frames, tmp_path, name):
    evil = tmp_path / "evil.onnx"
    shutil.copy(copy / "model.onnx", evil)
    name = str(evil) if name == "ABSOLUTE" else name
    m = _manifest(copy)
    entry = m["files"].pop("model.onnx")
    m["files"] = {name: entry, **m["files"]}
    _write(copy, m)
    with pytest.raises(BundleError, match="absolute path|leaves the bundle"):
        load_manifest(copy)
    proc = _run(copy, frames, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = subprocess.run(cli("edgepose-export") + ["--verify", str(copy)], capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0 and ("absolute path" in proc.stderr or "leaves the bundle" in proc.stderr), proc.stderr


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.update(files=list(m["files"])), "edgepose.json: files is ['model.onnx'"),
    (lambda m: m["files"].update({"model.onnx": "model.onnx"}), "files['model.onnx'] is 'model.onnx'"),
    (lambda m: m["normalization"].update(position_scale="big"), "normalization.position_scale is 'big'"),
    (lambda m: m["input"].update(shape=[1, 0, 0, 3]), "input.shape is [1, 0, 0, 3]"),
    (lambda m: m["files"]["model.onnx"].update(size="12"), "files['model.onnx'].size is '12'"),
    # issue 22, families 3 and 4: absurd or non-integer shapes and batches, an empty listing
    (lambda m: m["input"].update(shape=[1, 100000, 100000, 3]), "height and width in 1..8192"),
    (lambda m: m["input"].update(shape=[1, 24.5, 32, 3]), "input.shape is [1, 24.5, 32, 3]"),
    (lambda m: m["input"].update(shape=[2] + m["input"]["shape"][1:]), "the graph's batch is fixed at 2"),
    (lambda m: m["input"]["batch"].update(max=10 ** 6), "input.batch.max is 1000000"),
    (lambda m: m["input"]["batch"].update(min="1"), "input.batch.min is '1'"),
    (lambda m: m.update(files={}), "files is empty"),
])
def test_a_manifest_of_the_wrong_shape_is_a_clear_error(copy, frames, tmp_path, edit, words):
    m = _manifest(copy)
    edit(m)
    _write(copy, m)
    with pytest.raises(BundleError) as exc:
        load_manifest(copy)
    assert words in str(exc.value) and "re-export" in str(exc.value)
    proc = _run(copy, frames, tmp_path)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_swapped_precision_labels_are_refused_before_running(copy, frames, tmp_path):
    """Issue 22, family 4: the INT8 graph labelled fp32 (and the FP32 graph labelled int8), with
    hashes that match, must not run as ``--precision fp32``."""
    m = _manifest(copy)
    m["files"]["model.onnx"]["precision"], m["files"]["model.int8.onnx"]["precision"] = "int8", "fp32"
    m["files"] = {"model.int8.onnx": m["files"].pop("model.int8.onnx"), **m["files"]}  # fp32 label first
    _write(copy, m)
    proc = _run(copy, frames, tmp_path)
    assert proc.returncode == 2 and "labelled fp32 but it is a Q/DQ (int8) graph" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "p.jsonl").exists()
    with pytest.raises(BundleError, match="model.int8.onnx: labelled fp32 but it is a Q/DQ"):
        verify_files(copy)


def test_a_corrupt_graph_with_an_updated_hash_is_a_message_not_a_traceback(copy, frames, tmp_path):
    """Issue 22, family 3: bytes that are not ONNX, listed with their own sha256 (protobuf DecodeError)."""
    p = copy / "model.onnx"
    p.write_bytes(b"\x0a\xff\xff\xff\xff\x0f not a protobuf" * 16)
    m = _manifest(copy)
    m["files"]["model.onnx"].update(sha256=sha256_file(p), size=p.stat().st_size)
    _write(copy, m)
    proc = subprocess.run(cli("edgepose-export") + ["--verify", str(copy)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1 and "does not parse" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    proc = _run(copy, frames, tmp_path, "--strict")
    assert proc.returncode == 2 and "corrupt or not ONNX" in proc.stderr and "Traceback" not in proc.stderr
