"""Small REAL bundles for tests, examples and benchmarks, made without torch.

:func:`make_synthetic_bundle` writes an ONNX graph that honours the model contract (uint8
NHWC ``image`` in, or the float32 NCHW variant; cast + normalise in the graph; a few strided
convolutions; ``position (N,3)`` m de-normalised in FP32, unit ``rotation (N,4)`` with
``w >= 0``, ``sigma (N,2)`` [m, rad]), its fp16 and int8 Q/DQ (symmetric, TensorRT-style)
variants and ``edgepose.json``. Its weights are random: it computes *a* pose from the pixels,
not a good one (tests check runners against their own oracle written from this description).
Needs ``onnx`` (and ``onnxconverter-common`` for fp16), imported here lazily.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

import numpy as np

from edgepose.bundle import InputSpec, file_entry, normalization_section, onnx_filename, outputs_section, write_manifest
from edgepose.errors import require

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def make_params(channels: int = 8, depth: int = 1, seed: int = 0,
                position_mean=(1.0, -2.0, 0.5), position_scale: float = 2.0) -> Dict[str, np.ndarray]:
    """Random weights of the synthetic network (float32)."""
    rng = np.random.default_rng(seed)
    p = {}
    cin = 3
    for i in range(depth):
        p[f"conv{i}.w"] = (rng.standard_normal((channels, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
        p[f"conv{i}.b"] = (0.1 * rng.standard_normal(channels)).astype(np.float32)
        cin = channels
    for head, k in (("pos", 3), ("rot", 4), ("sig", 2)):
        p[f"{head}.w"] = (rng.standard_normal((channels, k)) / np.sqrt(channels)).astype(np.float32)
        p[f"{head}.b"] = (0.1 * rng.standard_normal(k)).astype(np.float32)
    p["rot.b"][0] += 1.0  # quaternions near identity, like a trained network's
    p["position_mean"] = np.asarray(position_mean, np.float32)
    p["position_scale"] = np.asarray(position_scale, np.float32)
    return p


def build_graph(params: Dict[str, np.ndarray], size: Tuple[int, int], layout: str = "NHWC",
                dynamic_batch: bool = True, qdq: bool = False, opset: int = 17):
    """The ONNX ``ModelProto`` of the synthetic network for ``size = (W, H)``."""
    onnx = require("onnx", "building synthetic ONNX bundles", "pip install onnx")
    from onnx import TensorProto, helper, numpy_helper

    W, H = size
    N = "N" if dynamic_batch else 1
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, outs, part="", **attrs):
        # post-processing nodes are named /post_<output>/... like the exporter's (fp16 keeps them float32)
        name = f"/{part}/{op}_{len(nodes)}" if part else f"{op}_{len(nodes)}"
        nodes.append(helper.make_node(op, ins, outs, name=name, **attrs))
        return outs[0]

    if layout == "NHWC":
        inp = helper.make_tensor_value_info("image", TensorProto.UINT8, [N, H, W, 3])
        # Cast first: TensorRT takes a uint8 input only straight into a Cast (export/graph_lint.py)
        x = node("Cast", ["image"], ["image_f"], part="preprocess", to=TensorProto.FLOAT)
        x = node("Transpose", [x], ["image_nchw"], part="preprocess", perm=[0, 3, 1, 2])
    else:
        inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, [N, 3, H, W])
        x = "image"
    x = node("Sub", [x, const("mean255", (255 * np.array(MEAN, np.float32)).reshape(1, 3, 1, 1).astype(np.float32))], ["x_c"])
    x = node("Div", [x, const("std255", (255 * np.array(STD, np.float32)).reshape(1, 3, 1, 1).astype(np.float32))], ["x_n"])
    i = 0
    while f"conv{i}.w" in params:
        w = params[f"conv{i}.w"]
        wname = f"conv{i}.w"
        if qdq:  # symmetric int8 activations and weights, zero points 0 (what TensorRT takes)
            a_scale = np.float32(3.0 / 127) if i == 0 else np.float32(2.0 / 127)
            node("QuantizeLinear", [x, const(f"a{i}.s", a_scale), const(f"a{i}.z", np.int8(0))], [f"x{i}_q"])
            x = node("DequantizeLinear", [f"x{i}_q", f"a{i}.s", f"a{i}.z"], [f"x{i}_dq"])
            w_scale = np.float32(np.abs(w).max() / 127)
            const(f"conv{i}.wq", np.clip(np.rint(w / w_scale), -127, 127).astype(np.int8))
            wname = node("DequantizeLinear", [f"conv{i}.wq", const(f"conv{i}.ws", w_scale),
                                              const(f"conv{i}.wz", np.int8(0))], [f"conv{i}.wdq"])
        else:
            const(wname, w)
        x = node("Conv", [x, wname, const(f"conv{i}.b", params[f"conv{i}.b"])], [f"conv{i}"],
                 kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
        x = node("Relu", [x], [f"relu{i}"])
        i += 1
    x = node("GlobalAveragePool", [x], ["gap"])
    f = node("Flatten", [x], ["feat"], axis=1)
    p = node("Gemm", [f, const("pos.w", params["pos.w"]), const("pos.b", params["pos.b"])], ["pos_n"])
    p = node("Mul", [p, const("position_scale", params["position_scale"])], ["pos_s"], part="post_position")
    node("Add", [p, const("position_mean", params["position_mean"])], ["position"], part="post_position")
    q = node("Gemm", [f, const("rot.w", params["rot.w"]), const("rot.b", params["rot.b"])], ["q_raw"])
    post = "post_rotation"
    sq = node("Mul", [q, q], ["q_sq"], part=post)
    n2 = node("ReduceSum", [sq, const("axis1", np.array([1], np.int64))], ["q_n2"], part=post, keepdims=1)
    nrm = node("Sqrt", [n2], ["q_norm"], part=post)
    qn = node("Div", [q, nrm], ["q_unit"], part=post)
    w0 = node("Slice", [qn, const("s0", np.array([0], np.int64)), const("s1", np.array([1], np.int64)),
                        const("s_ax", np.array([1], np.int64))], ["q_w"], part=post)
    neg = node("Less", [w0, const("zero", np.float32(0))], ["q_neg"], part=post)
    sign = node("Where", [neg, const("minus1", np.float32(-1)), const("plus1", np.float32(1))], ["q_sign"], part=post)
    node("Mul", [qn, sign], ["rotation"], part=post)
    s = node("Gemm", [f, const("sig.w", params["sig.w"]), const("sig.b", params["sig.b"])], ["s_raw"])
    s = node("Softplus", [s], ["s_pos"], part="post_sigma")
    node("Mul", [s, const("sigma_units", np.array([params["position_scale"], 1.0], np.float32))], ["sigma"],
         part="post_sigma")
    outs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [N, d])
            for k, d in (("position", 3), ("rotation", 4), ("sigma", 2))]
    graph = helper.make_graph(nodes, "edgepose_synthetic", [inp], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgepose.testing")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def make_synthetic_bundle(out_dir: Union[str, Path], size: Tuple[int, int] = (32, 24),
                          precisions: Sequence[str] = ("fp32", "fp16", "int8"), layout: str = "NHWC",
                          channels: int = 8, depth: int = 1, batch_max: int = 8, seed: int = 0,
                          dynamic_batch: bool = True) -> Dict[str, np.ndarray]:
    """Write a bundle to ``out_dir`` and return the network's parameters (:func:`make_params`)."""
    onnx = require("onnx", "building synthetic ONNX bundles", "pip install onnx")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = make_params(channels, depth, seed)
    files = {}

    def save(precision, model):
        rel = onnx_filename(precision)
        onnx.save(model, str(out / rel))
        files[rel] = file_entry(out, rel, "onnx", precision)

    fp32 = build_graph(params, size, layout, dynamic_batch)
    if "fp32" in precisions:
        save("fp32", fp32)
    if "fp16" in precisions:
        # the exporter's own FP16 pass: /preprocess and /post_* nodes stay float32
        from edgepose.export.fp16 import to_fp16

        src = out / onnx_filename("fp32") if "fp32" in precisions else out / ".fp32.tmp.onnx"
        if not src.is_file():
            onnx.save(fp32, str(src))
        to_fp16(src, out / onnx_filename("fp16"))
        if src.name.startswith(".fp32.tmp"):
            src.unlink()
        files[onnx_filename("fp16")] = file_entry(out, onnx_filename("fp16"), "onnx", "fp16")
    if "int8" in precisions:
        save("int8", build_graph(params, size, layout, dynamic_batch, qdq=True))
    kind = "uint8" if layout == "NHWC" else "float32"
    spec = InputSpec.for_model(kind, size, (1, 1, batch_max if dynamic_batch else 1), dynamic_batch)
    manifest = {
        "model": {"backbone": f"synthetic-conv{depth}x{channels}", "input_size": list(size),
                  "mean": list(MEAN), "std": list(STD)},
        "input": spec.to_manifest(),
        "outputs": outputs_section(dynamic_batch),
        "normalization": normalization_section(params["position_mean"], params["position_scale"]),
        "training": {}, "calibration": None, "validation": {},
        "files": files,
    }
    write_manifest(out, manifest)
    return params
