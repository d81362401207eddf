"""Sensitivity-guided mixed precision on the trained tiny model."""
from __future__ import annotations

import warnings

import pytest

from edgepose.errors import ConfigError
from edgepose.export.int8.calibration import CalibrationWarning
from edgepose.export.int8.qdq import check_qdq_graph
from edgepose.export.int8.sensitivity import guided_int8, quant_units, unit_label


def test_units_of_efficientnet_lite0(tiny_onnx):
    units = quant_units(tiny_onnx[0])
    labels = [unit_label(u) for u in units]
    assert labels == ["_conv_stem"] + [f"_blocks.{i}" for i in range(16)] + ["_conv_head"]
    stem = units["backbone/_conv_stem"]
    assert any(n.endswith("/Clip") for n in stem)  # the shared ReLU6 after the stem joins the stem
    assert units["backbone/_conv_head"][-1].endswith("ReduceMean")


# the stem and the first blocks: the most INT8-sensitive units measured on the dino model
# (benchmarks/results/export_drift.md); four candidates keep the test within its time budget
CANDIDATES = ["_conv_stem", "_blocks.0", "_blocks.1", "_blocks.2"]


def test_guided_reduces_drift_below_naive(trained_onnx, export_dir, calib_frames, val_frames):
    src = trained_onnx[0]
    val = val_frames[0][:12]
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        # a bound at half the naive drift forces the search to leave units in float
        probe = guided_int8(src, export_dir / "probe.onnx", calib_frames, val, max_drift_m=1e9)
        naive = probe["naive"]["drift_p50_m"]
        assert probe["met"] and probe["float_units"] == [] and probe["sensitivity"] == {}
        res = guided_int8(src, export_dir / "guided.onnx", calib_frames, val, max_drift_m=naive / 2,
                          max_steps=3, progress=lines.append, candidates=CANDIDATES)
    assert res["naive"]["drift_p50_m"] == pytest.approx(naive)
    assert sorted(res["sensitivity"]) == sorted(CANDIDATES) and res["float_units"]
    assert set(res["float_units"]) <= set(CANDIDATES)
    assert res["guided"]["drift_p50_m"] < naive
    assert res["met"] == (res["guided"]["drift_p50_m"] <= naive / 2)
    floated = set(res["float_nodes"])
    assert floated and not floated & set(res["info"]["quantized_nodes"])
    check_qdq_graph(export_dir / "guided.onnx")
    assert lines[0].startswith("naive INT8") and any("sensitivity" in s for s in lines)


def test_guided_needs_a_bound_and_known_units(trained_onnx, export_dir, calib_frames, val_frames):
    with pytest.raises(ConfigError, match="bound"):
        guided_int8(trained_onnx[0], export_dir / "g.onnx", calib_frames, val_frames[0])
    with pytest.raises(ConfigError, match="unknown units"):
        guided_int8(trained_onnx[0], export_dir / "g.onnx", calib_frames, val_frames[0], max_drift_m=1.0,
                    candidates=["_blocks.99"])
