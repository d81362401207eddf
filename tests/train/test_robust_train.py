"""Bad input and faults at the trainer's boundary (issue 14: items 3 and 6).

Absurd numbers are refused by the argument parser; training whose weights go non-finite stops
with an error before anything of that epoch is saved (the last good checkpoint stays);
``metrics.json`` never holds NaN tokens; damaged checkpoints are clear errors; ``--out`` naming
a file is refused; a file-size limit reached while saving is a message, not a traceback.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgepose.errors import EdgePoseError

from tiny_scene import write_csv_scene

PY = sys.executable


@pytest.mark.parametrize("args, option", [
    (["--lr", "nan"], "--lr"),
    (["--lr", "-1e-3"], "--lr"),
    (["--stage2-lr", "inf"], "--stage2-lr"),
    (["--val-every", "-1"], "--val-every"),
    (["--threads", "-4"], "--threads"),
    (["--dropout", "1.5"], "--dropout"),
    (["--dropout", "nan"], "--dropout"),
    (["--batch-size", "0"], "--batch-size"),
    (["--hidden", "-5"], "--hidden"),
    (["--input-size", "100000x100000"], "--input-size"),  # issue 22: 30 GB per frame
    (["--input-size", "16384x96"], "--input-size"),
])
def test_parser_refuses_absurd_numbers(args, option, capsys):
    from edgepose.train.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["data", "--out", "run", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "expected" in err


def test_out_naming_a_file_is_refused(tmp_path, capsys):
    from edgepose.train.cli import main

    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert main([str(tmp_path), "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err
    assert f.read_text() == "mine"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return write_csv_scene(tmp_path_factory.mktemp("scene") / "data")


def _config(data, out, **kw):
    from edgepose.train.recipe import TrainConfig

    base = dict(data=str(data), out=str(out), input_size=(64, 48), backbone="mobilenet_v3_small",
                pretrained="none", hidden=16, stage1_epochs=1, stage2_epochs=1, batch_size=16, val_every=8,
                max_points=16, threads=1, warmup_steps=0, progress=False, device="cpu", workers=0)
    base.update(kw)
    return TrainConfig(**base)


def test_weights_going_nonfinite_stop_training_and_keep_the_last_good_checkpoint(scene, tmp_path):
    """Stage 2 at lr 1e30: one Adam step (the epoch's only batch: 14 frames, batch 16) makes every
    weight ~1e30, so the forward pass overflows. Nothing of that epoch may be saved."""
    from edgepose.train.checkpoint import checkpoint_path
    from edgepose.train.model import read_checkpoint
    from edgepose.train.trainer import fit

    out = tmp_path / "run"
    with pytest.raises(EdgePoseError) as exc:
        fit(_config(scene, out, stage2_lr=1e30))
    msg = str(exc.value)
    assert "non-finite" in msg and "nothing of this epoch was saved" in msg and "last good checkpoint" in msg
    assert not checkpoint_path(out, "stage2", "last").exists()
    assert not (out / "final.pt").exists()
    good = read_checkpoint(checkpoint_path(out, "stage1", "last"))
    assert all(bool(torch.isfinite(v).all()) for v in good["model"].values() if v.is_floating_point())
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and "nan" not in rows[1].lower()  # header + stage 1's one epoch


def test_metrics_json_holds_no_nan_tokens(tmp_path):
    from edgepose.train.metrics_log import write_metrics_json

    path = write_metrics_json(tmp_path / "metrics.json", {"test.median_position_m": float("nan"), "n": 3})
    obj = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    assert obj["test.median_position_m"] is None and obj["n"] == 3
    assert "NaN" in obj["null_reasons"]["test.median_position_m"]


# --------------------------------------------------------------------------- damaged checkpoints
def _checkpoint(tmp_path, edit):
    from edgepose.train.checkpoint import save_checkpoint
    from edgepose.train.model import PoseNet

    model = PoseNet("mobilenet_v3_small", pretrained="none", input_size=(32, 24), hidden=16,
                    position_mean=[0.0, 0.0, 0.0], position_scale=1.0)
    state = {"config": dict(model.config), "model": model.state_dict()}
    edit(state)
    return save_checkpoint(tmp_path / "model.pt", state)


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.pop("config"), "has no config"),
    (lambda s: s["config"].update(input_size=[0, 0]), "input_size [0, 0]"),
    (lambda s: s["config"].update(hidden=-5), "hidden -5"),
    (lambda s: s["config"].update(position_scale=float("nan")), "position_scale nan"),
    (lambda s: s.update(config="big"), "config is str"),
])
def test_damaged_checkpoint_is_a_clear_error(tmp_path, edit, words):
    from edgepose.train.model import load_model

    path = _checkpoint(tmp_path, edit)
    with pytest.raises(EdgePoseError) as exc:
        load_model(path)
    assert words in str(exc.value) and str(path) in str(exc.value)


def test_damaged_checkpoint_through_export_is_a_message(tmp_path):
    path = _checkpoint(tmp_path, lambda s: s["config"].update(hidden=-5))
    exe = Path(PY).with_name("edgepose-export")
    proc = subprocess.run([str(exe), str(path), "--out", str(tmp_path / "b"), "--precision", "fp32"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "hidden -5" in proc.stderr and "Traceback" not in proc.stderr


def test_file_size_limit_while_saving_is_a_message(scene, tmp_path):
    """``ulimit -f`` 64 kB: the first checkpoint (MBs) cannot be written; the kernel says EFBIG."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    out = tmp_path / "run"
    cmd = [PY, "-m", "edgepose.train", str(scene), "--out", str(out), "--input-size", "64x48",
           "--backbone", "mobilenet_v3_small", "--pretrained", "none", "--hidden", "16", "--stage1-epochs", "1",
           "--stage2-epochs", "0", "--batch-size", "16", "--threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "file size limit" in proc.stderr and "Traceback" not in proc.stderr
    # atomic writes: no half-written checkpoint is left under its real name
    assert not list(out.rglob("*.pt"))


# --------------------------------------------------------------------------- issue 22, family 1
@pytest.mark.parametrize("resume", [True, False])
def test_a_folder_another_tool_wrote_is_not_a_run_to_overwrite(scene, tmp_path, capsys, resume):
    from edgepose.train.cli import main

    out = tmp_path / "theirs"
    out.mkdir()
    (out / "final.pt").write_bytes(b"another tool's model")
    (out / "metrics.json").write_text('{"theirs": 1}')
    argv = [str(scene), "--out", str(out), "--stage1-epochs", "1", "--stage2-epochs", "0", "--input-size", "64x48",
            "--backbone", "mobilenet_v3_small", "--pretrained", "none"] + (["--resume"] if resume else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds files no edgepose-train run wrote" in err and "starting a new run" not in err, err
    assert (out / "final.pt").read_bytes() == b"another tool's model"
    assert (out / "metrics.json").read_text() == '{"theirs": 1}' and sorted(p.name for p in out.iterdir()) == [
        "final.pt", "metrics.json"]


def test_a_run_folder_inside_its_dataset_is_refused(scene, capsys):
    from edgepose.train.cli import main

    before = sorted(p.name for p in scene.rglob("*"))
    assert main([str(scene), "--out", str(scene / "run")]) == 2
    assert "overwrite what this command reads" in capsys.readouterr().err
    assert sorted(p.name for p in scene.rglob("*")) == before


def test_a_run_claims_its_folder_and_resumes_from_it(scene, tmp_path):
    from edgepose.outputs import read_owner
    from edgepose.train.checkpoint import check_run_folder, claim_run_folder

    out = tmp_path / "run"
    claim_run_folder(out)
    (out / "metrics.csv").write_text("epoch\n")
    assert read_owner(out)["tool"] == "edgepose-train"
    check_run_folder(out, None)  # ours: no error
