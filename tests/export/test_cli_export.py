"""``edgepose-export`` end to end, as subprocesses, on a tiny PoseNet and the real dino frames.

One bundle is exported per session (fp32, fp16, int8 on a few frames) and shared; each test
then checks one promise of the CLI: exit codes, files and manifest, --verify passing and
failing after a flipped byte, --engine yes without TensorRT, unknown precision, bad
checkpoints leaving nothing behind, and the engine-only path with torch unimportable.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgepose.bundle import MANIFEST  # noqa: E402

SIZE = (32, 24)


def run_cli(*args, env_extra=None, timeout=300):
    env = dict(os.environ)
    env["EDGEPOSE_CACHE"] = env.get("EDGEPOSE_CACHE", "/tmp/edgepose-test-cache")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "edgepose", "export", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_main(*args, capsys):
    """The same CLI in this process (torch already imported): for the fast error paths."""
    from edgepose.export.cli import main

    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def write_run(folder: Path, data_root, seed: int = 0, backbone_hidden: int = 32) -> Path:
    from edgepose.train.model import CHECKPOINT_FORMAT, PoseNet

    torch.manual_seed(seed)
    m = PoseNet("efficientnet_lite0", "none", input_size=SIZE, hidden=backbone_hidden,
                position_mean=(0.0, 0.0, 0.6), position_scale=0.6)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "config": m.config, "model": m.state_dict(),
                "data": {"root": str(data_root), "format": "middlebury", "split_policy": None},
                "metrics": {"test.median_position_m": 0.5}}, folder / "final.pt")
    return folder


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory, dino_dir):
    return write_run(tmp_path_factory.mktemp("cli") / "run", dino_dir)


@pytest.fixture(scope="session")
def cli_bundle(cli_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_bundle") / "bundle"
    r = run_cli(cli_run, "--out", out, "--precision", "fp32,fp16,int8", "--val-frames", "6",
                "--calib-frames", "8", "--calib-method", "minmax")
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r


@pytest.fixture(scope="session")
def cli_verified(cli_bundle):
    """``edgepose-export --verify`` of the shared bundle, run once; two tests read its output."""
    return run_cli("--verify", cli_bundle[0])


def test_export_writes_a_complete_bundle(cli_bundle):
    out, r = cli_bundle
    m = json.loads((out / MANIFEST).read_text())
    roles = {rel: (e["role"], e["precision"]) for rel, e in m["files"].items()}
    assert roles["model.onnx"] == ("onnx", "fp32")
    assert roles["model.fp16.onnx"] == ("onnx", "fp16")
    assert roles["model.int8.onnx"] == ("onnx", "int8")
    assert roles["model.pt"][0] == "checkpoint"
    assert roles["parity.npz"][0] == "parity"
    for rel, e in m["files"].items():  # the manifest's hashes are the files' hashes (hashlib, not the writer's helper)
        data = (out / rel).read_bytes()
        assert e["sha256"] == hashlib.sha256(data).hexdigest() and e["size"] == len(data)
    assert m["input"] == {"name": "image", "dtype": "uint8", "layout": "NHWC", "shape": [1, 24, 32, 3],
                          "batch": {"min": 1, "opt": 1, "max": 1}}
    assert m["outputs"]["position"]["unit"] == "m" and m["outputs"]["sigma"]["unit"] == ["m", "rad"]
    assert m["normalization"]["position_scale"] == pytest.approx(0.6)
    # calibration on the training split only, hashed; drift on the test split, labelled
    assert m["calibration"]["frames"] == 8 and len(m["calibration"]["frames_sha256"]) == 64
    assert "train" in m["calibration"]["source"]
    assert set(m["validation"]) == {"fp32", "fp16", "int8", "int8-ort"}
    assert "ONNX Runtime" in m["validation"]["int8-ort"]["label"]
    for row in m["validation"].values():
        for k in ("median_position_m", "median_rotation_deg", "drift_p50_m", "drift_p95_m",
                  "drift_p50_deg", "drift_p95_deg"):
            assert np.isfinite(row[k])
    assert m["validation"]["fp32"]["drift_p95_m"] == 0.0
    assert m["validation_frames"]["n"] == 6 and m["validation_frames"]["split"] == "test"
    # no temporary folders left beside the bundle
    assert [p.name for p in out.parent.iterdir()] == ["bundle"]
    # the run ends with the table, the Jetson command and the next commands
    assert "drift p50 m" in r.stdout and "--engine yes" in r.stdout and "edgepose-bench" in r.stdout


def test_verify_passes_then_fails_after_a_flipped_byte(cli_bundle, cli_verified, tmp_path, capsys):
    out, _ = cli_bundle
    r = cli_verified
    assert r.returncode == 0, r.stdout + r.stderr
    assert "parity int8" in r.stdout and "parity torch" in r.stdout and "verified" in r.stdout
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    target = copy / "model.int8.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    rc, _, err = run_main("--verify", copy, capsys=capsys)
    assert rc == 1
    assert "model.int8.onnx" in err and "sha256" in err


def test_verify_catches_changed_graph_outputs_with_a_consistent_manifest(cli_bundle, tmp_path):
    """A graph replaced together with its manifest hash still fails: parity re-runs it."""
    from edgepose.bundle import file_entry
    from edgepose.errors import BundleError
    from edgepose.export.onnx_export import export_onnx
    from edgepose.export.verify import verify_bundle
    from edgepose.train.model import load_model

    out, _ = cli_bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    other = load_model(write_run(tmp_path / "other", "unused", seed=1) / "final.pt")
    export_onnx(other, copy / "model.onnx", simplify=False)
    m = json.loads((copy / MANIFEST).read_text())
    m["files"]["model.onnx"] = file_entry(copy, "model.onnx", "onnx", "fp32")
    (copy / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="model.onnx: outputs moved"):
        verify_bundle(copy, log=lambda s: None)


def test_every_graph_of_a_fresh_bundle_passes_the_tensorrt_lint_and_verify_runs_it(cli_bundle, cli_verified):
    from edgepose.export.graph_lint import lint_bundle

    out, _ = cli_bundle
    assert lint_bundle(out) == {"model.onnx": [], "model.fp16.onnx": [], "model.int8.onnx": []}
    onnx_info = json.loads((out / MANIFEST).read_text())["export"]["onnx"]
    for prec in ("fp32", "fp16", "int8"):  # the export ran the lint after each pass
        assert onnx_info[prec]["checks"]["tensorrt_graph_lint"]["violations"] == 0
    r = cli_verified
    assert r.returncode == 0 and "lint model.fp16.onnx" in r.stdout, r.stdout + r.stderr


def test_verify_fails_a_graph_that_transposes_its_uint8_input_before_the_cast(cli_bundle, tmp_path, capsys):
    """The graph order every bundle had before the Cast-first fix (TensorRT's parser refuses it)."""
    import onnx

    from edgepose.bundle import file_entry

    out, _ = cli_bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    model = onnx.load(str(copy / "model.onnx"))
    cast = next(n for n in model.graph.node if list(n.input) == ["image"])
    perm = next(n for n in model.graph.node if n.op_type == "Transpose" and n.input[0] == cast.output[0])
    # image -> Transpose -> Cast -> ... instead of image -> Cast -> Transpose -> ...
    cast_out, perm_out = cast.output[0], perm.output[0]
    perm.input[0], perm.output[0] = "image", "image_nchw_u8"
    cast.input[0], cast.output[0] = "image_nchw_u8", perm_out
    del model.graph.value_info[:]
    nodes = [perm, cast] + [n for n in model.graph.node if n is not perm and n is not cast]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    assert cast_out not in {i for n in model.graph.node for i in n.input}
    onnx.save(model, str(copy / "model.onnx"))
    m = json.loads((copy / MANIFEST).read_text())
    m["files"]["model.onnx"] = file_entry(copy, "model.onnx", "onnx", "fp32")
    (copy / MANIFEST).write_text(json.dumps(m))
    rc, _, err = run_main("--verify", copy, capsys=capsys)
    assert rc == 1
    assert f"node {perm.name!r} (Transpose)" in err and "uint8-input-feeds-cast" in err, err


def test_engine_yes_without_tensorrt_fails_cleanly(cli_run, tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    out = tmp_path / "b"
    r = run_cli(cli_run, "--out", out, "--engine", "yes")
    assert r.returncode == 2
    assert "tensorrt" in r.stderr and "--engine auto" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_unknown_precision_is_a_user_error(cli_run, tmp_path, capsys):
    rc, _, err = run_main(cli_run, "--out", tmp_path / "b", "--precision", "fp32,bf16", capsys=capsys)
    assert rc == 2
    assert "bf16" in err and "fp32, fp16, int8" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("kind", ["truncated", "other-model", "missing"])
def test_bad_checkpoint_leaves_nothing_behind(kind, cli_run, tmp_path, capsys):
    ck = tmp_path / "bad.pt"
    if kind == "truncated":
        ck.write_bytes((cli_run / "final.pt").read_bytes()[:5000])
    elif kind == "other-model":
        ckpt = torch.load(cli_run / "final.pt", weights_only=True)
        ckpt["config"] = dict(ckpt["config"], hidden=48)  # weights no longer fit the config
        torch.save(ckpt, ck)
    out = tmp_path / "b"
    rc, outp, err = run_main(ck, "--out", out, "--precision", "fp32", "--engine", "no", capsys=capsys)
    assert rc == 2, outp + err
    assert err.startswith("edgepose-export: error:") and "  -> " in err  # our error, with what to do
    assert {"truncated": "cannot read", "other-model": "do not fit", "missing": "not found"}[kind] in err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.pt"] if kind != "missing" else [])


def test_existing_bundle_engine_path_runs_without_torch(cli_bundle, tmp_path):
    """The Jetson path: bundle in, no torch importable; without TensorRT it prints the command."""
    out, _ = cli_bundle
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgepose.export.cli import main\n"
            f"rc = main([{str(out)!r}, '--precision', 'fp16,int8'])\n"
            "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
            f"rc2 = main(['--verify', {str(out)!r}])\n"
            "sys.exit(rc * 10 + rc2)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    try:
        import tensorrt  # noqa: F401
        have_trt = True
    except ImportError:
        have_trt = False
    if have_trt:
        pytest.skip("TensorRT is installed: this test covers its absence")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"edgepose-export {out} --precision fp16,int8 --engine yes" in r.stdout
    assert "trtexec --onnx=" in r.stdout and "--int8" in r.stdout
    assert "torch is not installed" in r.stdout  # verify skipped only the PyTorch comparison


def test_export_without_dataset_writes_fp32_and_says_what_was_not_measured(tmp_path, capsys):
    run = write_run(tmp_path / "run", tmp_path / "no-such-data")
    out = tmp_path / "b"
    rc, outp, err = run_main(run, "--out", out, "--precision", "fp32", "--engine", "no", "--no-simplify",
                             capsys=capsys)
    assert rc == 0, outp + err
    assert "not measured" in outp
    m = json.loads((out / MANIFEST).read_text())
    assert m["validation"] == {} and m["calibration"] is None
    assert m["parity"]["source"].startswith("synthetic")
    rc, _, err = run_main(run, "--out", tmp_path / "b8", "--precision", "int8", "--engine", "no", capsys=capsys)
    assert rc == 2 and "--calib DATA" in err
    assert not (tmp_path / "b8").exists()


def test_drift_bounds_fail_the_rows_that_exceed_them(cli_bundle):
    """``--max-drift-m``: rows whose median drift vs FP32 exceeds the bound are reported."""
    from edgepose.datasets import load_dataset
    from edgepose.export.frames import ExportFrames
    from edgepose.export.validation import measure

    out, _ = cli_bundle
    m = json.loads((out / MANIFEST).read_text())
    images = np.load(out / "parity.npz")["images"]
    test = load_dataset(m["training"]["data"]["root"]).split("test")[: len(images)]
    frames = ExportFrames(val=images, val_position=np.stack([r.position for r in test]),
                          val_rotation=np.stack([r.rotation for r in test]))
    files = {p: e_rel for e_rel, e in m["files"].items() if e["role"] == "onnx" for p in [e["precision"]]}
    rows, failures = measure(out, files, frames)
    assert failures == [] and set(rows) == {"fp32", "fp16", "int8", "int8-ort"}
    worst = max((k for k in rows if k != "fp32"), key=lambda k: rows[k]["drift_p50_m"])
    d = rows[worst]["drift_p50_m"]
    if d == 0:
        pytest.skip("every precision matches FP32 exactly on these frames")
    _, failures = measure(out, files, frames, max_drift_m=d / 2)
    assert any(f.startswith(f"{worst}:") for f in failures)
    assert not any(f.startswith("fp32:") for f in failures)
