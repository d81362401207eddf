"""edgepose-export never deletes a user's file, cleans up after a killed export, and turns a
full disk into a message (issue 14: items 1, 3, 6 and 7).

Every case runs the real CLI on a real (untrained, tiny) checkpoint without a dataset: FP32
only, so each export takes seconds. What a test checks runs as a subprocess (exit codes,
messages, signals, limits); an export that only sets the scene runs its ``main()`` here.
"""
from __future__ import annotations

import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgepose.bundle import MANIFEST, verify_files  # noqa: E402

SIZE = (32, 24)


def write_run(folder: Path, metrics=None) -> Path:
    from edgepose.train.model import CHECKPOINT_FORMAT, PoseNet

    torch.manual_seed(0)
    m = PoseNet("mobilenet_v3_small", "none", input_size=SIZE, hidden=16, position_mean=(0.0, 0.0, 0.6),
                position_scale=0.6)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "config": m.config, "model": m.state_dict(),
                "data": {"root": str(folder / "no-data")}, "metrics": metrics or {}}, folder / "final.pt")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("robust_export") / "run")


ARGS = ("--precision", "fp32", "--engine", "no", "--no-simplify")


def export(run, out, *extra, preexec_fn=None):
    return subprocess.run([sys.executable, "-m", "edgepose", "export", str(run), "--out", str(out), *ARGS, *extra],
                          capture_output=True, text=True, timeout=600, preexec_fn=preexec_fn)


def export_here(run, out, *extra) -> int:
    """The same command through ``edgepose.export.cli.main`` in this process, for an export that is
    only the precondition of what a test checks (a subprocess spends ~3 s of its ~4 s importing)."""
    from edgepose.export.cli import main

    return main([str(run), "--out", str(out), *ARGS, *extra])


def tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- item 1
def test_user_files_beside_an_empty_manifest_are_refused_then_kept(run, tmp_path):
    """The issue's case: DIR holds precious.txt, sub/data.csv and an edgepose.json of {}."""
    out = tmp_path / "DIR"
    (out / "sub").mkdir(parents=True)
    (out / "precious.txt").write_text("mine")
    (out / "sub" / "data.csv").write_text("a,b\n1,2\n")
    (out / MANIFEST).write_text("{}")
    before = tree(out)
    proc = export(run, out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "precious.txt" in proc.stderr and "sub/data.csv" in proc.stderr and "--overwrite" in proc.stderr
    assert tree(out) == before  # untouched
    proc = export(run, out, "--overwrite")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "precious.txt").read_text() == "mine" and (out / "sub" / "data.csv").read_text() == "a,b\n1,2\n"
    assert "model.onnx" in verify_files(out)


def test_a_file_added_to_a_real_bundle_survives_a_re_export(run, tmp_path):
    out = tmp_path / "b"
    assert export_here(run, out, "--precision", "fp32,fp16") == 0
    (out / "notes.md").write_text("field notes")
    proc = export(run, out)
    assert proc.returncode == 2 and "notes.md" in proc.stderr
    assert (out / "model.fp16.onnx").is_file()  # refused: nothing changed
    proc = export(run, out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert (out / "notes.md").read_text() == "field notes"
    assert not (out / "model.fp16.onnx").exists()  # written by the first export, not by this one: replaced
    assert sorted(verify_files(out)) == sorted(json.loads((out / MANIFEST).read_text())["files"])


def test_a_listed_file_the_user_changed_is_not_replaced_but_moved_aside(run, tmp_path):
    out = tmp_path / "b"
    assert export_here(run, out) == 0
    (out / "model.pt").write_bytes(b"my own weights")  # listed, but no longer what the export wrote
    proc = export(run, out)
    assert proc.returncode == 2 and "model.pt" in proc.stderr
    assert export(run, out, "--overwrite").returncode == 0
    kept = list(out.glob("kept-by-edgepose-export-*/model.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"my own weights"
    verify_files(out)


def test_re_export_over_its_own_bundle_needs_no_flag(run, tmp_path):
    out = tmp_path / "b"
    assert export_here(run, out) == 0
    proc = export(run, out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no partial, no old copy left


# --------------------------------------------------------------------------- item 7
def test_a_killed_exports_partial_folder_is_cleaned_by_the_next_export(run, tmp_path):
    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "edgepose", "export", str(run), "--out", str(out), *ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".b.*.partial/.edgepose-owner.json")):  # created and marked as ours
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    left = list(tmp_path.glob(".b.*.partial"))
    assert left and not out.exists()  # what a SIGKILL leaves: a hidden partial, no bundle
    # issue 22: a folder that merely looks like a leftover is a user's, and stays
    users = [tmp_path / ".b.x1y2z3.partial", tmp_path / ".b.backup.partial", tmp_path / ".b.123.partial"]
    for i, d in enumerate(users):
        d.mkdir()
        (d / "notes.txt").write_text(f"user data {i}")
    (users[2] / ".edgepose-owner.json").write_text('{"tool": "someone-else", "pid": 999999999}')
    assert export_here(run, out) == 0  # the next export, whichever process runs it
    assert sorted(tmp_path.glob(".b.*")) == sorted(users), list(tmp_path.iterdir())  # ours went, theirs stayed
    assert [(d / "notes.txt").read_text() for d in users] == [f"user data {i}" for i in range(3)]
    assert ".edgepose-owner.json" not in {p.name for p in out.iterdir()}  # the record is not a bundle file


# --------------------------------------------------------------------------- items 3 and 6
def test_nan_training_metrics_are_null_with_a_reason_in_the_manifest(tmp_path):
    run = write_run(tmp_path / "run", metrics={"test.median_position_m": math.nan, "test.n": 4})
    assert export_here(run, tmp_path / "b") == 0
    m = json.loads((tmp_path / "b" / MANIFEST).read_text(), parse_constant=lambda c: pytest.fail(c))
    assert m["training"]["metrics"]["test.median_position_m"] is None
    assert m["null_reasons"]["training.metrics.test.median_position_m"].startswith("was NaN")


def test_a_full_disk_during_export_is_a_message_and_leaves_nothing(run, tmp_path):
    """``ulimit -f`` 100 kB: the first ONNX file (a few MB) cannot be written (EFBIG)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = tmp_path / "b"
    proc = export(run, out, preexec_fn=limit)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-3000:]
    assert "file size limit" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".b.*"))


def test_out_naming_a_file_is_refused(run, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    proc = export(run, f)
    assert proc.returncode == 2 and "is a file" in proc.stderr and f.read_text() == "mine"
    assert os.path.isfile(f)


# --------------------------------------------------------------------------- issue 22, family 1
@pytest.mark.parametrize("where", ["calib", "checkpoint", "run-file"])
def test_the_bundle_never_lands_on_what_the_export_reads(run, tmp_path, where):
    data = tmp_path / "data"
    data.mkdir()
    (data / "poses.txt").write_text("a user's dataset")
    out, extra = {"calib": (data / "bundle", ["--calib", str(data)]),
                  "checkpoint": (run / "final.pt" / "b", []),
                  "run-file": (run / "final.pt", [])}[where]
    before = tree(run), tree(data)
    proc = export(run, out, *extra)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert any(w in proc.stderr for w in ("overwrite what this command reads", "is a file", "Not a directory")), \
        proc.stderr[-2000:]
    assert (tree(run), tree(data)) == before


@pytest.mark.parametrize("args, word", [
    (["--workspace-gb", "nan"], "--workspace-gb"), (["--workspace-gb", "-5"], "--workspace-gb"),
    (["--workspace-gb", "0"], "--workspace-gb"), (["--dla-core", "-1"], "--dla-core"),
    (["--dla-core", "99"], "--dla-core"), (["--batch", "100000"], "--batch"), (["--opset", "999"], "--opset"),
    (["--calib-frames", "-3"], "--calib-frames"), (["--max-drift-m", "nan"], "--max-drift-m"),
])
def test_export_parser_refuses_absurd_numbers_before_they_reach_the_jetson_commands(run, tmp_path, args, word):
    proc = export(run, tmp_path / "b", *args)
    assert proc.returncode == 2 and f"argument {word}" in proc.stderr and "expected" in proc.stderr, proc.stderr
    assert "trtexec" not in proc.stdout and not (tmp_path / "b").exists()


def test_export_config_refuses_them_from_python_too():
    from edgepose.errors import ConfigError
    from edgepose.export.config import ExportConfig

    for kw in ({"workspace_gb": -5.0}, {"workspace_gb": math.nan}, {"dla_core": -1}):
        with pytest.raises(ConfigError, match="--workspace-gb|--dla-core"):
            ExportConfig(source=Path("run"), out=Path("b"), **kw).check()


def test_sigterm_during_export_is_a_message_and_leaves_nothing(run, tmp_path):
    """Issue 22, family 5: export had no SIGTERM handler."""
    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "edgepose", "export", str(run), "--out", str(out), *ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".b.*.partial/.edgepose-owner.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".b.*"))
