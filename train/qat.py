"""Fake quantization that matches what TensorRT executes, for quantization-aware training (QAT).

Built from ``torch.ao.quantization``'s maintained pieces (``FakeQuantize`` with min/max
observers, straight-through gradients), placed by hand where the exporter writes Q/DQ
(:mod:`edgepose.export.int8.placement`, TensorRT's placement recommendations):

* every Conv of the backbone reads its input through an activation fake-quantizer: symmetric
  int8, per tensor, ``scale = amax / 127``, zero point 0, range ``[-127, 127]``. A tensor read
  by several Convs, or by a Conv and a residual Add (the block input of an inverted-residual
  or ResNet block), has one quantizer that all of them read, as the ONNX graph has one Q/DQ pair;
* every Conv's weight goes through a per-output-channel (axis 0) symmetric fake-quantizer whose
  range is the current ``max |W|`` of each channel (an averaging constant of 1), which is what
  the exporter computes from the final weights: nothing to re-calibrate at export. Per-channel
  max quantization commutes with BatchNorm folding (a per-channel scale multiplies ``W`` and
  ``max |W|`` alike), so quantizing the unfolded weight here gives the integers TensorRT runs
  after folding;
* the preprocessing, the FC layer, the heads and the post-processing stay in float (they are
  outside :attr:`PoseNet.backbone`, the only part traced and quantized).

The backbone is traced with ``torch.fx`` so the quantizers sit on tensors, not modules.
:func:`prepare_qat` returns the model (modified in place); :func:`calibrate` sets the
activation ranges from training frames (observers on, fake quantization off), then
:func:`freeze_activation_ranges` fixes them for the fine-tune. :func:`qat_export_info` reads
the ranges back in the form the checkpoint stores (``"qat"``), and :func:`float_state_dict`
gives the plain PoseNet weights the exporter loads.

Why not NVIDIA ModelOpt (``modelopt.torch.quantization``): measured here, its 0.47.0 release
does not import without ``huggingface_hub`` (an unconditional plugin import), needs
torch >= 2.8 and ~15 more packages (pulp, pydantic, omegaconf, nvidia-ml-py, ...), and writes
Q/DQ through the TorchScript ONNX exporter with its own placement; its ``[onnx]`` extra pins
``onnxruntime-gpu~=1.24`` and ``cupy-cuda12x`` on x86. ``torch.ao`` ships inside torch: no
new dependency, and the Q/DQ graph is written by our exporter at the same placement as PTQ.
Neither reaches the Jetson: the runtime reads the Q/DQ ONNX or the engine only.
"""
from __future__ import annotations

import operator
from typing import Dict, List, Optional

import torch
from torch import nn

from edgepose.errors import EdgePoseError

QMIN, QMAX = -127, 127
ACT_PREFIX = "qat_act_"


def _act_quantizer() -> nn.Module:
    from torch.ao.quantization import FakeQuantize, MinMaxObserver

    return FakeQuantize(observer=MinMaxObserver, quant_min=QMIN, quant_max=QMAX, dtype=torch.qint8,
                        qscheme=torch.per_tensor_symmetric)


def _weight_quantizer() -> nn.Module:
    from torch.ao.quantization import FakeQuantize, MovingAveragePerChannelMinMaxObserver

    return FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0, quant_min=QMIN,
                        quant_max=QMAX, dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)


class WeightQuantConv2d(nn.Module):
    """``conv`` (kept as ``.conv``, with its own parameters) whose weight is read through
    :func:`_weight_quantizer` on every call."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.weight_fake_quant = _weight_quantizer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return c._conv_forward(x, self.weight_fake_quant(c.weight), c.bias)


def _is_add(node) -> bool:
    return (node.op == "call_function" and node.target in (operator.add, torch.add)) or \
        (node.op == "call_method" and node.target == "add")


def prepare_qat(model: nn.Module) -> nn.Module:
    """Insert the fake-quantizers into ``model.backbone`` (a PoseNet); returns ``model``.

    Raises :class:`EdgePoseError` when the backbone cannot be traced or holds no Conv.
    """
    import torch.fx as fx

    if getattr(model, "qat_convs", None):
        return model
    try:
        gm = fx.symbolic_trace(model.backbone)
    except Exception as exc:  # data-dependent control flow, unsupported ops
        raise EdgePoseError(f"cannot trace backbone {model.config.get('backbone')!r} for QAT: "
                            f"{type(exc).__name__}: {exc}", hint="QAT supports traceable CNN backbones") from None
    modules = dict(gm.named_modules())
    convs = [n for n in gm.graph.nodes if n.op == "call_module" and isinstance(modules[n.target], nn.Conv2d)]
    if not convs:
        raise EdgePoseError(f"backbone {model.config.get('backbone')!r} has no Conv2d to quantize")
    quantizer_of: Dict[object, str] = {}
    conv_act: List[str] = []
    for c in convs:
        src = c.args[0]
        if src not in quantizer_of:
            name = f"{ACT_PREFIX}{len(quantizer_of)}"
            gm.add_submodule(name, _act_quantizer())
            with gm.graph.inserting_after(src):
                quantizer_of[src] = gm.graph.call_module(name, (src,))
        conv_act.append(quantizer_of[src].target)
    conv_set = set(convs)
    for node in list(gm.graph.nodes):  # Conv inputs and residual Add inputs read the quantized copy
        if node in conv_set or _is_add(node):
            node.args = tuple(quantizer_of.get(a, a) for a in node.args)
    for c in convs:
        parent, _, leaf = c.target.rpartition(".")
        owner = gm.get_submodule(parent) if parent else gm
        setattr(owner, leaf, WeightQuantConv2d(getattr(owner, leaf)))
    gm.graph.lint()
    gm.recompile()
    model.backbone = gm  # modules the forward never calls (e.g. an ImageNet classifier) are not in gm
    model.qat_convs = [c.target for c in convs]
    model.qat_conv_act = conv_act
    return model


def _fake_quants(model: nn.Module):
    from torch.ao.quantization import FakeQuantize

    return [m for m in model.modules() if isinstance(m, FakeQuantize)]


def _act_quants(model: nn.Module) -> Dict[str, nn.Module]:
    return {n: m for n, m in model.backbone.named_children() if n.startswith(ACT_PREFIX)}


def set_fake_quant(model: nn.Module, enabled: bool) -> None:
    """Turn every fake-quantizer's quantization on (QAT numerics) or off (the float model)."""
    for m in _fake_quants(model):
        (m.enable_fake_quant if enabled else m.disable_fake_quant)()


@torch.no_grad()
def calibrate(model: nn.Module, images: torch.Tensor, batch_size: int = 32) -> None:
    """Activation ranges (min/max per tensor) over ``images`` uint8 NHWC, model in eval mode;
    fake quantization is on afterwards with the ranges fixed."""
    acts = _act_quants(model)
    for m in acts.values():
        m.activation_post_process.reset_min_max_vals()
        m.enable_observer()
    set_fake_quant(model, False)
    was = model.training
    model.eval()
    try:
        for i in range(0, images.shape[0], batch_size):
            model(images[i:i + batch_size])
    finally:
        model.train(was)
    freeze_activation_ranges(model)
    set_fake_quant(model, True)


def freeze_activation_ranges(model: nn.Module) -> None:
    """Stop the activation observers (fixed ranges: the fine-tune adapts the weights to them)."""
    for m in _act_quants(model).values():
        m.disable_observer()


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers in eval mode: running statistics are not updated by the small QAT batches."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def qat_export_info(model: nn.Module) -> Dict[str, object]:
    """The checkpoint's ``"qat"`` section: per backbone Conv, in forward order, its module path
    (``backbone.`` + the traced name), weight shape and input amax (``scale * 127``)."""
    acts = _act_quants(model)
    convs = []
    for target, act in zip(model.qat_convs, model.qat_conv_act):
        scale = float(acts[act].scale.reshape(-1)[0])
        w = model.backbone.get_submodule(target).conv.weight
        convs.append({"module": f"backbone.{target}", "weight_shape": [int(v) for v in w.shape],
                      "input_amax": scale * QMAX, "input_quantizer": act})
    return {"format": "edgepose.qat/1", "library": f"torch.ao.quantization (torch {torch.__version__})",
            "activation": "int8 symmetric per tensor, amax/127, [-127, 127]",
            "weight": "int8 symmetric per output channel (axis 0), max|W|/127", "convs": convs}


def float_state_dict(model: nn.Module, template: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """The plain PoseNet weights of a QAT model: quantizer state dropped, ``WeightQuantConv2d``
    unwrapped, untraced modules (e.g. the ImageNet classifier) taken from ``template``."""
    out = {k: v.detach().clone() for k, v in (template or {}).items()}
    wrapped = [f"backbone.{t}." for t in getattr(model, "qat_convs", [])]
    for k, v in model.state_dict().items():
        if ".weight_fake_quant." in k or k.startswith(f"backbone.{ACT_PREFIX}"):
            continue
        for prefix in wrapped:
            if k.startswith(prefix + "conv."):
                k = prefix + k[len(prefix) + len("conv."):]
                break
        out[k] = v.detach().clone()
    return out
