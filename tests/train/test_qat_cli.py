"""Stage 3 (QAT) as users run it: train, add QAT to the finished run, resume it, export it.

Subprocesses on the tiny real-PNG scene. Checks that QAT calibrates then fine-tunes through the
training loop (its epochs in metrics.csv), resumes after its last epoch instead of starting over, writes final.pt with the float weights and the
per-Conv ranges, and that edgepose-export writes the INT8 graph from those ranges (manifest
method "qat", no calibration frames) while a PTQ export prints the QAT command as next step.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from edgepose.train.model import read_checkpoint

from test_train_cli import ENV, PY, csv_rows, run_ok, train_cmd
from tiny_scene import write_csv_scene

pytest.importorskip("onnxruntime")


# Stage 3 starts from whatever stages 1-2 left: one stage-1 epoch is enough, and the fold models
# of training's end (re-run on every --resume when on; their fit is tests/train/test_fold_train.py's
# and test_train_cli.py's) are named off, on the first run and the resume alike, whatever the default.
QUICK = ("--stage1-epochs", "1", "--fold-models", "0")


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
    scene = write_csv_scene(tmp_path_factory.mktemp("qscene"), n_train=16, n_test=4, size=(80, 60))
    out = tmp_path_factory.mktemp("qat") / "run"
    run_ok(train_cmd(scene, out, *QUICK, "--qat-epochs", "1"), timeout=600)
    return scene, out


def test_qat_stage_writes_ranges_and_metrics(qat_run):
    scene, out = qat_run
    ck = read_checkpoint(out / "final.pt")
    convs = ck["qat"]["convs"]
    assert len(convs) == 49 and all(c["input_amax"] > 0 for c in convs)  # every Conv, stem included
    assert not any("fake_quant" in k or "qat_act" in k for k in ck["model"])  # plain PoseNet weights
    m = json.loads((out / "metrics.json").read_text())
    assert m["qat.best_epoch"] in (0, 1) and m["qat.int8.median_position_m"] > 0
    assert (out / "checkpoints" / "pre_qat.pt").is_file()


def test_resume_continues_qat_and_export_uses_its_ranges(qat_run, tmp_path):
    scene, out = qat_run
    res = run_ok(train_cmd(scene, out, *QUICK, "--resume", "--qat-epochs", "2"), timeout=600)
    assert "qat: resuming at epoch 2, step 0" in res.stdout, res.stdout
    assert re.search(r"qat epoch +2/2", res.stdout) and not re.search(r"qat epoch +1/2", res.stdout)
    ran = [(r["stage"], r["epoch"]) for r in csv_rows(out) if r["stage"] == "qat"]
    assert ran == [("qat", "1"), ("qat", "2")]  # epoch 1's row from the first run kept, epoch 2 added
    bundle = tmp_path / "bundle"
    res = subprocess.run([PY, "-m", "edgepose.export.cli", str(out), "--out", str(bundle), "--precision",
                          "fp32,int8", "--engine", "no"], capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    man = json.loads((bundle / "edgepose.json").read_text())
    assert man["export"]["onnx"]["int8"]["method"] == "qat"
    assert man["calibration"]["method"] == "qat" and man["calibration"]["frames"] == 0
    assert "--qat-epochs" not in res.stdout  # already QAT: no advice to run it


def test_ptq_export_prints_the_qat_command(qat_run, tmp_path):
    scene, out = qat_run
    pre = out / "checkpoints" / "pre_qat.pt"
    res = subprocess.run([PY, "-m", "edgepose.export.cli", str(pre), "--out", str(tmp_path / "b"), "--precision",
                          "fp32,int8", "--engine", "no", "--calib-frames", "8"],
                         capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "--resume --qat-epochs" in res.stdout and "of the FP32 median error" in res.stdout
