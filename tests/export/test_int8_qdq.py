"""The INT8 Q/DQ graph checked node by node: int8, zero points 0, symmetric, per-channel, opset."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgepose.errors import EdgePoseError
from edgepose.export.int8.calibration import CalibrationWarning
from edgepose.export.int8.qdq import check_qdq_graph, default_exclusions, quantize_int8
from edgepose.export.onnx_export import node_groups


@pytest.fixture(scope="module")
def qdq(tiny_onnx, export_dir, calib_frames):
    dst = export_dir / "tiny.int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        info = quantize_int8(tiny_onnx[0], dst, calib_frames[:8], method="minmax")
    return dst, info


def test_every_qdq_node_is_symmetric_int8(qdq):
    path, info = qdq
    m = onnx.load(str(path))
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) <= 20
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    qnodes = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qnodes) == info["n_qdq"] > 0
    for n in qnodes:
        assert len(n.input) == 3, n.name
        zp, scale = inits[n.input[2]], inits[n.input[1]]
        assert zp.dtype == np.int8 and not zp.any(), n.name
        assert np.all(scale > 0), n.name
        if n.input[0] in inits:  # a weight: int8, per output channel
            assert inits[n.input[0]].dtype == np.int8
    report = check_qdq_graph(path)
    assert report["n_per_channel"] > 0 and report["n_int8_weights"] > 0


def test_weights_are_per_channel_and_biases_float(qdq):
    m = onnx.load(str(qdq[0]))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    for c in convs:
        dq = producers[c.input[1]]
        assert dq.op_type == "DequantizeLinear", c.name
        w = inits[dq.input[0]]
        assert inits[dq.input[1]].shape == (w.shape[0],), c.name  # one scale per output channel
        if len(c.input) > 2:
            assert inits[c.input[2]].dtype == np.float32  # bias not int32-quantized (TensorRT rejects it)


def test_heads_and_normalisation_stay_float(qdq, tiny_onnx):
    path, info = qdq
    keep = set(default_exclusions(onnx.load(str(tiny_onnx[0]))))
    groups = node_groups(tiny_onnx[0])
    assert set(groups["heads"]) | set(groups["post"]) | set(groups["fc"]) <= keep
    assert not keep & set(info["quantized_nodes"])
    convs = [n for n in groups["backbone"] if n.endswith("/Conv")]
    assert set(convs) <= set(info["quantized_nodes"])  # every backbone conv is quantized


def test_checker_rejects_asymmetric_graph(qdq, export_dir):
    m = onnx.load(str(qdq[0]))
    n = next(n for n in m.graph.node if n.op_type == "QuantizeLinear")
    zp = next(i for i in m.graph.initializer if i.name == n.input[2])
    zp.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(zp).shape, 3, np.int8), zp.name))
    with pytest.raises(EdgePoseError, match="symmetric"):
        check_qdq_graph(m)


def test_calibration_count_rules(tiny_onnx, trained_onnx, export_dir, calib_frames):
    with pytest.raises(EdgePoseError, match="full batch"):
        quantize_int8(trained_onnx[0], export_dir / "x.onnx", calib_frames[:2], batch=4)
    with pytest.raises(EdgePoseError, match="fixed batch"):
        quantize_int8(tiny_onnx[0], export_dir / "x.onnx", calib_frames[:8], batch=4)
    assert not (export_dir / "x.onnx").exists()
    with pytest.warns(CalibrationWarning, match="300"):
        quantize_int8(trained_onnx[0], export_dir / "few.onnx", calib_frames[:4], method="percentile", batch=2)
    check_qdq_graph(export_dir / "few.onnx")
