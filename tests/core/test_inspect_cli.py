"""edgepose-inspect: text and JSON reports, problems, exit codes."""
import json
import subprocess
import sys

import numpy as np
from dataset_builders import random_poses, write_cambridge, write_middlebury

from edgepose.cli.inspect import main


def test_json_report_in_design_conventions(tmp_path, capsys):
    P, Q = random_poses(5, seed=1)
    X = np.random.default_rng(0).uniform(-0.5, 0.5, size=(4, 3))
    write_cambridge(tmp_path, P, Q, X)
    assert main([str(tmp_path), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["format"] == "cambridge" and obj["splits"] == {"train": 3, "test": 2}
    fr = obj["frames"][0]
    assert set(fr) >= {"image", "split", "position", "rotation_wxyz", "K", "width", "height", "n_points"}
    np.testing.assert_allclose(fr["position"], P[0], atol=1e-7)
    np.testing.assert_allclose(fr["rotation_wxyz"], Q[0], atol=1e-7)
    assert fr["n_points"] == 2 and (fr["width"], fr["height"]) == (32, 18)
    assert obj["errors"] == []


def test_text_report_lists_every_problem_and_fails(tmp_path, capsys):
    P, Q = random_poses(4, seed=2)
    write_middlebury(tmp_path, P, Q, np.diag([20.0, 20.0, 1.0]))
    (tmp_path / "obj0002.png").unlink()
    (tmp_path / "obj0003.png").unlink()
    assert main([str(tmp_path), "--split-policy", "every:5"]) == 1
    out = capsys.readouterr().out
    assert "format       middlebury" in out
    assert "2 image(s) listed by the dataset are missing: obj0002.png, obj0003.png" in out
    assert "train split is empty" not in out and "no bounding box" in out
    assert "not usable yet" in out


def test_bad_file_exits_nonzero_with_message_on_stderr(tmp_path):
    P, Q = random_poses(3, seed=3)
    write_middlebury(tmp_path, P, Q, np.diag([20.0, 20.0, 1.0]))
    par = tmp_path / "obj_par.txt"
    par.write_text(par.read_text().replace("obj0002.png 20.0", "obj0002.png twenty", 1))
    r = subprocess.run([sys.executable, "-m", "edgepose", "inspect", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == ""
    assert "obj_par.txt:3: expected numbers" in r.stderr


def test_dino_inspect(dino_dir, capsys):
    assert main([str(dino_dir)]) == 0
    out = capsys.readouterr().out
    assert "train 290, test 73" in out and "640x480 (363 frames)" in out and "next: edgepose-train" in out
