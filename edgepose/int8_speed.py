"""What INT8 buys on a Jetson, per backbone: a labelled projection from published figures.

Never a measurement. Published Orin Nano figures (JetPack 6, TensorRT 10.3, MAXN_SUPER, trtexec
mean GPU time, batch 1, 224x224; a third-party table quoted in onnxsim's
``scripts/nvidia/README.md``, see /work/shared/reference/deployment-facts.md section 7):
ResNet-18 0.758 ms FP16 / 0.485 ms INT8 (1.56x), ResNet-50 1.814 / 1.190 (1.52x),
MobileNetV2 0.850 / 0.781 (1.09x). Depthwise convolutions are memory-bound: INT8 saves
little on them, dense 3x3 convolutions gain ~1.5x.

:func:`project` picks the published network of the same family as a backbone (depthwise:
MobileNetV2; dense: ResNet-18 or ResNet-50, the nearer in multiply-accumulates) and scales its
times by the model's MACs over the reference's. Small models are launch-bound, so the scaled
times are a floor, and the ratio is the figure to read. numpy-free, torch-free.
"""
from __future__ import annotations

from typing import Dict, Optional

SOURCE = ("published Orin Nano trtexec GPU times (JetPack 6, TensorRT 10.3, batch 1, 224x224; "
          "onnxsim scripts/nvidia/README.md)")
#: reference network -> (FP16 ms, INT8 ms, GMACs at 224x224)
PUBLISHED = {"resnet18": (0.758, 0.485, 1.82), "resnet50": (1.814, 1.190, 4.11), "mobilenet_v2": (0.850, 0.781, 0.30)}
DEPTHWISE = ("efficientnet_lite0", "efficientnet_b0", "mobilenet_v3_small", "mobilenet_v3_large", "mobilenet_v2")
DENSE = ("resnet18", "resnet34", "resnet50", "googlenet")


def reference_for(backbone: str, gmacs: Optional[float] = None) -> Optional[str]:
    """The published network of the backbone's family, or ``None`` when the family is unknown."""
    if backbone in DEPTHWISE:
        return "mobilenet_v2"
    if backbone in DENSE:
        if gmacs is None:
            return "resnet50" if backbone == "resnet50" else "resnet18"
        return min(("resnet18", "resnet50"), key=lambda r: abs(PUBLISHED[r][2] - gmacs))
    return None


def project(backbone: str, gmacs: Optional[float] = None) -> Dict[str, object]:
    """``{reference, speedup, fp16_ms, int8_ms, label}`` (times ``None`` without ``gmacs``)."""
    ref = reference_for(backbone, gmacs)
    if ref is None:
        return {"reference": None, "speedup": None, "fp16_ms": None, "int8_ms": None,
                "label": f"projection: no published INT8 figure for the family of {backbone}"}
    fp16, int8, ref_g = PUBLISHED[ref]
    k = (gmacs / ref_g) if gmacs else None
    out = {"reference": ref, "speedup": round(fp16 / int8, 2), "fp16_ms": None if k is None else fp16 * k,
           "int8_ms": None if k is None else int8 * k, "gmacs": gmacs}
    kind = "depthwise" if ref == "mobilenet_v2" else "dense"
    text = (f"INT8 vs FP16 on Jetson Orin Nano, PROJECTED (not measured): {backbone} is a {kind} network like "
            f"{ref}, which runs {fp16:.3f} ms FP16 / {int8:.3f} ms INT8 ({out['speedup']:.2f}x) in {SOURCE}")
    if k is not None:
        text += (f"; scaled by MACs ({gmacs:.3f} vs {ref_g:.2f} GMAC) this model would take ~{out['fp16_ms']:.3f} ms "
                 f"FP16 / ~{out['int8_ms']:.3f} ms INT8 (a floor: small graphs are launch-bound)")
    out["label"] = text
    return out


def onnx_gmacs(path) -> Optional[float]:
    """Multiply-accumulates (G) of the Conv and Gemm/MatMul nodes of an ONNX graph with static
    shapes, or ``None`` when onnx is not installed or shapes cannot be inferred."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    try:
        m = shape_inference.infer_shapes(onnx.load(str(path)))
    except Exception:  # noqa: BLE001 - a projection is optional
        return None
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input):
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    total = 0
    for n in m.graph.node:
        if n.op_type == "Conv" and n.output[0] in shapes and n.input[1] in inits:
            out, w = shapes[n.output[0]], inits[n.input[1]]
            total += _prod(out[1:]) * _prod(w[1:])  # per output element: Cin/groups * kh * kw
        elif n.op_type in ("Gemm", "MatMul") and n.input[1] in inits:
            w = inits[n.input[1]]
            total += _prod(w)
    return total / 1e9 if total else None


def _prod(v) -> int:
    p = 1
    for x in v:
        p *= int(x)
    return p
