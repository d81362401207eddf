"""edgepose-run as a user runs it: a subprocess on a bundle and a folder of real PNGs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args, timeout=120):
    exe = Path(sys.executable).with_name("edgepose-run")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose", "run"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def test_one_json_line_per_frame_and_exactly_one_failed(tmp_path, bundle, frames):
    out = tmp_path / "poses.jsonl"
    proc = _run(bundle[0], "--source", frames, "--out", out, "--csv", tmp_path / "p.csv", "--filter", "kalman")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 12 and [x["index"] for x in lines] == list(range(12))
    failed = [x for x in lines if not x["ok"]]
    assert len(failed) == 1 and "frame5.png" in failed[0]["error"]
    for x in lines:
        if x["ok"]:
            assert len(x["position_m"]) == 3 and len(x["rotation_wxyz"]) == 4
            assert x["sigma_position_m"] > 0 and x["sigma_rotation_deg"] > 0
    # asked fp16 by default: the bundle has it, so no fallback warning
    assert "warning" not in proc.stderr
    assert "12 frames through onnxruntime" in proc.stderr and "failed 1, dropped 0" in proc.stderr
    assert "latency p50" in proc.stderr and "next:" in proc.stderr


def test_fallback_is_announced_and_strict_fails(tmp_path, bundle_fp32_only, frames):
    proc = _run(bundle_fp32_only, "--source", frames, "--out", tmp_path / "a.jsonl", "--precision", "int8", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "no int8 onnx file; using fp32" in proc.stderr
    proc = _run(bundle_fp32_only, "--source", frames, "--out", tmp_path / "b.jsonl", "--precision", "int8", "--strict")
    assert proc.returncode == 2 and "error:" in proc.stderr and "has no int8 onnx file" in proc.stderr


def test_help_teaches_and_bad_source_is_a_clear_error(tmp_path, bundle):
    proc = _run("--help")
    assert proc.returncode == 0
    for word in ("SOURCES", "nvarguscamerasrc", "qdq-reference", "latest", "EXAMPLES"):
        assert word in proc.stdout
    proc = _run(bundle[0], "--source", tmp_path / "missing.xyz", "--out", tmp_path / "x.jsonl")
    assert proc.returncode == 2 and "cannot tell what --source" in proc.stderr


def test_threads_and_cuda_graph_reach_the_backend_auto_resolves_to(tmp_path, bundle, frames):
    # --backend auto (the default) resolves to onnxruntime here: --threads must reach it as
    # intra_op_threads, and --cuda-graph (TensorRT only) must be named as ignored, not dropped
    proc = _run(bundle[0], "--source", frames, "--out", tmp_path / "p.jsonl", "--threads", "1", "--cuda-graph",
                "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "frames through onnxruntime:CPUExecutionProvider (fp16, intra_op_threads=1)" in proc.stderr
    assert "warning: --cuda-graph has no effect on the onnxruntime backend (it applies to tensorrt)" in proc.stderr
