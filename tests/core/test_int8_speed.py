"""The INT8 speed projection: published ratios per family, MACs counted by hand on a real graph."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.int8_speed import onnx_gmacs, project


def test_families_take_the_published_ratios():
    assert project("efficientnet_lite0")["speedup"] == pytest.approx(0.850 / 0.781, abs=0.01)  # 1.09x
    assert project("resnet18")["speedup"] == pytest.approx(0.758 / 0.485, abs=0.01)  # 1.56x
    assert project("resnet50")["speedup"] == pytest.approx(1.814 / 1.190, abs=0.01)
    p = project("mobilenet_v3_small", gmacs=0.15)
    assert p["int8_ms"] == pytest.approx(0.781 * 0.15 / 0.30) and "PROJECTED (not measured)" in p["label"]
    assert project("unknown_net")["speedup"] is None


def test_macs_of_a_conv_and_a_gemm_counted_by_hand(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")  # 4x8x8 outputs, 27 MACs each
    g = numpy_helper.from_array(np.zeros((4, 10), np.float32), "g")  # 40 MACs
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "g"], ["y"])]
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "m", [x], [y], [w, g]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert onnx_gmacs(path) * 1e9 == pytest.approx(4 * 8 * 8 * 27 + 40)
