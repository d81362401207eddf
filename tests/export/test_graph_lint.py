"""The TensorRT graph lint: hand-built ONNX graphs that break each rule, and graphs that pass.

Each broken graph is built with ``onnx.helper`` (and passes ``onnx.checker``: it is a valid
ONNX graph that TensorRT's parser or our contract would still refuse). The oracle is the
rule as NVIDIA states it (see ``export/graph_lint.py``), not the lint's own code: each test
names the node that breaks it by hand.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgepose.export.graph_lint import (RULES, GraphLintError, check_graph, lint_bundle, lint_model,  # noqa: E402
                                        tensorrt_graph_lint)


def graph(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def head_and_post(x: str, out: str = "position", post_type=TensorProto.FLOAT):
    """``x (N, 4) -> Gemm -> Mul(scale) -> Add(mean) -> out``: a head followed by post-processing."""
    nodes = [helper.make_node("Gemm", [x, "hw", "b"], ["h"], name="/fc_position/Gemm")]
    inits = [init("hw", np.ones((4, 3), np.float32)), init("b", np.zeros(3, np.float32)),
             init("scale", np.float32(2.0)), init("mean", np.ones(3, np.float32))]
    if post_type == TensorProto.FLOAT16:
        nodes.append(helper.make_node("Cast", ["h"], ["h16"], name="/post_position/Cast16", to=TensorProto.FLOAT16))
        inits[2:] = [init("scale", np.float16(2.0)), init("mean", np.ones(3, np.float16))]
        nodes += [helper.make_node("Mul", ["h16", "scale"], ["s"], name="/post_position/Mul"),
                  helper.make_node("Add", ["s", "mean"], ["a16"], name="/post_position/Add"),
                  helper.make_node("Cast", ["a16"], [out], name="/post_position/Cast32", to=TensorProto.FLOAT)]
    else:
        nodes += [helper.make_node("Mul", ["h", "scale"], ["s"], name="/post_position/Mul"),
                  helper.make_node("Add", ["s", "mean"], [out], name="/post_position/Add")]
    return nodes, inits


def uint8_front(order: str):
    """``image uint8 (1, 2, 2, 4)`` -> Cast/Transpose in ``order`` -> Flatten-ish Reshape to (1, 4)... as (N, 4)."""
    img = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 1, 1, 4])
    if order == "cast-first":
        nodes = [helper.make_node("Cast", ["image"], ["f"], name="/preprocess/Cast", to=TensorProto.FLOAT),
                 helper.make_node("Transpose", ["f"], ["t"], name="/preprocess/Transpose", perm=[0, 3, 1, 2])]
    else:  # what train/model.py's normalize_input exported before the fix
        nodes = [helper.make_node("Transpose", ["image"], ["t8"], name="/preprocess/Transpose", perm=[0, 3, 1, 2]),
                 helper.make_node("Cast", ["t8"], ["t"], name="/preprocess/Cast", to=TensorProto.FLOAT)]
    nodes.append(helper.make_node("Reshape", ["t", "shape"], ["x"], name="/preprocess/Reshape"))
    return img, nodes, [init("shape", np.array([1, 4], np.int64))]


def pose_graph(order="cast-first", post_type=TensorProto.FLOAT):
    img, front, inits = uint8_front(order)
    post, pinits = head_and_post("x", post_type=post_type)
    out = helper.make_tensor_value_info("position", TensorProto.FLOAT, [1, 3])
    return graph(front + post, [img], [out], inits + pinits)


def broken(model):
    return {(v.rule, v.node) for v in lint_model(model)}


def test_a_cast_first_graph_passes_every_rule():
    assert lint_model(pose_graph("cast-first")) == []


def test_transpose_before_the_uint8_cast_fails_naming_the_transpose(tmp_path):
    model = pose_graph("transpose-first")
    found = broken(model)
    assert ("uint8-input-feeds-cast", "node '/preprocess/Transpose' (Transpose)") in found
    assert ("no-uint8-intermediate", "node '/preprocess/Transpose' (Transpose)") in found
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(GraphLintError, match=r"/preprocess/Transpose.*uint8-input-feeds-cast.*TensorRT#3985"):
        check_graph(tmp_path / "m.onnx")


def test_uint8_cast_to_an_integer_type_is_refused():
    img = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4])
    nodes = [helper.make_node("Cast", ["image"], ["x32"], name="c", to=TensorProto.INT32),
             helper.make_node("Cast", ["x32"], ["x"], name="c2", to=TensorProto.FLOAT)]
    post, inits = head_and_post("x")
    m = graph(nodes + post, [img], [helper.make_tensor_value_info("position", TensorProto.FLOAT, [1, 3])], inits)
    assert ("uint8-input-feeds-cast", "node 'c' (Cast)") in broken(m)


def test_a_uint8_tensor_made_inside_the_graph_is_refused():
    x = helper.make_tensor_value_info("x0", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Cast", ["x0"], ["u"], name="to_u8", to=TensorProto.UINT8),
             helper.make_node("Cast", ["u"], ["x"], name="back", to=TensorProto.FLOAT)]
    post, inits = head_and_post("x")
    m = graph(nodes + post, [x], [helper.make_tensor_value_info("position", TensorProto.FLOAT, [1, 3])], inits)
    assert broken(m) == {("no-uint8-intermediate", "node 'to_u8' (Cast)")}


def test_int64_graph_output_is_refused():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    post, inits = head_and_post("x")
    post.append(helper.make_node("ArgMax", ["position"], ["best"], name="argmax", axis=1))
    m = graph(post, [x], [helper.make_tensor_value_info("position", TensorProto.FLOAT, [1, 3]),
                          helper.make_tensor_value_info("best", TensorProto.INT64, [1, 1])], inits)
    assert ("no-int64-io", "graph output 'best'") in broken(m)


def test_fp16_post_processing_fails_naming_the_fp16_nodes():
    found = broken(pose_graph(post_type=TensorProto.FLOAT16))
    assert ("fp32-post-processing", "node '/post_position/Mul' (Mul)") in found
    assert ("fp32-post-processing", "node '/post_position/Add' (Add)") in found


def test_an_output_straight_from_its_head_has_no_post_processing():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["position"], name="/fc_position/Gemm")]
    m = graph(nodes, [x], [helper.make_tensor_value_info("position", TensorProto.FLOAT, [1, 3])],
              [init("w", np.ones((4, 3), np.float32)), init("b", np.zeros(3, np.float32))])
    assert broken(m) == {("fp32-post-processing", "graph output 'position'")}


# --------------------------------------------------------------------------- Q/DQ
def qdq_conv_graph(zero_point=np.int8(0), w_axis=0, w_scale_n=2, opset=17, bias_int32=False, omit_zp=False):
    """``x -> Q -> DQ -> Conv(DQ(weights)) -> GAP -> Flatten -> head -> post``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    zp = [] if omit_zp else ["a.z"]
    inits = [init("a.s", np.float32(0.1)), init("wq", np.ones((2, 1, 3, 3), np.int8)),
             init("w.s", np.full(w_scale_n, 0.05, np.float32) if w_scale_n > 1 else np.float32(0.05)),
             init("w.z", np.zeros(w_scale_n, np.int8) if w_scale_n > 1 else np.int8(0))]
    if not omit_zp:
        inits.append(init("a.z", zero_point))
    wdq_attrs = {"axis": w_axis} if w_scale_n > 1 else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "a.s"] + zp, ["xq"], name="q_act"),
             helper.make_node("DequantizeLinear", ["xq", "a.s"] + zp, ["xdq"], name="dq_act"),
             helper.make_node("DequantizeLinear", ["wq", "w.s", "w.z"], ["w"], name="dq_weight", **wdq_attrs)]
    conv_in = ["xdq", "w"]
    if bias_int32:
        inits += [init("bq", np.zeros(2, np.int32)), init("b.s", np.float32(0.005))]
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "b.s"], ["bias"], name="dq_bias"))
        conv_in.append("bias")
    nodes += [helper.make_node("Conv", conv_in, ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
              helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
              helper.make_node("Flatten", ["g"], ["f"], name="flat"),
              helper.make_node("Concat", ["f", "f"], ["x4"], name="cat", axis=1)]
    post, pinits = head_and_post("x4")
    return graph(nodes + post, [x], [helper.make_tensor_value_info("position", TensorProto.FLOAT, [1, 3])],
                 inits + pinits, opset=opset)


def test_symmetric_int8_qdq_with_per_channel_axis0_passes():
    assert lint_model(qdq_conv_graph()) == []


def test_asymmetric_or_uint8_zero_points_are_refused():
    assert broken(qdq_conv_graph(zero_point=np.int8(3))) == {
        ("qdq-symmetric-int8", "node 'q_act' (QuantizeLinear)"), ("qdq-symmetric-int8", "node 'dq_act' (DequantizeLinear)")}
    found = broken(qdq_conv_graph(zero_point=np.uint8(128)))
    assert ("qdq-symmetric-int8", "node 'q_act' (QuantizeLinear)") in found
    assert ("no-uint8-intermediate", "node 'q_act' (QuantizeLinear)") in found


def test_a_quantize_without_zero_point_is_uint8_and_refused():
    found = broken(qdq_conv_graph(omit_zp=True))
    assert ("qdq-symmetric-int8", "node 'q_act' (QuantizeLinear)") in found
    assert ("no-uint8-intermediate", "node 'q_act' (QuantizeLinear)") in found


def test_per_channel_conv_weights_on_another_axis_are_refused():
    assert broken(qdq_conv_graph(w_axis=1, w_scale_n=1)) == set()  # per-tensor: no axis to check
    m = qdq_conv_graph(w_axis=0)
    # set after building: onnx.checker would refuse a 2-long scale on an axis of size 1 before TensorRT does
    for n in m.graph.node:
        if n.name == "dq_weight":
            n.attribute[0].i = 1
    assert ("qdq-conv-weight-axis0", "node 'dq_weight' (DequantizeLinear)") in broken(m)


def test_axis_attribute_below_opset13_is_refused():
    m = qdq_conv_graph(opset=17)
    m.opset_import[0].version = 10  # per-axis Q/DQ is an opset-13 feature
    assert ("qdq-axis-opset13", "node 'dq_weight' (DequantizeLinear)") in broken(m)


def test_int32_bias_dequantize_is_refused():
    found = broken(qdq_conv_graph(bias_int32=True))
    assert found == {("qdq-no-int32-bias", "node 'dq_bias' (DequantizeLinear)")}


def test_every_rule_has_a_name_text_and_source():
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    assert all(r.text and r.source and callable(r.check) for r in RULES)


# --------------------------------------------------------------------------- real graphs
def test_every_graph_of_the_synthetic_contract_bundle_passes(tmp_path):
    from synthetic_bundles import make_synthetic_bundle

    make_synthetic_bundle(tmp_path)
    assert lint_bundle(tmp_path) == {"model.onnx": [], "model.fp16.onnx": [], "model.int8.onnx": []}


def test_the_exported_posenet_casts_its_uint8_input_first(tiny_onnx):
    path, _ = tiny_onnx
    model = onnx.load(str(path))
    consumers = [n for n in model.graph.node if "image" in n.input]
    assert [n.op_type for n in consumers] == ["Cast"]
    assert lint_model(model) == []


def test_the_export_check_passes_a_good_graph_and_stops_a_bad_one(tmp_path):
    onnx.save(pose_graph("cast-first"), str(tmp_path / "ok.onnx"))
    assert tensorrt_graph_lint(tmp_path / "ok.onnx", "fp32") == {"rules": [r.name for r in RULES], "violations": 0}
    onnx.save(pose_graph("transpose-first"), str(tmp_path / "bad.onnx"))
    with pytest.raises(GraphLintError, match="the fp32 graph bad.onnx breaks 2 TensorRT graph rule"):
        tensorrt_graph_lint(tmp_path / "bad.onnx", "fp32")


def test_every_export_pass_runs_the_lint_and_a_bad_graph_stops_the_export(tmp_path):
    from edgepose.export.passes import GRAPH_CHECKS, run_graph_checks

    assert tensorrt_graph_lint in GRAPH_CHECKS
    onnx.save(pose_graph("cast-first"), str(tmp_path / "ok.onnx"))
    assert run_graph_checks(tmp_path / "ok.onnx", "fp32")["tensorrt_graph_lint"]["violations"] == 0
    onnx.save(pose_graph("transpose-first"), str(tmp_path / "bad.onnx"))
    with pytest.raises(GraphLintError, match="/preprocess/Transpose"):
        run_graph_checks(tmp_path / "bad.onnx", "fp32")
