"""FP16 ONNX: float32 I/O, FP32 pre/post-processing, small drift far from the origin."""
from __future__ import annotations

import numpy as np
import onnx

from edgepose.export.drift import drift
from edgepose.export.fp16 import to_fp16
from edgepose.export.parity import evaluate_onnx

F16, F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


def _types(model):
    inferred = onnx.shape_inference.infer_shapes(model)
    vals = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: v.type.tensor_type.elem_type for v in vals}


def test_fp16_graph_io_and_fp32_post(tiny_onnx, export_dir, val_frames):
    src, _ = tiny_onnx
    dst = export_dir / "tiny.fp16.onnx"
    info = to_fp16(src, dst)
    assert info["io"] == {"image": "uint8", "position": "float32", "rotation": "float32", "sigma": "float32"}
    m = onnx.load(str(dst))
    onnx.checker.check_model(m)
    types = _types(m)
    inits = {i.name: i.data_type for i in m.graph.initializer}
    # backbone weights are FP16
    conv_w = [n.input[1] for n in m.graph.node if n.op_type == "Conv"]
    assert conv_w and all(inits[w] == F16 for w in conv_w if w in inits)
    # every post-processing node computes in FP32 (its float inputs and outputs are float32)
    post = [n for n in m.graph.node if n.name.startswith("/post_") and n.op_type != "Cast"]  # not boundary casts
    assert post
    for n in post:
        for t in list(n.input) + list(n.output):
            if t in types and types[t] in (F16, F32):
                assert types[t] == F32, (n.name, t)
    # the same numbers as FP32, closely, although the scene is 54 m from the origin
    images = val_frames[0][:6]
    d = drift(evaluate_onnx(dst, images), evaluate_onnx(src, images))
    assert d["drift_max_m"] < 2e-3  # FP16 spacing at 50 m is 0.03 m: de-normalising in FP16 would fail


def test_keep_heads_fp32(tiny_onnx, export_dir):
    info = to_fp16(tiny_onnx[0], export_dir / "tiny.fp16h.onnx", keep_heads_fp32=True)
    assert "/fc_position/Gemm" in info["fp32_nodes"] and "/fc/fc.0/Gemm" in info["fp32_nodes"]
    m = onnx.load(str(export_dir / "tiny.fp16h.onnx"))
    inits = {i.name: i.data_type for i in m.graph.initializer}
    gemm = next(n for n in m.graph.node if n.name == "/fc_position/Gemm")
    assert inits[gemm.input[1]] == F32
