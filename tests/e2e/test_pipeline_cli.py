"""The whole product through its public commands, as a user runs them.

synth -> inspect -> train (both stages) -> export fp32,fp16,int8 -> verify -> run (with a
corrupt frame) -> bench with a gate. Each step is a real subprocess of the CLI; sizes are
tiny so the chain fits the test budget. Accuracy is not the point here (a few steps of
training); the contracts between the stages are.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def cli(*args, ok=(0,), timeout=600):
    proc = subprocess.run([sys.executable, "-m", "edgepose", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode in ok, f"{args[0]} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    scene, run, bundle = root / "scene", root / "run", root / "bundle"
    cli("synth", scene, "--frames", 48, "--size", "64x48", "--seed", 3)
    # --memory-size 0: the guided-INT8 assertions below need the regressor's continuous output (a
    # memory answering with one stored view has zero drift until the nearest view flips);
    # test_the_default_pose_memory_travels_to_the_bundle_and_the_runtime covers the memory.
    # The frames' own 64x48: at 32x24 the backbone's last feature map is 1x1 and one epoch can
    # leave every frame with the same features (a constant pose: no drift to bound, no neighbours)
    cli("train", scene, "--out", run, "--input-size", "64x48", "--stage1-epochs", 1, "--stage2-epochs", 1,
        "--batch-size", 8, "--no-progress", "--seed", 0, "--memory-size", 0)
    exp = cli("export", run, "--out", bundle, "--precision", "fp32,fp16,int8", "--calib-frames", 16,
              "--val-frames", 16, "--int8-max-drift-m", 1e-6)  # 16: the whole test split, as training's
    return {"root": root, "scene": scene, "run": run, "bundle": bundle, "export_out": exp.stdout}


def test_synth_is_read_as_7scenes_by_inspect(chain):
    out = json.loads(cli("inspect", chain["scene"], "--json").stdout)
    assert out["format"] == "7scenes"
    assert out["splits"]["train"] == 32 and out["splits"]["test"] == 16
    f = out["frames"][0]
    assert len(f["rotation_wxyz"]) == 4 and f["rotation_wxyz"][0] >= 0
    # 7-Scenes carries depth maps, not 3-D points: no frame may claim points
    assert {fr["n_points"] for fr in out["frames"]} == {0}


def test_train_writes_the_run_contract(chain):
    run = chain["run"]
    metrics = json.loads((run / "metrics.json").read_text())
    for prefix in ("test.", "stage1.", "baseline.mean_pose."):
        for key in ("median_position_m", "median_rotation_deg", "mean_position_m", "mean_rotation_deg", "n_frames"):
            assert prefix + key in metrics, prefix + key
    assert metrics["test.n_frames"] == 16
    stages = {line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]}
    assert stages == {"stage1", "stage2"}
    for name in ("stage1_last", "stage1_best", "stage2_last", "stage2_best"):
        assert (run / "checkpoints" / f"{name}.pt").is_file()


def test_export_writes_a_verified_bundle_with_drift_and_guided_int8(chain):
    from edgepose.bundle import find_file, load_manifest

    m = load_manifest(chain["bundle"])
    assert {find_file(m, "onnx", p) for p in ("fp32", "fp16", "int8")} == {
        "model.onnx", "model.fp16.onnx", "model.int8.onnx"}
    assert m["input"]["dtype"] == "uint8" and m["input"]["layout"] == "NHWC"
    # sigma's calibration travels with the bundle: the scale training fitted and put in the graph
    sc = m["sigma_calibration"]
    assert sc["scale"] == [m["training"]["metrics"]["calibration.scale_position"],
                           m["training"]["metrics"]["calibration.scale_rotation"]] and sc["frames"] > 0
    assert m["calibration"]["frames"] == 16 and len(m["calibration"]["frames_sha256"]) == 64
    for row in ("fp16", "int8", "int8-ort"):
        assert "drift_p50_m" in m["validation"][row], row
    # sigma's coverage per precision, on the same 16 test frames training reported on: FP32 through
    # ONNX Runtime counts what PyTorch counted (a frame on the boundary may flip: one in 16)
    trained = m["training"]["metrics"]
    for k in ("within_1sigma_position", "within_2sigma_position", "within_1sigma_rotation", "within_2sigma_rotation"):
        assert abs(m["validation"]["fp32"][k] - trained["test." + k]) <= 1 / 16 + 1e-9, k
        assert 0.0 <= m["validation"]["int8"][k] <= 1.0
    assert "1/2σ pos %" in chain["export_out"] and "nominal 53 / 98 %" in chain["export_out"]
    # a 1e-6 m bound: naive INT8 moves the output by more, so the guided search moves the most
    # sensitive units to float step by step until the drift on the guide frames is within it
    g = m["export"]["onnx"]["int8"]
    assert g["bound"]["max_drift_m"] == 1e-6 and g["naive"]["drift_p50_m"] > 1e-6
    assert g["steps"][0]["float_units"] == [] and len(g["steps"]) > 1 and g["float_units"]
    assert g["met"] is True and g["guided"]["drift_p50_m"] <= 1e-6
    assert g["float_units"] == g["steps"][-1]["float_units"]  # it stopped at the first step that met it
    assert "edgepose-export" in chain["export_out"] and "--engine yes" in chain["export_out"]
    # the next command names the dataset the model was trained on
    assert f"edgepose-bench {chain['bundle']} --data {chain['scene'].resolve()}" in chain["export_out"]
    cli("export", "--verify", chain["bundle"])


def test_the_default_pose_memory_travels_to_the_bundle_and_the_runtime(chain, tmp_path):
    """Default training keeps a pose memory; export puts it in the graph, the manifest says so,
    and edgepose-run's ONNX Runtime poses equal the PyTorch model's on the same frames."""
    import numpy as np

    from edgepose.bundle import load_manifest
    from edgepose.geometry import rotation_error_deg
    from edgepose.preprocess import load_and_preprocess

    torch = pytest.importorskip("torch")
    from edgepose.train.model import load_model

    run, bundle = tmp_path / "run", tmp_path / "bundle"
    cli("train", chain["scene"], "--out", run, "--input-size", "64x48", "--stage1-epochs", 1, "--stage2-epochs", 0,
        "--batch-size", 8, "--no-progress", "--seed", 0)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["memory.size"] == metrics["run.frames.train"] + metrics["run.frames.val"]
    assert "regressor.median_position_m" in metrics
    cli("export", run, "--out", bundle, "--precision", "fp32", "--val-frames", 8)  # the precision run reads
    m = load_manifest(bundle)
    assert m["memory"]["size"] == metrics["memory.size"] and m["memory"]["blend"] == metrics["memory.blend"]
    pngs = sorted((chain["scene"] / "seq-05").glob("*.color.png"))[:5]
    out = tmp_path / "poses.jsonl"
    cli("run", bundle, "--source", pngs[0].parent, "--backend", "onnxruntime", "--precision", "fp32",
        "--policy", "every", "--out", out, "--quiet", "--max-frames", 5)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    model = load_model(run / "final.pt")
    x = torch.from_numpy(np.stack([load_and_preprocess(p, (64, 48)) for p in pngs]))
    want_p, want_q, want_s = model.predict_world(x)
    assert [Path(r["source"]).name for r in got] == [p.name for p in pngs]
    np.testing.assert_allclose([r["position_m"] for r in got], want_p.numpy(), atol=1e-4)
    got_q = np.array([r["rotation_wxyz"] for r in got], np.float64)
    assert rotation_error_deg(got_q, want_q.double().numpy()).max() < 1e-2 and (got_q[:, 0] >= 0).all()
    np.testing.assert_allclose([r["sigma_position_m"] for r in got], want_s[:, 0].numpy(), rtol=1e-3)


def test_verify_fails_on_a_changed_byte(chain, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(chain["bundle"], copy)
    data = bytearray((copy / "model.fp16.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.fp16.onnx").write_bytes(bytes(data))
    proc = cli("export", "--verify", copy, ok=(1, 2))
    assert "model.fp16.onnx" in proc.stdout + proc.stderr


def test_run_streams_one_line_per_frame_and_one_failed_for_a_corrupt_png(chain, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    pngs = sorted((chain["scene"] / "seq-05").glob("*.color.png"))[:6]
    for i, p in enumerate(pngs):
        shutil.copy(p, frames / f"{i:03d}.png")
    (frames / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n corrupt")
    out = tmp_path / "poses.jsonl"
    cli("run", chain["bundle"], "--source", frames, "--backend", "onnxruntime", "--precision", "int8",
        "--policy", "every", "--out", out, "--quiet")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6
    failed = [r for r in lines if not r["ok"]]
    assert len(failed) == 1 and failed[0]["index"] == 3 and "003.png" in failed[0]["source"]
    assert failed[0]["error"]
    good = [r for r in lines if r["ok"]][0]
    assert len(good["position_m"]) == 3 and len(good["rotation_wxyz"]) == 4
    assert good["sigma_position_m"] > 0 and good["sigma_rotation_deg"] > 0


def test_run_on_a_synth_sequence_reads_the_colour_frames_only(chain, tmp_path):
    """Issue 14: `--source synth/seq-05` read the 16-bit depth maps beside the frames as frames."""
    seq = chain["scene"] / "seq-05"
    colour = sorted(p.name for p in seq.glob("*.color.png"))
    assert colour and len(list(seq.glob("*.depth.png"))) == len(colour)
    out = tmp_path / "poses.jsonl"
    cli("run", chain["bundle"], "--source", seq, "--backend", "onnxruntime", "--precision", "fp32",
        "--policy", "every", "--out", out, "--quiet")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["source"]).name for r in lines) == colour and all(r["ok"] for r in lines)


def test_bench_writes_reports_and_the_gate_works_both_ways(chain, tmp_path):
    # no warm-up: the assertions read statuses, files and exit codes, not latencies
    common = ["bench", chain["bundle"], "--data", chain["scene"], "--backends", "onnxruntime,qdq-reference",
              "--max-frames", 6, "--warmup-s", 0, "--iters", 5, "--quiet", "--no-power"]
    cli(*common, "--out", tmp_path / "r1", "--gate", "max-drift-m=1000,max-drift-deg=180")
    report = json.loads((tmp_path / "r1" / "report.json").read_text())
    rows = {r["label"]: r for r in report["rows"]}
    assert all(rows[k]["status"] == "ok" for k in
               ("onnxruntime/fp32", "onnxruntime/fp16", "onnxruntime/int8", "qdq-reference/int8"))
    for name in ("report.json", "report.csv", "report.md", "accuracy_vs_latency.png"):
        assert (tmp_path / "r1" / name).is_file(), name
    # the broken gate's run needs only its exit code: no plots (r1 proved them)
    cli(*common, "--out", tmp_path / "r2", "--gate", "max-drift-m=0,max-drift-deg=0", "--no-plots", ok=(3,))
