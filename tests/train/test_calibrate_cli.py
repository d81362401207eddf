"""edgepose-calibrate as users run it: refit sigma's scale of a finished run on labelled frames.

A tiny run is trained in this process (the tiny real-PNG scene); the command runs as a
subprocess. Oracles that are not the code under test:

* coverage "before" on the test split equals what training itself reported on it
  (``metrics.json``, training's own data path and evaluation);
* the written scale is the chi-3 maximum-likelihood scale worked out here in closed form from
  the per-frame errors of training's data path (``c = sqrt(mean((e / s1)^2) / (3 pi / 8))``).
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from edgepose.train.model import load_model, read_checkpoint

from test_train_cli import ENV, PY, train_here
from tiny_scene import write_csv_scene

QUICK = ("--stage1-epochs", "1", "--fold-models", "0")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    scene = write_csv_scene(tmp_path_factory.mktemp("cscene"), n_train=16, n_test=8, size=(80, 60))
    out = tmp_path_factory.mktemp("crun") / "run"
    train_here(scene, out, *QUICK)
    return scene, out


@pytest.fixture
def run_copy(trained, tmp_path):
    scene, out = trained
    dst = tmp_path / "run"
    shutil.copytree(out, dst)
    return scene, dst


def calibrate(*args):
    return subprocess.run([PY, "-m", "edgepose.train.calibrate.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=ENV)


def test_scale_is_the_ml_fit_and_before_matches_training(run_copy):
    scene, run = run_copy
    metrics = json.loads((run / "metrics.json").read_text())
    old = read_checkpoint(run / "final.pt")
    res = calibrate(run, scene, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["frames"] == 8 and report["split"] == "test"
    for name in ("position", "rotation"):
        for k in (1, 2, 3):
            assert report[name]["before"][str(k)] == pytest.approx(metrics[f"test.within_{k}sigma_{name}"])
    # the closed-form ML scale from training's own data path and the run's model before the change
    from edgepose.train import distributed
    from edgepose.train.finish import frame_errors
    from edgepose.train.recipe import TrainConfig
    from edgepose.train.trainer import prepare_data

    cfg = TrainConfig.from_recipe(old["recipe"], max_points=0, progress=False)
    test = prepare_data(cfg, distributed.env_info())[2]
    model = load_model(run / "final.pt")  # already rewritten: rescale its sigma back to 1
    new = model.sigma_scale.double().numpy()
    e_p, e_q, s = frame_errors(model, test, torch.device("cpu"))
    for j, e in enumerate((e_p, e_q)):
        r = e / (s[:, j] / new[j])
        expected = math.sqrt(float(np.mean(r * r)) / (3 * math.pi / 8))
        assert new[j] == pytest.approx(expected, rel=1e-5)
        assert report[("position", "rotation")[j]]["scale_after"] == pytest.approx(expected, rel=1e-5)
    cal = read_checkpoint(run / "final.pt")["calibration"]
    assert cal["previous"] == old["calibration"] and cal["split"] == "test"
    assert cal["scale"] == pytest.approx(new.tolist())
    # every other tensor of the model is untouched
    sa, sb = old["model"], read_checkpoint(run / "final.pt")["model"]
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == ["sigma_scale"]


def test_dry_run_changes_nothing_and_prints_the_table(run_copy):
    scene, run = run_copy
    before = (run / "final.pt").read_bytes()
    res = calibrate(run, scene, "--dry-run")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (run / "final.pt").read_bytes() == before
    assert "honest" in res.stdout and "dry run: final.pt unchanged" in res.stdout
    res = calibrate(run, scene)
    assert res.returncode == 0 and "next: edgepose-export" in res.stdout
    assert (run / "final.pt").read_bytes() != before


def test_training_frames_warn_and_bad_input_exits_2(run_copy, tmp_path):
    scene, run = run_copy
    res = calibrate(run, scene, "--split", "train", "--dry-run")
    assert res.returncode == 0 and "warning" in res.stderr and "training frames" in res.stderr
    res = calibrate(tmp_path / "nothing", scene)
    assert res.returncode == 2 and "no final.pt" in res.stderr
    res = calibrate(run, tmp_path / "nodata")
    assert res.returncode == 2 and "no such dataset folder" in res.stderr
    (tmp_path / "bad").mkdir()
    rows = (scene / "poses.csv").read_text().splitlines()
    head, first = rows[0], rows[1].split(",")
    first[1] = "nan"  # x of the first frame
    shutil.copytree(scene / "frames", tmp_path / "bad" / "frames")
    (tmp_path / "bad" / "poses.csv").write_text("\n".join([head, ",".join(first), *rows[2:]]) + "\n")
    res = calibrate(run, tmp_path / "bad")
    assert res.returncode == 2 and "poses.csv:2" in res.stderr and "Traceback" not in res.stderr
