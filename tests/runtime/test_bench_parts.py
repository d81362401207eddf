"""Bench pieces without a model: row planning, the gate, report writers, pareto front, sysinfo,
and the import rule (numpy only at import time)."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from edgepose.errors import ConfigError
from edgepose.runtime.bench import gate, report, rows, sysinfo
from edgepose.runtime.bench.plots import pareto_front, principal_plane


def test_default_rows_give_two_int8_rows_without_tensorrt(monkeypatch):
    avail = {"onnxruntime": True, "qdq-reference": True, "tensorrt": False, "torch": True, "torch-cuda": False}
    monkeypatch.setattr(rows, "backend_available", lambda b: (avail[b], "" if avail[b] else "not here"))
    plans, notes = rows.plan_rows(["fp32", "fp16", "int8"])
    labels = [p.label for p in plans]
    assert labels == ["onnxruntime/fp32", "onnxruntime/fp16", "onnxruntime/int8", "qdq-reference/int8"]
    assert any(n.startswith("tensorrt: skipped") for n in notes)
    assert any(n.startswith("torch: skipped") for n in notes)  # no checkpoint in the bundle
    plans, _ = rows.plan_rows(["fp32", "int8"], has_checkpoint=True)
    assert "torch/fp32" in [p.label for p in plans] and "onnxruntime/fp16" not in [p.label for p in plans]
    avail["torch-cuda"] = True  # a CUDA GPU: torch-cuda serves fp32 and fp16 and drifts from the CPU torch row
    plans, _ = rows.plan_rows(["fp32", "fp16"], has_checkpoint=True)
    cuda = [p for p in plans if p.backend == "torch-cuda"]
    assert [p.label for p in cuda] == ["torch-cuda/fp32", "torch-cuda/fp16"]
    assert rows.drift_reference(cuda[1], {"torch": "torch/fp32", "torch-cuda": "torch-cuda/fp32"}) == "torch/fp32"


def test_explicit_rows_and_errors():
    plans, notes = rows.plan_rows(["fp32"], backends=["qdq-reference", "onnxruntime"], precisions=["fp32", "int8"])
    assert [p.label for p in plans] == ["qdq-reference/int8", "onnxruntime/fp32", "onnxruntime/int8"]
    assert any("qdq-reference/fp32: skipped" in n for n in notes)
    with pytest.raises(ConfigError, match="unknown backend"):
        rows.plan_rows(["fp32"], backends=["cuda"])
    with pytest.raises(ConfigError, match="unknown precision"):
        rows.plan_rows(["fp32"], precisions=["bf16"])
    with pytest.raises(ConfigError, match="no rows"):
        rows.plan_rows(["fp32"], backends=["qdq-reference"], precisions=["fp16"])


def test_drift_reference_prefers_the_same_family():
    ok = {"tensorrt": "tensorrt/fp32", "onnxruntime": "onnxruntime/fp32"}
    assert rows.drift_reference(rows.RowPlan("qdq-reference", "int8"), ok) == "onnxruntime/fp32"
    assert rows.drift_reference(rows.RowPlan("tensorrt", "int8"), ok) == "tensorrt/fp32"
    assert rows.drift_reference(rows.RowPlan("tensorrt", "int8"), {"onnxruntime": "onnxruntime/fp32"}) \
        == "onnxruntime/fp32"
    assert rows.drift_reference(rows.RowPlan("tensorrt", "int8"), {}) is None


def _row(label, **kw):
    b, p = label.split("/")
    r = {"label": label, "backend": b, "precision": p, "status": "ok", "error": None}
    r.update(kw)
    return r


def test_gate_parse_and_check():
    g = gate.parse_gate("max-drift-m=0.05, max-drift-deg=1")
    assert g == {"max-drift-m": 0.05, "max-drift-deg": 1.0}
    for bad in ("max-drift=1", "max-drift-m", "max-drift-m=abc", "max-drift-m=-1", "allow-failed=1"):
        with pytest.raises(ConfigError):
            gate.parse_gate(bad)
    rs = [_row("onnxruntime/fp32", drift_p95_m=0.0, drift_p95_deg=0.0),
          _row("onnxruntime/int8", drift_p95_m=0.08, drift_p95_deg=0.5),
          _row("tensorrt/int8", drift_p95_m=None, drift_p95_deg=None),
          {**_row("tensorrt/fp16"), "status": "failed", "error": "no GPU"}]
    probs = gate.check_gate(rs, g)
    assert any(p.startswith("onnxruntime/int8: drift_p95_m = 0.08") for p in probs)
    assert not any("drift_p95_deg = 0.5" in p for p in probs)  # within 1 deg
    assert any(p.startswith("tensorrt/int8: drift_p95_m is unknown") for p in probs)
    assert any(p.startswith("tensorrt/fp16: row failed (no GPU)") for p in probs)
    assert not any(p.startswith("onnxruntime/fp32") for p in probs)
    assert gate.check_gate(rs[:1] + rs[3:], {**g, "allow-failed": 1.0}) == []


def test_report_writers(tmp_path):
    rs = [_row("onnxruntime/fp32", median_position_m=0.25, e2e_p50_ms=1.5, e2e_p90_ms=2.0, e2e_p99_ms=9.0,
               drift_p95_m=float("nan")),
          {**_row("tensorrt/fp16"), "status": "failed", "error": "EngineMismatchError: built for | sm87\nmore"}]
    rep = {"schema": report.SCHEMA, "rows": rs, "arr": np.arange(3), "settings": {"batch": 1}}
    report.write_json(tmp_path / "r.json", rep)
    back = json.loads((tmp_path / "r.json").read_text())  # NaN must not leak into JSON
    assert back["rows"][0]["drift_p95_m"] is None and back["arr"] == [0, 1, 2]
    report.write_csv(tmp_path / "r.csv", rs)
    assert (tmp_path / "r.csv").read_text().startswith("label,backend,precision,status,")
    with open(tmp_path / "r.csv", newline="") as fh:
        parsed = list(csv.DictReader(fh))
    assert [r["label"] for r in parsed] == ["onnxruntime/fp32", "tensorrt/fp16"]
    assert parsed[1]["error"].endswith("sm87\nmore") and parsed[0]["drift_p95_m"] == ""
    md = report.render_markdown(rep)
    assert "| onnxruntime/fp32 | ok | - | 0.2500 |" in md
    assert "1.50 / 2.00 / 9.00" in md
    assert "failed: EngineMismatchError: built for / sm87 more" in md  # no broken table cells


def test_pareto_front_and_plane():
    assert pareto_front([1, 2, 3, 2.5, 1], [5, 3, 1, 4, 6]) == [0, 1, 2]
    pts = np.array([[0, 0, 5], [1, 0, 5], [0, 2, 5], [1, 2, 5.01]], float)
    B = principal_plane(pts)
    assert B.shape == (3, 2) and abs(B[2, 0]) < 0.05 and abs(B[2, 1]) < 0.05  # the flat plane


def test_cpu_info_on_x86_and_jetson_text():
    x86 = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold\nflags\t\t: fpu avx2 avx512_vnni\n"
    c = sysinfo.cpu_info(x86)
    assert c["model"] == "Intel(R) Xeon(R) Gold" and c["vnni"] is True and c["avx2"] is True
    arm = "processor\t: 0\nFeatures\t: fp asimd\nCPU part\t: 0xd42\n\nHardware\t: NVIDIA Orin\n"
    c = sysinfo.cpu_info(arm)
    assert c["model"] == "NVIDIA Orin" and c["vnni"] is None
    info = sysinfo.collect()
    assert info["software"]["numpy"] == np.__version__


def test_jetson_facts_from_the_l4t_release_file_and_device_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no nvpmodel, jetson_clocks, dpkg-query
    assert sysinfo.jetson_info(str(tmp_path)) is None  # neither file: not a Jetson
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_bytes(b"Raspberry Pi 4 Model B\x00")
    assert sysinfo.jetson_info(str(tmp_path)) is None  # a device tree, but not a Jetson's
    (tmp_path / "proc" / "device-tree" / "model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text(
        "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64\n# KERNEL_VARIANT: oot\n")
    info = sysinfo.jetson_info(str(tmp_path))
    assert info["model"] == "NVIDIA Jetson AGX Orin Developer Kit"  # the NUL terminator stripped
    assert info["l4t"] == "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64"
    assert info["nvpmodel"] is None and info["jetson_clocks"] is None and info["jetpack"] is None  # tools absent


def test_bench_imports_numpy_only():
    code = ("import sys\n"
            "import edgepose.runtime.bench.cli, edgepose.runtime.bench.runner, edgepose.runtime.bench.plots\n"
            "heavy = [m for m in ('torch', 'matplotlib', 'onnxruntime', 'tensorrt', 'scipy') if m in sys.modules]\n"
            "print(heavy); sys.exit(1 if heavy else 0)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_batches_pad_the_last_one_and_report_real_counts():
    from edgepose.runtime.bench.runner import batches_for

    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    got = list(batches_for(x, 4))
    assert [k for _, k in got] == [4, 4, 2]
    assert all(b.shape[0] == 4 for b, _ in got)
    assert got[-1][0].ravel().tolist() == [8, 9, 9, 9]  # padded with the last real frame
