"""FP16 ONNX for ONNX Runtime: float16 weights and arithmetic, float32 graph I/O.

:func:`to_fp16` converts an FP32 graph written by :func:`~edgepose.export.onnx_export.export_onnx`
with ``onnxconverter_common.float16`` (``keep_io_types=True``: Cast nodes keep the graph's
inputs and outputs as they were, float32 or uint8), and blocks the post-processing nodes
(``/post_position``: position de-normalisation, ``/post_rotation``: quaternion normalisation,
``/post_sigma``) from the conversion: FP16 spacing is 0.06 m at 100 m, so applying the scene
mean in FP16 would cost centimetres far from the origin (README, "Conventions").
``keep_heads_fp32=True`` also keeps the FC and head Gemms in float32.

For TensorRT 8/10, the engine builder should take the FP32 ONNX with the FP16 builder flag
(layers stay FP32 where TensorRT is told to); TensorRT 11 needs a strongly typed graph such as
this one. ORT's x86 CPU has no FP16 convolution kernels: it inserts casts and runs FP32, so
this file's CPU timings mean nothing; its numerics (FP16 weights and activations at the
node boundaries ORT keeps) are what the drift figures measure.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Union

from edgepose.atomic import atomic_write_bytes
from edgepose.errors import EdgePoseError, require

from .onnx_export import node_groups


def fp16_block_list(model, keep_heads_fp32: bool = False, extra: Iterable[str] = ()) -> list:
    """Names of the nodes kept in float32: preprocessing (uint8 -> normalised float) and
    post-processing, optionally the FC and heads, plus ``extra``."""
    groups = node_groups(model)
    names = list(groups["preprocess"]) + list(groups["post"])
    if keep_heads_fp32:
        names += groups["heads"] + groups["fc"]
    return names + list(extra)


def to_fp16(src_onnx: Union[str, Path], dst_onnx: Union[str, Path], keep_heads_fp32: bool = False,
            extra_fp32_nodes: Iterable[str] = ()) -> dict:
    """Write an FP16 copy of ``src_onnx`` to ``dst_onnx`` with float32/uint8 I/O kept.

    Returns ``{"path", "fp32_nodes" [names kept float32], "n_nodes", "io": {name: dtype}}``.
    """
    onnx = require("onnx", "FP16 conversion", "pip install 'edgepose[export]'")
    f16 = require("onnxconverter_common.float16", "FP16 conversion", "pip install onnxconverter-common")
    src = Path(src_onnx)
    if not src.is_file():
        raise EdgePoseError(f"ONNX file not found: {src}", hint="export the FP32 graph first")
    model = onnx.load(str(src))
    block = fp16_block_list(model, keep_heads_fp32, extra_fp32_nodes)
    if not block:
        raise EdgePoseError(f"{src} has no /post_* nodes: it was not written by edgepose's export_onnx",
                            hint="export with edgepose.export.onnx_export.export_onnx")
    op_block = list(getattr(f16, "DEFAULT_OP_BLOCK_LIST", []))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the float32 number ... will be truncated" for tiny weights
        half = f16.convert_float_to_float16(model, keep_io_types=True, node_block_list=block,
                                            op_block_list=op_block)
    _restore_output_types(half, model)
    _drop_roundtrip_casts(half)
    onnx.checker.check_model(half)
    io = {}
    for v in list(half.graph.input) + list(half.graph.output):
        io[v.name] = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
    atomic_write_bytes(Path(dst_onnx), half.SerializeToString())
    return {"path": str(dst_onnx), "fp32_nodes": block, "n_nodes": len(half.graph.node), "io": io,
            "keep_heads_fp32": bool(keep_heads_fp32)}


def _restore_output_types(half, original) -> None:
    """Give ``half`` the output dtypes of ``original``.

    onnxconverter_common (1.16) ends a graph whose last nodes are blocked with a Cast to
    float16 and declares float16 outputs despite ``keep_io_types=True``. Such a Cast is
    bypassed (the blocked FP32 node writes the output directly); any other mismatch gets a
    Cast back to the original type.
    """
    onnx = require("onnx", "FP16 conversion")
    want = {o.name: o.type.tensor_type.elem_type for o in original.graph.output}
    producers = {out: n for n in half.graph.node for out in n.output}
    consumers = {}
    for n in half.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for out in half.graph.output:
        target = want.get(out.name)
        if target is None or out.type.tensor_type.elem_type == target:
            continue
        cast = producers.get(out.name)
        src = cast.input[0] if cast is not None and cast.op_type == "Cast" else None
        src_producer = producers.get(src) if src else None
        if src_producer is not None and len(consumers.get(src, [])) == 1:
            # bypass: producer -> [Cast to fp16] -> output  ==>  producer -> output
            src_producer.output[list(src_producer.output).index(src)] = out.name
            half.graph.node.remove(cast)
        else:
            tmp = out.name + "_fp16"
            producers[out.name].output[list(producers[out.name].output).index(out.name)] = tmp
            half.graph.node.append(onnx.helper.make_node("Cast", [tmp], [out.name], to=target,
                                                         name=out.name + "_restore_cast"))
        out.type.tensor_type.elem_type = target


def _drop_roundtrip_casts(half) -> None:
    """Remove float32 -> Cast(fp16) -> Cast(fp32) chains the converter puts between FP32 nodes
    (e.g. a blocked Constant feeding a blocked Clip): they only lose precision (1e-8 -> 0)."""
    onnx = require("onnx", "FP16 conversion")
    F16, F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    inferred = onnx.shape_inference.infer_shapes(half)
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    for n in half.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            types[n.output[0]] = n.attribute[0].t.data_type
    for init in half.graph.initializer:
        types[init.name] = init.data_type

    def cast_to(node):
        return next((a.i for a in node.attribute if a.name == "to"), None)

    outputs = {o.name for o in half.graph.output}
    changed = True
    while changed:
        changed = False
        consumers = {}
        for n in half.graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        for a in list(half.graph.node):
            if a.op_type != "Cast" or cast_to(a) != F16 or types.get(a.input[0]) != F32:
                continue
            users = consumers.get(a.output[0], [])
            if a.output[0] in outputs or not users or any(u.op_type != "Cast" or cast_to(u) != F32 for u in users):
                continue
            for b in users:
                if b.output[0] in outputs:
                    break
                for c in consumers.get(b.output[0], []):
                    for k, name in enumerate(c.input):
                        if name == b.output[0]:
                            c.input[k] = a.input[0]
                half.graph.node.remove(b)
            else:
                half.graph.node.remove(a)
                changed = True
                break
