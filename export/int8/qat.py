"""INT8 from a quantization-aware fine-tuned run: the Q/DQ graph from the model's own ranges.

A run with a QAT stage (``edgepose-train ... --qat-epochs N``) stores in its checkpoint a
``"qat"`` section: for every Conv of the backbone, in forward order, its module path, its
weight shape and the amax of its input quantizer (:func:`edgepose.train.qat.qat_export_info`).
:func:`qat_act_amax` maps those onto the exported FP32 graph's Conv nodes (the same forward
order; the weight shapes must agree, BatchNorm folding keeps them) and returns the per-tensor
ranges that :func:`edgepose.export.int8.qdq.quantize_int8` writes with ``act_amax``: no
calibration runs, and the weight scales are the per-channel ``max|W| / 127`` of the exported
(folded) weights, which is what the QAT weight quantizers computed before folding.

:func:`expected_qat_gain` is what an export without QAT prints as its next step.
"""
from __future__ import annotations

from typing import Dict, Iterable, List

from edgepose.errors import EdgePoseError

from ..onnx_export import node_group
from .qdq import quantize_int8


def backbone_convs(model, exclude: Iterable[str] = ()) -> List:
    """The backbone's Conv nodes of an exported graph, in graph (forward) order."""
    skip = set(exclude)
    return [n for n in model.graph.node
            if n.op_type == "Conv" and node_group(n.name) == "backbone" and n.name not in skip]


def qat_act_amax(model, qat: dict) -> Dict[str, float]:
    """``{tensor: amax}`` for the input of every backbone Conv of ``model`` from ``qat``.

    Raises :class:`EdgePoseError` when the graph and the QAT record do not describe the same
    network (count or weight shapes differ).
    """
    from onnx import numpy_helper

    if not qat or qat.get("format") != "edgepose.qat/1":
        raise EdgePoseError("the checkpoint's qat section is missing or of an unknown format",
                            hint="re-run the QAT stage: edgepose-train DATA --out RUN --resume --qat-epochs N")
    inits = {i.name: i for i in model.graph.initializer}
    convs = backbone_convs(model)
    recs = qat["convs"]
    if len(convs) != len(recs):
        raise EdgePoseError(f"the exported graph has {len(convs)} backbone Convs, the QAT record {len(recs)}",
                            hint="export the checkpoint the QAT stage wrote (RUN/final.pt)")
    out: Dict[str, float] = {}
    for node, rec in zip(convs, recs):
        w = inits.get(node.input[1])
        shape = list(numpy_helper.to_array(w).shape) if w is not None else None
        if shape != list(rec["weight_shape"]):
            raise EdgePoseError(f"QAT record {rec['module']} (weight {rec['weight_shape']}) does not match graph "
                                f"node {node.name} (weight {shape})", hint="export the checkpoint QAT wrote")
        t, amax = node.input[0], float(rec["input_amax"])
        if t in out and abs(out[t] - amax) > 1e-6 * max(1.0, amax):
            raise EdgePoseError(f"tensor {t} has two QAT ranges ({out[t]} and {amax})")
        out[t] = amax
    return out


#: measured on our models (benchmarks/results/int8_qat.md, well-trained default runs)
QAT_EXPECTATION = ("on our models 3 QAT epochs moved the INT8 median error by -16 % (dino) and +5.5 % "
                   "(demo scene) against FP32 and did not reduce the per-frame drift "
                   "(benchmarks/results/int8_qat.md)")


def expected_qat_gain(run: str, data: str, drift_share: float) -> str:
    """The next-step line of a PTQ export: how much QAT is expected to help, and the command."""
    return (f"  INT8 here is post-training quantization: drift p50 = {drift_share:.1%} of the FP32 median error. "
            f"Quantization-aware fine-tuning: {QAT_EXPECTATION}; to try it (a few epochs):\n"
            f"    edgepose-train {data} --out {run} --resume --qat-epochs 3")


def quantize_from_qat(src_onnx, dst_onnx, checkpoint: dict) -> dict:
    """The INT8 pass of a QAT run: Q/DQ from the checkpoint's ranges, no calibration."""
    import onnx

    amax = qat_act_amax(onnx.load(str(src_onnx)), checkpoint["qat"])
    info = quantize_int8(src_onnx, dst_onnx, act_amax=amax)
    info["qat"] = {k: v for k, v in checkpoint["qat"].items() if k != "convs"}
    info["qat"]["convs"] = len(checkpoint["qat"]["convs"])
    return info
