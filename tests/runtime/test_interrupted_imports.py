"""A Ctrl-C that lands inside importlib's own code during start-up stops the command (exit 130
with the usual message) instead of being swallowed and lost.

The race (edgepose/interrupts.py says why it matters): importlib frees a module's lock through
a weakref callback (``cb`` in ``importlib._bootstrap._get_module_lock``) that takes CPython's
global import lock first. A Python-level signal handler that raises there, between that
acquire and the ``try`` that releases it, leaves the lock held by the main thread, and its
exception is printed as "Exception ignored in ... cb" and dropped: the run went on.

Oracle: a real ``edgepose-run`` / ``edgepose-bench`` subprocess whose ``sitecustomize.py``
(``tests/import_lock_race.py``, which knows nothing of edgepose) makes exactly that happen
with a real SIGINT at the end of a chosen start-up import: ONNX Runtime and torch for the
runner, rosbags for a bag source and a bag sink. The harness logs that it fired (a run it never
reached does not pass). On the code before the fix every one of these runs went on to exit 0
with all its poses written.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

pytest.importorskip("onnxruntime")

import import_lock_race  # noqa: E402
from synthetic_bundles import make_synthetic_bundle  # noqa: E402


def cli(name: str):
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose", name.split("-")[1]]


#: frames per source: the run lasts long enough that a stop is seen as poses missing
N = 100


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("interrupted_imports") / "bundle"
    make_synthetic_bundle(path, size=(32, 24))
    return path


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from ros_image_bags import gradient_frames
    from PIL import Image

    folder = tmp_path_factory.mktemp("interrupted_imports") / "frames"
    folder.mkdir()
    for i, img in enumerate(gradient_frames(N)):
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return folder


def run_interrupted(tmp_path: Path, module: str, argv: list) -> subprocess.CompletedProcess:
    """``argv`` run with a SIGINT landing inside importlib's ``cb`` of ``module``'s import; the
    harness must have fired."""
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "sitecustomize.py").write_text(import_lock_race.sitecustomize())
    log = tmp_path / "harness.log"
    env = dict(os.environ, EP_SIGINT_IMPORT=module, EP_SIGINT_LOG=str(log), MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(tmp_path / "harness")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, env=env)
    assert log.is_file() and module in log.read_text(), f"the harness never fired for {module}:\n{p.stderr}"
    return p


def assert_stopped(p: subprocess.CompletedProcess, prog: str, out: Optional[Path] = None) -> None:
    """Exit 130 with the interrupted message: start-up's, or the loop's when the signal, sent
    again once importlib is left, waited for the pipeline's start (signals are held there)."""
    assert "Exception ignored" not in p.stderr, p.stderr
    assert p.returncode == 130, f"exit {p.returncode} (130 expected):\n{p.stderr}"
    assert re.search(rf"{prog}: interrupted \((SIGINT|Ctrl-C)\)", p.stderr), p.stderr
    if out is not None:  # JSON lines: the run did not go on to its end
        written = len(out.read_text().splitlines()) if out.exists() else 0
        assert written < N, f"all {N} poses written"


def test_ctrl_c_inside_the_runner_import_stops_the_run(bundle, frames, tmp_path):
    """``import onnxruntime``: ``backend=auto`` imports it to see whether it can run."""
    out = tmp_path / "poses.jsonl"
    p = run_interrupted(tmp_path, "onnxruntime", cli("edgepose-run") + [bundle, "--source", frames, "--out", out,
                                                                         "--quiet"])
    assert_stopped(p, "edgepose-run", out)


def test_ctrl_c_inside_the_torch_import_stops_the_run(bundle, frames, tmp_path):
    """``import torch``: the torch backend imports it when the runner opens."""
    torch = pytest.importorskip("torch")
    import shutil

    from edgepose.bundle import file_entry, load_manifest, write_manifest
    from edgepose.train.checkpoint import save_checkpoint
    from edgepose.train.model import PoseNet

    torch.manual_seed(0)
    model = PoseNet("mobilenet_v3_small", pretrained="none", input_size=(32, 24), hidden=16)
    shutil.copytree(bundle, tmp_path / "bundle")
    save_checkpoint(tmp_path / "bundle" / "model.pt", {"config": model.config, "model": model.state_dict()})
    manifest = load_manifest(tmp_path / "bundle")
    manifest["files"]["model.pt"] = file_entry(tmp_path / "bundle", "model.pt", "checkpoint", "fp32")
    write_manifest(tmp_path / "bundle", manifest)
    out = tmp_path / "poses.jsonl"
    p = run_interrupted(tmp_path, "torch", cli("edgepose-run") + [tmp_path / "bundle", "--backend", "torch", "--source",
                                                                   frames, "--out", out, "--quiet"])
    assert_stopped(p, "edgepose-run", out)


@pytest.mark.parametrize("end", ["source", "sink"])
def test_ctrl_c_inside_the_rosbags_import_stops_the_run(bundle, frames, tmp_path, end):
    """``rosbags.highlevel`` (the first rosbags import): a bag ``--source``, or a bag ``--out``."""
    pytest.importorskip("rosbags")
    from ros_image_bags import gradient_frames, write_image_bag

    if end == "source":
        out = tmp_path / "poses.jsonl"
        args = ["--source", write_image_bag(tmp_path / "in.mcap", gradient_frames(N)), "--topic",
                "/camera/image_raw", "--out", out]
    else:
        args = ["--source", frames, "--out", tmp_path / "poses.mcap"]
    p = run_interrupted(tmp_path, "rosbags.highlevel", cli("edgepose-run") + [bundle, *args, "--quiet"])
    assert_stopped(p, "edgepose-run", out if end == "source" else None)


def test_ctrl_c_inside_the_runner_import_stops_the_bench(bundle, tmp_path):
    from bench_support import write_sevenscenes

    scene = write_sevenscenes(tmp_path / "scene")
    out = tmp_path / "report"
    p = run_interrupted(tmp_path, "onnxruntime", cli("edgepose-bench") + [
        bundle, "--data", scene, "--warmup-s", "0.05", "--iters", "5", "--quiet", "--no-plots", "--out", out])
    assert_stopped(p, "edgepose-bench")
    assert not (out / "report.json").exists()
