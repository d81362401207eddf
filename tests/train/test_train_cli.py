"""edgepose-train as users run it: subprocesses on a tiny real-PNG scene.

What needs a process (signals, the resume after SIGKILL, exit codes, torchrun, the entry
point's help) runs as a subprocess; the runs whose files and printed lines are all a test
reads (the reference, the resume after SIGTERM, stage choices, fold models) call
``edgepose.train.cli.main`` in this process, which saves a torch import each (same seed,
threads and kernels: same weights).
One uninterrupted ``--deterministic`` run is the reference; a run killed with SIGKILL and
resumed, and one stopped with SIGTERM (checkpoint mid-epoch) and resumed, must end with the
same weights. A 2-process torchrun run checks DDP (gloo): rank 0 alone writes and the
sampler shards the frames.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from edgepose.train.model import load_model, read_checkpoint, resolve_checkpoint

from tiny_scene import write_csv_scene

PY = sys.executable
# 3 stage-1 epochs and 1 stage-2 epoch of 4 steps each at 64x48: a few seconds per run
ARGS = ["--input-size", "64x48", "--stage1-epochs", "3", "--stage2-epochs", "1", "--batch-size", "4", "--checkpoint-minutes", "0",
        "--val-every", "8", "--max-points", "32", "--threads", "1", "--deterministic", "--no-progress"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def train_cmd(data, out, *extra):
    return [PY, "-m", "edgepose.train", str(data), "--out", str(out), *ARGS, *extra]


def run_ok(cmd, timeout=240):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert res.returncode == 0, f"exit {res.returncode}\nSTDOUT\n{res.stdout[-3000:]}\nSTDERR\n{res.stderr[-3000:]}"
    return res


def train_here(data, out, *extra):
    """``edgepose.train.cli.main`` in this process with ``ARGS``; returns its exit code, stdout
    and stderr like ``subprocess.run``.

    The run's process-wide settings (deterministic kernels, cudnn.benchmark, the environment
    variables the CLI sets by default) are given back afterwards so later tests see the suite's."""
    from edgepose.train.cli import main

    env = dict(os.environ)
    det, bench = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main([str(data), "--out", str(out), *ARGS, *extra])
    finally:
        torch.use_deterministic_algorithms(det)
        torch.backends.cudnn.benchmark = bench
        os.environ.clear()
        os.environ.update(env)
    res = SimpleNamespace(returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue())
    assert code == 0, f"exit {code}\nSTDOUT\n{res.stdout[-3000:]}\nSTDERR\n{res.stderr[-3000:]}"
    return res


def csv_rows(run: Path):
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def same_weights(a: Path, b: Path):
    sa, sb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


def interrupt_after_first_epoch(cmd, sig):
    """Start training, wait for the first epoch's checkpoint, send ``sig``; returns the result."""
    out = Path(cmd[cmd.index("--out") + 1])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 240
    marker = out / "checkpoints" / "stage1_last.pt"
    while not marker.exists():
        assert proc.poll() is None, f"training ended before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before the signal: the test cannot interrupt it mid-stage"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=240)
    return proc.returncode, stdout, stderr


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    return write_csv_scene(tmp_path_factory.mktemp("scene"), n_train=16, n_test=4, size=(80, 60))


@pytest.fixture(scope="session")
def reference(scene, tmp_path_factory):
    # in this process (its files and printed lines are what the tests read); the resumed
    # subprocess runs must end on its weights, as the in-process fold run does
    out = tmp_path_factory.mktemp("ref") / "run"
    res = train_here(scene, out)
    return out, res


def test_run_folder_contract(reference):
    out, res = reference
    for name in ("stage1_last", "stage1_best", "stage2_last", "stage2_best"):
        ck = torch.load(out / "checkpoints" / f"{name}.pt", weights_only=True)
        assert {"optimizer", "scheduler", "loss_state", "epoch", "stage", "rng"} <= set(ck)
    final = torch.load(out / "final.pt", weights_only=True)
    assert final["format"] == "edgepose.checkpoint/1"
    assert final["data"]["format"] == "csv" and Path(final["data"]["root"]).is_absolute()
    assert final["config"]["input_size"] == [64, 48]
    model = load_model(resolve_checkpoint(out))  # what the exporter does
    assert model.config["backbone"] == "efficientnet_lite0"
    m = json.loads((out / "metrics.json").read_text())
    for prefix in ("test", "stage1", "baseline.mean_pose", "baseline.retrieval"):
        for key in ("median_position_m", "median_rotation_deg", "mean_position_m", "mean_rotation_deg", "n_frames"):
            assert f"{prefix}.{key}" in m
    assert m["test.n_frames"] == 4 and m["run.final_stage"] == "stage2"
    assert m["baseline.mean_pose.median_position_m"] > 0
    # sigma calibrated on the 2 validation frames, its coverage reported on the test split
    # (and, where the memory answers alone, on each training frame answered by the others)
    assert m["calibration.frames"] >= 2 and final["calibration"]["scale"] == [m["calibration.scale_position"],
                                                                           m["calibration.scale_rotation"]]
    assert final["model"]["sigma_scale"].tolist() == pytest.approx(final["calibration"]["scale"])
    assert all(0 <= m[f"test.within_{k}sigma_{w}"] <= 1 for k in (1, 2, 3) for w in ("position", "rotation"))
    # every stored view carries its honest (out-of-fold) error, sigma's neighbour-error signal
    view_error = final["model"]["memory.view_error"]
    assert view_error.shape == (m["memory.size"], 2) == (16, 2)
    assert torch.isfinite(view_error).all() and (view_error >= 0).all() and view_error.sum() > 0
    assert m["memory.out_of_fold.folds"] == 5
    # 2 validation frames: sigma keeps its documented default weights (head and disagreement,
    # 1 each), not a fit on the 14 stand-in answers
    assert m["memory.sigma.frames_by_kind"] == {"validation": 2, "out_of_fold": 0}
    assert m["memory.sigma.weights"] == {"head": [1.0, 1.0], "disagreement": [1.0, 1.0], "spread": [0.0, 0.0],
                                         "distance": [0.0, 0.0], "neighbour_error": [0.0, 0.0]}
    assert "retrieval (baseline)" in res.stdout and "within 1/2/3 sigma" in res.stdout
    # 2 validation frames are fewer than 8: the summary names what the blend was chosen on instead
    assert "(chosen on out-of-fold answers of the stored views (fewer validation frames than 8);" in res.stdout
    rows = csv_rows(out)
    assert [(r["stage"], int(r["epoch"])) for r in rows] == [("stage1", 1), ("stage1", 2), ("stage1", 3), ("stage2", 1)]
    assert rows[0]["sp"] != "" and rows[0]["val_median_position_m"] != "" and float(rows[0]["images_per_s"]) > 0
    assert all(int(r["images"]) == 14 for r in rows)  # 16 train frames minus 2 held out for validation
    assert "edgepose-export" in res.stdout and "--precision fp32,fp16,int8" in res.stdout
    assert "train 14  val 2" in res.stdout and "test 4" in res.stdout


def test_sigkill_mid_stage_then_resume_matches_the_uninterrupted_run(scene, reference, tmp_path):
    out = tmp_path / "run"
    code, _, _ = interrupt_after_first_epoch(train_cmd(scene, out), signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (out / "final.pt").exists()
    res = run_ok([PY, "-m", "edgepose.train", "--out", str(out), "--resume", "--no-progress"])
    assert "resuming" in res.stdout
    same_weights(out / "final.pt", reference[0] / "final.pt")
    rows = csv_rows(out)
    assert [(r["stage"], int(r["epoch"])) for r in rows] == [("stage1", 1), ("stage1", 2), ("stage1", 3), ("stage2", 1)]


def test_sigterm_saves_mid_epoch_and_resume_matches(scene, reference, tmp_path):
    out = tmp_path / "run"
    code, _, stderr = interrupt_after_first_epoch(train_cmd(scene, out), signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, stderr[-2000:]
    assert "--resume" in stderr
    ck = torch.load(out / "checkpoints" / "stage1_last.pt", weights_only=True)
    assert ck["stage"] == "stage1" and (ck["epoch"], ck["step"]) != (3, 0)
    # the resume in this process: the SIGKILL test resumes through the entry point
    train_here(scene, out, "--resume")
    same_weights(out / "final.pt", reference[0] / "final.pt")


def test_refuses_to_overwrite_a_run_without_resume(scene, reference):
    res = subprocess.run(train_cmd(scene, reference[0]), capture_output=True, text=True, timeout=120, env=ENV)
    assert res.returncode == 2
    assert "already holds checkpoints" in res.stderr and "--resume" in res.stderr


def test_help_teaches_the_recipe_and_the_next_steps():
    res = run_ok([PY, "-m", "edgepose.train", "--help"], timeout=60)
    for text in ("--stage2-epochs", "--resume", "torchrun", "reprojection", "metrics.json"):
        assert text in res.stdout


def test_ddp_two_cpu_processes(scene, tmp_path):
    out = tmp_path / "ddp"
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "edgepose.train",
           str(scene), "--out", str(out), *ARGS[:-1], "--stage1-epochs", "1", "--stage2-epochs", "1",
           "--batch-size", "2", "--no-progress"]
    res = run_ok(cmd, timeout=300)
    m = json.loads((out / "metrics.json").read_text())
    assert m["run.world_size"] == 2
    assert res.stdout.count("edgepose-train:") == 1  # rank 0 alone prints the plan
    rows = csv_rows(out)
    # each of the 2 processes trained on its half: 14 frames per epoch in all, not 28
    assert [int(r["images"]) for r in rows] == [14, 14]
    load_model(resolve_checkpoint(out))


def test_stage2_epochs_zero_stops_after_stage1_with_the_beta_loss(scene, tmp_path):
    out = tmp_path / "s1"
    train_here(scene, out, "--stage1-epochs", "1", "--stage2-epochs", "0", "--loss", "beta", "--beta", "250")
    assert not (out / "checkpoints" / "stage2_last.pt").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert m["run.final_stage"] == "stage1"
    assert m["regressor.median_position_m"] == m["stage1.median_position_m"]  # test.* adds the pose memory
    rows = csv_rows(out)
    assert [r["stage"] for r in rows] == ["stage1"] and "sp" not in rows[0]  # beta loss: no learned weights
    assert torch.load(out / "final.pt", weights_only=True)["recipe"]["beta"] == 250


def test_stage2_without_stage1_warns_and_still_trains(scene, tmp_path):
    out = tmp_path / "s2"
    res = train_here(scene, out, "--stage1-epochs", "0", "--stage2-epochs", "1")
    assert "fail to converge" in res.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["run.final_stage"] == "stage2" and "stage1.median_position_m" not in m


def test_fold_models_leave_the_trained_model_alone_and_swap_only_the_memory_fit(scene, reference, tmp_path):
    # the reference is the default (no fold models: the ridge stand-in, memory.out_of_fold.*);
    # --fold-models 2 trains two fold models after the stages: the stages' weights are the
    # reference's, the memory is fitted on the fold answers (memory.folds.*, a difficulty head),
    # and metrics.json has the reference's keys with the stand-in's swapped for the fold fit's
    out = tmp_path / "folds"
    res = train_here(scene, out, "--fold-models", "2")
    assert res.stdout.count("held-out views") == 2
    off_m = json.loads((reference[0] / "metrics.json").read_text())
    on_m = json.loads((out / "metrics.json").read_text())
    sa, sb = read_checkpoint(out / "final.pt")["model"], read_checkpoint(reference[0] / "final.pt")["model"]
    net = [k for k in sa if not k.startswith("memory.") and k != "sigma_scale"]
    assert net and all(torch.equal(sa[k], sb[k]) for k in net)
    assert off_m["memory.out_of_fold.folds"] == 5 and not any(k.startswith("memory.folds.") for k in off_m)
    assert "difficulty" not in off_m["memory.sigma.weights"] and "difficulty" in on_m["memory.sigma.weights"]
    assert not sb["memory.difficulty_weight"].any() and not sb["memory.difficulty_coef"].any()
    assert on_m["memory.folds.models"] == 2 and sa["memory.difficulty_coef"].any()
    fold_keys = {k for k in on_m if k.startswith("memory.folds.")}
    ridge_keys = {k for k in off_m if k.startswith("memory.out_of_fold.")}
    assert set(on_m) == (set(off_m) - ridge_keys) | fold_keys
    assert off_m["regressor.median_position_m"] == on_m["regressor.median_position_m"]
    assert [r["stage"] for r in csv_rows(out)] == [r["stage"] for r in csv_rows(reference[0])]  # no fold rows
