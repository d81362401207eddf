"""edgepose-bench end to end on a REAL bundle (ONNX fp32 / fp16 / int8 Q/DQ graphs honouring the
model contract, run by ONNX Runtime) and a real 7-Scenes-layout dataset of PNG frames."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from bench_support import write_sevenscenes  # noqa: E402

from edgepose.runtime.bench.cli import main  # noqa: E402

FAST = ["--warmup-s", "0.05", "--iters", "20", "--quiet"]


@pytest.fixture(scope="session")
def bench_inputs(tmp_path_factory):
    from synthetic_bundles import make_synthetic_bundle

    root = tmp_path_factory.mktemp("bench")
    make_synthetic_bundle(root / "bundle", size=(32, 24))
    return root / "bundle", write_sevenscenes(root / "scene")


@pytest.fixture(scope="session")
def cli_run(bench_inputs, tmp_path_factory):
    """One subprocess run with the default rows, torch made unimportable, plots on."""
    bundle, scene = bench_inputs
    out = tmp_path_factory.mktemp("report")
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgepose.runtime.bench.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
            "sys.exit(rc)\n")
    p = subprocess.run([sys.executable, "-c", code, str(bundle), "--data", str(scene), *FAST,
                        "--gate", "max-drift-m=10,max-drift-deg=90", "--out", str(out)],
                       capture_output=True, text=True, timeout=240, env={**os.environ, "MPLBACKEND": "Agg"})
    return p, out


def test_cli_writes_all_reports_with_three_ok_precisions(cli_run):
    p, out = cli_run
    assert p.returncode == 0, p.stdout + p.stderr
    for name in ("report.json", "report.csv", "report.md", "accuracy_vs_latency.png", "error_cdf.png",
                 "trajectory.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "trajectory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rep = json.loads((out / "report.json").read_text())
    assert rep["schema"] == "edgepose.bench/1"
    rows = {r["label"]: r for r in rep["rows"]}
    ok = {lab for lab, r in rows.items() if r["status"] == "ok"}
    assert {"onnxruntime/fp32", "onnxruntime/fp16", "onnxruntime/int8", "qdq-reference/int8"} <= ok
    assert not any(r["backend"] == "torch" for r in rep["rows"])  # torch absent: never a row
    assert rep["data"]["n_frames"] == 10 and rep["data"]["format"] == "7scenes"
    r8 = rows["onnxruntime/int8"]
    for key in ("median_position_m", "median_rotation_deg", "drift_p50_m", "drift_p95_deg",
                "sigma_spearman_position", "within_1sigma_position", "infer_p50_ms", "infer_p99_ms",
                "e2e_p50_ms", "e2e_p99_ms", "throughput_fps", "peak_rss_mb", "model_size_mb"):
        assert r8[key] is not None, key
    assert r8["e2e_p50_ms"] >= r8["infer_p50_ms"] > 0  # end to end contains inference
    assert r8["infer_p50_ms"] <= r8["infer_p90_ms"] <= r8["infer_p99_ms"]
    assert rows["onnxruntime/fp32"]["drift_p95_m"] == 0.0  # the reference against itself
    for lab in ("onnxruntime/fp16", "onnxruntime/int8", "qdq-reference/int8"):
        assert rows[lab]["drift_reference"] == "onnxruntime/fp32"
        assert rows[lab]["drift_p95_m"] > 0.0  # lower precision moves the output
    assert rows["onnxruntime/int8"]["note"] != rows["qdq-reference/int8"]["note"]
    assert len(rep["frames"]["predictions"]["onnxruntime/int8"]["position"]) == 10
    assert rep["system"]["cpu"]["logical_cores"] >= 1 and rep["system"]["software"]["onnxruntime"]
    assert rep["gate"]["passed"] is True
    with open(out / "report.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["label"] for r in csv_rows] == [r["label"] for r in rep["rows"]]
    assert float(csv_rows[0]["e2e_p50_ms"]) == pytest.approx(rep["rows"][0]["e2e_p50_ms"])
    md = (out / "report.md").read_text()
    assert "| onnxruntime/int8 | ok |" in md and "qdq-reference/int8" in md
    assert "| onnxruntime/int8 | ok |" in p.stdout and "next: edgepose-run" in p.stdout


def test_gate_fails_with_exit_3_and_names_the_rows(bench_inputs, tmp_path, capsys):
    bundle, scene = bench_inputs
    rc = main([str(bundle), "--data", str(scene), *FAST, "--no-plots", "--backends", "onnxruntime",
               "--precisions", "fp32,int8", "--gate", "max-drift-m=0,max-drift-deg=0", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 3
    assert "GATE FAILED" in out and "onnxruntime/int8: drift_p95_m" in out
    assert "onnxruntime/fp32: drift" not in out  # fp32 has zero drift: within any bound
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["gate"]["passed"] is False and rep["gate"]["violations"]
    assert not (tmp_path / "trajectory.png").exists()  # --no-plots


def test_failed_row_does_not_stop_the_run(bench_inputs, tmp_path, capsys):
    bundle, scene = bench_inputs
    # tensorrt is not installed here: that row fails with the reason, the others still run
    args = [str(bundle), "--data", str(scene), *FAST, "--no-plots", "--backends", "tensorrt,onnxruntime",
            "--precisions", "fp32", "--out", str(tmp_path)]
    assert main(args + ["--gate", "max-drift-m=1"]) == 3  # a failed row cannot prove its drift
    assert main(args + ["--gate", "max-drift-m=1,allow-failed=1"]) == 0
    rows = {r["label"]: r for r in json.loads((tmp_path / "report.json").read_text())["rows"]}
    assert rows["tensorrt/fp32"]["status"] == "failed" and rows["tensorrt/fp32"]["error"]
    assert rows["onnxruntime/fp32"]["status"] == "ok"
    assert "| tensorrt/fp32 | failed: " in capsys.readouterr().out


def test_timing_stops_at_max_time_and_says_so(bench_inputs, tmp_path):
    bundle, scene = bench_inputs
    assert main([str(bundle), "--data", str(scene), "--warmup-s", "0", "--iters", "100000", "--max-time-s", "0",
                 "--quiet", "--no-plots", "--backends", "onnxruntime", "--precisions", "fp32",
                 "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "report.json").read_text())["rows"][0]
    assert row["iters"] == 10 and row["timing_ms"]["e2e"]["n"] == 10
    assert "stopped after 10 of 100000" in row["note"]


def test_user_errors_exit_2_with_a_message(bench_inputs, tmp_path, capsys):
    bundle, scene = bench_inputs
    assert main([str(tmp_path / "nope"), "--data", str(scene), "--out", str(tmp_path / "r")]) == 2
    assert "edgepose-export" in capsys.readouterr().err
    assert main([str(bundle), "--data", str(scene), "--gate", "max-drift=1", "--out", str(tmp_path / "r")]) == 2
    assert "max-drift-m" in capsys.readouterr().err
    assert main([str(bundle), "--data", str(scene), "--backends", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert main([str(bundle), "--data", str(scene), "--batch", "64", "--out", str(tmp_path / "r")]) == 2
    assert "batch range 1..8" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for word in ("qdq-reference", "--gate", "exit codes", "report.json", "tegrastats"):
        assert word in text


def test_a_power_sampler_that_cannot_start_does_not_fail_the_row(bench_inputs, tmp_path, monkeypatch):
    from edgepose.runtime.bench import runner

    def broken(interval_ms):
        raise PermissionError("tegrastats: permission denied")

    monkeypatch.setattr(runner, "open_power_sampler", broken)
    bundle, scene = bench_inputs
    assert main([str(bundle), "--data", str(scene), *FAST, "--no-plots", "--backends", "onnxruntime",
                 "--precisions", "fp32", "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "report.json").read_text())["rows"][0]
    assert row["status"] == "ok" and row["mean_power_w"] is None
    assert "permission denied" in row["power_error"]


def test_int8_only_with_a_drift_gate_runs_the_fp32_reference_untimed(bench_inputs, tmp_path, capsys):
    # asking only for int8 rows used to fail any drift gate: "drift unknown, no FP32 reference row ran"
    bundle, scene = bench_inputs
    rc = main([str(bundle), "--data", str(scene), *FAST, "--no-plots", "--backends", "onnxruntime,qdq-reference",
               "--precisions", "int8", "--gate", "max-drift-m=10,max-drift-deg=90", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "onnxruntime/fp32: run implicitly as the FP32 drift reference of onnxruntime/int8, qdq-reference/int8" \
        in out
    assert "| onnxruntime/fp32 | ok (FP32 drift reference only) |" in out
    rep = json.loads((tmp_path / "report.json").read_text())
    rows = {r["label"]: r for r in rep["rows"]}
    ref = rows["onnxruntime/fp32"]
    assert ref["reference_only"] is True and ref.get("e2e_p50_ms") is None and "timing_ms" not in ref
    assert rep["gate"]["passed"] is True
    preds = rep["frames"]["predictions"]
    for label in ("onnxruntime/int8", "qdq-reference/int8"):
        assert rows[label]["drift_reference"] == "onnxruntime/fp32"
        assert rows[label]["e2e_p50_ms"] is not None  # the asked rows are still timed
        # oracle: the per-frame distance between the two rows' predicted positions
        d = np.linalg.norm(np.asarray(preds[label]["position"]) - np.asarray(preds["onnxruntime/fp32"]["position"]),
                           axis=1)
        assert rows[label]["drift_p95_m"] == pytest.approx(np.percentile(d, 95), rel=1e-6, abs=1e-9)
        assert rows[label]["drift_p95_m"] > 0


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` in /proc)."""
    with open(f"/proc/{pid}/status") as fh:
        mask = next(int(line.split()[1], 16) for line in fh if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signum - 1)))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the handler mask from /proc")
def test_sigterm_stops_the_bench_like_ctrl_c(bench_inputs, tmp_path):
    """A service manager or a CI timeout sends SIGTERM: the usual message and 128 + 15, no report
    (it was killed outright before, exit -15)."""
    import signal
    import time

    bundle, scene = bench_inputs
    p = subprocess.Popen([sys.executable, "-m", "edgepose.runtime.bench.cli", str(bundle), "--data", str(scene),
                          "--warmup-s", "60", "--quiet", "--no-plots", "--out", str(tmp_path / "report")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while p.poll() is None and not _catches(p.pid, signal.SIGTERM) and time.monotonic() < end:
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "edgepose-bench: interrupted (SIGTERM); no report was written" in err
    assert not (tmp_path / "report" / "report.json").exists()
