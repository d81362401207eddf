"""Q/DQ placement as TensorRT's developer guide recommends, the int8 weights, and entropy vs MinMax.

Oracles: the graph structure read node by node (every backbone Conv reads a dequantized input
and int8 weights; nothing quantizes a Conv output before its Clip; residual Adds read the same
DQ as the block's first Conv), numpy for the weight quantization, and hand-made tensors whose
entropy threshold must sit far below their max.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepose.export.int8.ranges import activation_amax
from edgepose.export.int8.calibration import CalibrationWarning
from edgepose.export.int8.qdq import make_reader, quantize_int8
from edgepose.export.onnx_export import node_group
from edgepose.export.int8.placement import placement_problems, quantize_weight


@pytest.fixture(scope="module")
def placed(trained_onnx, export_dir, calib_frames):
    dst = export_dir / "placed.int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        info = quantize_int8(trained_onnx[0], dst, calib_frames, method="minmax", batch=8)
    return onnx.load(str(dst)), info


def test_every_backbone_conv_reads_int8_input_and_weights_and_no_conv_output_is_quantized(placed):
    m, info = placed
    prod = {o: n for n in m.graph.node for o in n.output}
    convs = [n for n in m.graph.node if n.op_type == "Conv" and node_group(n.name) == "backbone"]
    assert convs and len(convs) == info["placement"]["weighted_nodes"]
    for c in convs:  # stem included
        assert prod[c.input[0]].op_type == "DequantizeLinear", c.name
        assert prod[c.input[1]].op_type == "DequantizeLinear", c.name
    readers = {}
    for n in m.graph.node:
        for t in n.input:
            readers.setdefault(t, []).append(n)
    for q in (n for n in m.graph.node if n.op_type == "QuantizeLinear"):
        src = prod.get(q.input[0])
        if src is not None and src.op_type == "Conv":  # only a projection (no activation) may be requantized
            dq = readers[q.output[0]][0]
            assert all(r.op_type in ("Conv", "Add") for r in readers[dq.output[0]]), q.name
            assert all(r.op_type != "Clip" for r in readers[q.input[0]]), f"{q.name}: Conv output before a Clip"
    assert placement_problems(m) == []


def test_residual_adds_share_the_dq_of_the_block_input(placed):
    m, _ = placed
    prod = {o: n for n in m.graph.node for o in n.output}
    conv_inputs = {n.input[0] for n in m.graph.node if n.op_type == "Conv"}
    adds = [n for n in m.graph.node if n.op_type == "Add" and node_group(n.name) == "backbone"]
    assert adds, "EfficientNet-Lite0 has residual blocks"
    for a in adds:
        dq = [t for t in a.input if t in prod and prod[t].op_type == "DequantizeLinear"]
        assert len(dq) == 1 and dq[0] in conv_inputs, a.name  # one side int8, the Conv side float


def test_onnxruntime_symmetric_qdq_is_flagged_by_the_placement_rule(trained_onnx, export_dir, calib_frames):
    """ORT's own quantize_static (symmetric activations) quantizes Conv outputs before the Clip."""
    q = pytest.importorskip("onnxruntime.quantization")
    dst = export_dir / "ort_symmetric.onnx"
    q.quantize_static(str(trained_onnx[0]), str(dst), make_reader("image", "uint8", calib_frames, 8),
                      quant_format=q.QuantFormat.QDQ, per_channel=True, activation_type=q.QuantType.QInt8,
                      weight_type=q.QuantType.QInt8, op_types_to_quantize=["Conv"],
                      extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    problems = placement_problems(onnx.load(str(dst)))
    assert any("between Conv" in p and "Clip" in p for p in problems)


def test_int8_weights_per_channel_match_numpy():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (4, 3, 3, 3)).astype(np.float32)
    w[2] *= 50  # a loud channel must not coarsen the others
    w[3] = 0  # an all-zero channel gets a valid scale
    wq, scale = quantize_weight(w)
    amax = np.abs(w.reshape(4, -1)).max(1)
    np.testing.assert_allclose(scale[:3], amax[:3] / 127, rtol=1e-6)
    assert scale[3] > 0 and not wq[3].any()
    assert wq.dtype == np.int8 and np.abs(wq).max() == 127
    err = np.abs(wq * scale[:, None, None, None] - w)
    assert np.all(err <= scale[:, None, None, None] / 2 + 1e-7)


def _identity_conv_graph(path, n_ch=1):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n_ch, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_ch, 8, 8])
    w = numpy_helper.from_array(np.ones((n_ch, 1, 1, 1), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="/backbone/c/Conv", group=n_ch)
    g = helper.make_graph([node], "g", [x], [y], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


class _Reader:
    def __init__(self, arrays):
        self.arrays, self.i = list(arrays), 0

    def get_next(self):
        if self.i >= len(self.arrays):
            return None
        self.i += 1
        return {"x": self.arrays[self.i - 1]}

    def rewind(self):
        self.i = 0


def test_entropy_clips_an_outlier_that_minmax_keeps(tmp_path):
    """Gaussian activations (sigma 1) with one value at 100: MinMax must answer 100, entropy
    (KL over 2048 bins, 255 levels) a threshold near the bulk, far below 100. Before the fix,
    ONNX Runtime's 128/128-bin default could only return the max."""
    path = tmp_path / "conv.onnx"
    _identity_conv_graph(path)
    rng = np.random.default_rng(0)
    batches = [rng.normal(0, 1, (4, 1, 8, 8)).astype(np.float32) for _ in range(16)]
    batches[3][0, 0, 0, 0] = 100.0
    mm = activation_amax(path, ["x"], _Reader(batches), "minmax")["x"]
    ent = activation_amax(path, ["x"], _Reader(batches), "entropy")["x"]
    pct = activation_amax(path, ["x"], _Reader(batches), "percentile", percentile=99.9)["x"]
    assert mm == pytest.approx(100.0)
    assert 2.0 < ent < 30.0, ent
    assert 2.0 < pct < 10.0, pct


def test_entropy_differs_from_minmax_on_the_model(trained_onnx, export_dir, calib_frames, monkeypatch):
    # 512 histogram bins instead of the product's 2048: ORT's KL search is quadratic in the bins
    # (22 s of the suite at 2048); what is checked here holds at any bin count
    monkeypatch.setattr("edgepose.export.int8.ranges.ENTROPY_BINS", 512)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        a = quantize_int8(trained_onnx[0], export_dir / "mm.onnx", calib_frames, "minmax", batch=8,
                          calibration_cache=export_dir / "mm.json")
        b = quantize_int8(trained_onnx[0], export_dir / "ent.onnx", calib_frames, "entropy", batch=8,
                          calibration_cache=export_dir / "ent.json")
    import json

    mm = json.loads((export_dir / "mm.json").read_text())["amax"]
    ent = json.loads((export_dir / "ent.json").read_text())["amax"]
    assert mm.keys() == ent.keys() and a["n_qdq"] == b["n_qdq"]
    ratio = np.array([ent[k] / mm[k] for k in mm])
    assert np.all(ratio <= 1.0 + 1e-6)  # entropy never widens the range
    assert np.mean(ratio < 0.99) > 0.3, ratio  # and clips a good share of the tensors


def test_graph_lint_has_the_placement_rule(placed, export_dir):
    from edgepose.export.graph_lint import lint_model

    m, _ = placed
    assert not [v for v in lint_model(m) if v.rule == "qdq-trt-placement"]
    ort_graph = export_dir / "ort_symmetric.onnx"
    if ort_graph.is_file():  # written by the quantize_static test above
        rules = {v.rule for v in lint_model(onnx.load(str(ort_graph)))}
        assert "qdq-trt-placement" in rules
