"""The INT8 speed projection: published ratios per family, MACs counted by hand on a real graph.

The published figures are read from the facts file that quotes them (deployment-facts.md
section 7), not copied from the module's table; the test skips where ../shared is absent."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from edgepose.int8_speed import onnx_gmacs, project

FACTS = Path(os.environ.get("EDGEPOSE_SHARED", Path(__file__).resolve().parents[2].parent / "shared")) \
    / "reference" / "deployment-facts.md"


def published_orin_nano_ms() -> dict:
    """{network: (FP16 ms, INT8 ms)} as deployment-facts.md section 7 quotes the Orin Nano table."""
    if not FACTS.is_file():
        pytest.skip(f"the facts file is not at {FACTS} (a user's clone has no ../shared)")
    text = " ".join(FACTS.read_text().split())
    m = re.search(r"ResNet-18 FP16 ([\d.]+) ms / INT8 ([\d.]+) ms; ResNet-50 ([\d.]+) / ([\d.]+); "
                  r"MobileNetV2 ([\d.]+) / ([\d.]+)", text)
    assert m, f"{FACTS} no longer quotes the Orin Nano INT8 table in the form this test reads"
    v = [float(x) for x in m.groups()]
    return {"resnet18": (v[0], v[1]), "resnet50": (v[2], v[3]), "mobilenet_v2": (v[4], v[5])}


def test_families_take_the_published_ratios():
    pub = published_orin_nano_ms()
    ratio = {k: fp16 / int8 for k, (fp16, int8) in pub.items()}
    assert project("efficientnet_lite0")["speedup"] == pytest.approx(ratio["mobilenet_v2"], abs=0.01)  # depthwise
    assert project("resnet18")["speedup"] == pytest.approx(ratio["resnet18"], abs=0.01)
    assert project("resnet50")["speedup"] == pytest.approx(ratio["resnet50"], abs=0.01)
    # MobileNetV2 at 224x224 is 300M multiply-adds (Sandler et al., "MobileNetV2", CVPR 2018): a
    # 0.15 GMAC model of its family is projected at half its INT8 time
    p = project("mobilenet_v3_small", gmacs=0.15)
    assert p["int8_ms"] == pytest.approx(pub["mobilenet_v2"][1] * 0.15 / 0.30)
    assert "PROJECTED (not measured)" in p["label"]
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
