"""The core's boundary helpers (issue 14, item 3): argument types, strict JSON, and the
synthetic-scene CLI's refusals."""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepose.argtypes import integer, number
from edgepose.atomic import atomic_write_json
from edgepose.jsonsafe import dumps


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e400", "abc", ""])
def test_number_refuses_non_finite_and_junk(text):
    with pytest.raises(argparse.ArgumentTypeError, match="finite number"):
        number()(text)


@pytest.mark.parametrize("parse, text, ok", [
    (number(0, 1, high_open=True), "0.999", True),
    (number(0, 1, high_open=True), "1", False),
    (number(low=0, low_open=True), "0", False),
    (number(low=0, low_open=True), "1e-9", True),
    (integer(low=1), "1", True),
    (integer(low=1), "0", False),
    (integer(low=0), "-4", False),
    (integer(low=0), "2.5", False),
])
def test_ranges_are_checked_at_the_edges(parse, text, ok):
    if ok:
        assert parse(text) == float(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parse(text)


def test_dumps_never_writes_nan_tokens_and_says_why():
    obj = {"rows": [{"drift_p50_m": float("nan")}, {"drift_p50_m": np.float32("inf")}],
           "mean": np.array([1.0, -np.inf]), "ok": 1.5}
    text = dumps(obj)
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    assert back["rows"] == [{"drift_p50_m": None}, {"drift_p50_m": None}] and back["ok"] == 1.5
    assert back["mean"] == [1.0, None]
    assert back["null_reasons"] == {"rows[0].drift_p50_m": "was NaN (not a number)",
                                    "rows[1].drift_p50_m": "was +Infinity", "mean[1]": "was -Infinity"}


def test_atomic_json_files_are_strict(tmp_path):
    """The manifest, metrics.json and report.json all go through atomic_write_json."""
    path = atomic_write_json(tmp_path / "m.json", {"validation": {"fp32": {"median_position_m": math.nan}}})
    back = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    assert back["validation"]["fp32"]["median_position_m"] is None
    assert "validation.fp32.median_position_m" in back["null_reasons"]


@pytest.mark.parametrize("args, option", [
    (["--frames", "0"], "--frames"),
    (["--fov", "nan"], "--fov"),
    (["--fov", "180"], "--fov"),
    (["--workers", "-1"], "--workers"),
    (["--seed", "-3"], "--seed"),
])
def test_synth_parser_refuses_absurd_numbers(tmp_path, args, option):
    exe = Path(sys.executable).with_name("edgepose-synth")
    proc = subprocess.run([str(exe), str(tmp_path / "s"), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"argument {option}" in proc.stderr and "expected" in proc.stderr
    assert not (tmp_path / "s").exists()
