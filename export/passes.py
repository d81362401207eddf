"""The precision passes of an export, in one table: :data:`PASSES` ``{precision: pass}``.

A pass writes one ONNX graph of the bundle and returns a JSON-able info dict (recorded in the
manifest under ``export.onnx.<precision>``). ``fp32`` exports the PyTorch model; every other
pass starts from that FP32 graph (:attr:`PassContext.fp32`) and writes :attr:`PassContext.out`.
:func:`edgepose.export.api.export_bundle` runs the asked precisions in the canonical order of
:data:`edgepose.bundle.PRECISIONS`, fp32 always first.

To add a precision: add its name to ``edgepose.bundle.PRECISIONS`` (and its place in the
fallback order there), write ``def my_pass(ctx: PassContext) -> dict`` and add it to
:data:`PASSES`. The file name comes from :func:`edgepose.bundle.onnx_filename`.

After every pass, each function in :data:`GRAPH_CHECKS` runs on the written graph
(:func:`run_graph_checks`; ``--verify`` runs them on the bundle's graphs too). A check takes
``(path, precision)`` and returns a JSON-able summary (recorded under ``info["checks"][name]``)
or ``None`` when it does not apply, and raises :class:`~edgepose.errors.EdgePoseError` for a
graph that must not ship.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from edgepose.errors import EdgePoseError

from .config import ExportConfig
from .fp16 import to_fp16
from .frames import ExportFrames
from .graph_lint import tensorrt_graph_lint
from .int8.qat import quantize_from_qat
from .int8.qdq import quantize_int8
from .int8.sensitivity import guided_int8
from .onnx_export import export_onnx


@dataclass
class PassContext:
    """What a pass may read: the config, the frames, the model, where to write."""

    cfg: ExportConfig
    fp32: Path  # the FP32 graph (the fp32 pass writes it; the others read it)
    out: Path  # the graph this pass writes
    frames: ExportFrames = field(default_factory=ExportFrames)
    model: object = None  # the PyTorch PoseNet
    checkpoint: dict = field(default_factory=dict)  # the checkpoint dict (config, data, metrics, ...)
    parity_images: object = None  # uint8 (N, H, W, 3) frames the fp32 export is checked on
    log: Callable[[str], None] = print


PrecisionPass = Callable[[PassContext], dict]
GraphCheck = Callable[[Path, str], Optional[dict]]


def fp32_pass(ctx: PassContext) -> dict:
    """PyTorch -> ONNX (checked against PyTorch, simplified when safe)."""
    if ctx.model is None:
        raise EdgePoseError("the fp32 pass needs the PyTorch model", hint="export from a run or a checkpoint")
    cfg = ctx.cfg
    lo, opt, hi = cfg.batch_profile
    return export_onnx(ctx.model, ctx.out, input=cfg.input, batch=opt,
                       dynamic=(lo, opt, hi) if cfg.dynamic_batch is not None else None, opset=cfg.opset,
                       simplify=cfg.simplify, parity_images=ctx.parity_images)


def fp16_pass(ctx: PassContext) -> dict:
    """FP16 weights and arithmetic, FP32 pre/post-processing and I/O (:func:`~.fp16.to_fp16`)."""
    return to_fp16(ctx.fp32, ctx.out, keep_heads_fp32=ctx.cfg.fp16_keep_heads_fp32)


def int8_pass(ctx: PassContext) -> dict:
    """Symmetric INT8 Q/DQ: from a QAT checkpoint's own ranges, else calibrated on training frames
    (guided mixed precision under a drift bound)."""
    cfg, frames = ctx.cfg, ctx.frames
    if ctx.checkpoint.get("qat"):  # quantization-aware fine-tuned: its own ranges, no calibration

        ctx.log("int8: Q/DQ from the QAT stage's ranges (no re-calibration)")
        if cfg.guided:
            ctx.log("  note: --int8-max-drift-m/-deg steer post-training INT8 (which blocks stay in float); "
                    "this run was fine-tuned with QAT, so every backbone Conv stays INT8 and the drift is "
                    "reported below, not bounded")
        info = quantize_from_qat(ctx.fp32, ctx.out, ctx.checkpoint)
        frames.calib_info = {"method": "qat", "frames": 0, "batch": None,
                             "source": "the QAT stage's activation ranges (checkpoint 'qat'), no calibration"}
        return info
    if frames.calib is None:
        raise EdgePoseError("INT8 needs calibration frames from the training split; none were loaded",
                            hint="pass --calib DATA (the dataset the model was trained on)")
    if cfg.guided:
        if frames.guide is None:
            raise EdgePoseError("guided INT8 (--int8-max-drift-*) needs training frames to rank layers on; "
                                "the dataset was not found", hint="pass --calib DATA")

        # layers are ranked on held-out training frames; the test split only reports the result
        info = guided_int8(ctx.fp32, ctx.out, frames.calib, frames.guide, max_drift_m=cfg.int8_max_drift_m,
                           max_drift_deg=cfg.int8_max_drift_deg, method=cfg.calib_method,
                           max_steps=cfg.guided_max_steps,
                           progress=lambda line: ctx.log(f"  guided int8: {line}"))
        if not info.get("met", True):
            ctx.log(f"warning: guided INT8 did not reach the bound {info.get('bound')} within its steps; "
                    f"kept in float: {info.get('float_units')}")
    else:
        info = quantize_int8(ctx.fp32, ctx.out, frames.calib, method=cfg.calib_method)
    if frames.calib_info is not None and info.get("batch"):
        frames.calib_info["batch"] = int(info["batch"])
    return info


#: precision -> pass; run in the order of ``edgepose.bundle.PRECISIONS`` (fp32 first)
PASSES: Dict[str, PrecisionPass] = {"fp32": fp32_pass, "fp16": fp16_pass, "int8": int8_pass}

#: checks run on every graph an export writes and on every ONNX file ``--verify`` reads; the
#: TensorRT graph lint (:mod:`.graph_lint`: what TensorRT's ONNX parser would refuse) is the first
GRAPH_CHECKS: List[GraphCheck] = [tensorrt_graph_lint]


def run_graph_checks(path: Path, precision: str, checks: Optional[List[GraphCheck]] = None) -> Dict[str, dict]:
    """``{check name: summary}`` of ``checks`` (default :data:`GRAPH_CHECKS`) on one graph (checks may raise)."""
    out = {}
    for check in GRAPH_CHECKS if checks is None else checks:
        summary = check(Path(path), precision)
        if summary is not None:
            out[getattr(check, "__name__", repr(check))] = summary
    return out


def run_pass(precision: str, ctx: PassContext) -> dict:
    """Run the pass of ``precision`` into ``ctx.out``, then :data:`GRAPH_CHECKS` on what it wrote."""
    try:
        pass_fn = PASSES[precision]
    except KeyError:
        raise EdgePoseError(f"no export pass for precision {precision!r}; passes: {', '.join(PASSES)}") from None
    info = dict(pass_fn(ctx))
    checks = run_graph_checks(ctx.out, precision)
    if checks:
        info["checks"] = checks
    return info
