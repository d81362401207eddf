"""How a TensorRT engine is built, decided in pure Python (tested without a GPU or TensorRT).

:class:`TrtCaps` says what a TensorRT version offers (read with ``hasattr`` from the real
module, or from the version table in :meth:`TrtCaps.for_version` for documentation and
tests); :func:`plan_build` turns a precision request into a :class:`BuildPlan` and refuses what
cannot work, with the reason. :mod:`.builder` applies a plan to the real builder.

============  ======================================  ====================================
precision     TensorRT 8.x                            TensorRT 10.x / 11.x
============  ======================================  ====================================
fp32          model.onnx                              model.onnx (11.x: strongly typed)
fp16          model.fp16.onnx + FP16 flag, post-      model.fp16.onnx, strongly typed (the
              processing pinned FP32 by reachability  ONNX types keep post-processing FP32)
              + OBEY_PRECISION_CONSTRAINTS
int8 (qdq)    model.int8.onnx + INT8+FP16 + pinned    model.int8.onnx, strongly typed
int8 (calib)  model.onnx + INT8+FP16 + calibrator +   10.x as 8.x (deprecated); not on 11
              pinned (no drift figure describes it)
============  ======================================  ====================================

Every engine is built from the ONNX file whose drift the manifest records (``drift_graph``),
so the figure describes the engine a user runs; only the implicit calibrator has none. TF32 is
cleared for every precision: the FP32 post-processing must not run with 10-bit mantissas.
On non-strongly-typed builds the FP32 layers are chosen by :mod:`.reachability`.

Sources (NVIDIA/TensorRT release branches): ``include/NvInfer.h`` (``ILayer::setPrecision``:
without OBEY/PREFER_PRECISION_CONSTRAINTS the builder may pick a non-conforming faster kernel;
``BuilderFlag::kTF32`` is on by default; ``setCalibrationProfile``: MIN and MAX are
overwritten by OPT, and release/10.3 still says it must be set for dynamic shapes, as
Polygraphy release/10.3 ``backend/trt/config.py`` always does), ``python/docstrings/infer/pyCoreDoc.h`` (``platform_has_fast_fp16/int8``
deprecated from 10.5; ``STRONGLY_TYPED`` deprecated and ignored on 11.x, where every network
is strongly typed), the DLA restrictions of the TensorRT developer guide (static shapes; no
explicit quantization on 8.x DLA) and the 11.x migration guide (no DLA in 11.0-11.3).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from edgepose.bundle import PRECISIONS
from edgepose.errors import ConfigError, EdgePoseError

INT8_MODES = ("qdq", "calibrator")
Shape = Tuple[int, ...]


class TensorRTBuildError(EdgePoseError):
    """TensorRT could not parse or build the network (the message lists every error)."""


class SlowPrecisionError(EdgePoseError):
    """The GPU has no fast path for the asked precision; we stop instead of downgrading."""


def trt_version_tuple(version: str) -> Tuple[int, int]:
    """``(major, minor)`` of ``"10.3.0.26"``; raises :class:`EdgePoseError` on a malformed version."""
    m = re.match(r"\s*(\d+)(?:\.(\d+))?", str(version))
    if not m:
        raise EdgePoseError(f"cannot read the TensorRT version {version!r}; expected 'MAJOR.MINOR...'")
    return int(m.group(1)), int(m.group(2) or 0)


def fast_precisions(compute_capability: str) -> Tuple[bool, bool]:
    """``(fast FP16, fast INT8)`` of a GPU, from its compute capability.

    ``builder.platform_has_fast_fp16/int8`` are deprecated from TensorRT 10.5 ("query data type
    support from CUDA directly") and gone in 11, so we decide from the compute capability as
    CUDA's arithmetic-throughput table gives it: full-rate FP16 on sm 5.3, 6.0, 6.2 and from
    7.0; DP4A INT8 on sm 6.1 and from 7.0 (not on 6.0 nor on 6.2, the TX2).

    >>> fast_precisions("8.7"), fast_precisions("6.1"), fast_precisions("6.2"), fast_precisions("5.0")
    ((True, True), (False, True), (True, False), (False, False))
    """
    major, minor = (int(v) for v in str(compute_capability).split(".")[:2])
    cc = (major, minor)
    return cc in ((5, 3), (6, 0), (6, 2)) or cc >= (7, 0), cc == (6, 1) or cc >= (7, 0)


# --------------------------------------------------------------------------- capabilities
@dataclass(frozen=True)
class TrtCaps:
    """What one TensorRT version offers, found with ``hasattr`` (never by version strings alone).

    Attributes:
        version, major, minor: ``tensorrt.__version__`` and its numbers.
        fp16_flag, int8_flag: ``trt.BuilderFlag.FP16`` / ``INT8`` exist (removed in 11).
        calibrator: ``trt.IInt8EntropyCalibrator2`` exists (removed in 11).
        strongly_typed: networks can be strongly typed (the 10.x flag) or always are (11.x).
        strongly_typed_flag: the STRONGLY_TYPED creation flag should be set (10.x; on 11.x it
            is deprecated and ignored, so it is not set).
        explicit_batch_flag: the EXPLICIT_BATCH creation flag is needed (8.x).
        obey_precision: ``BuilderFlag.OBEY_PRECISION_CONSTRAINTS`` exists (8.2 and newer).
        dla: this TensorRT can build for DLA (not 11.0-11.3).
    """

    version: str
    major: int
    minor: int
    fp16_flag: bool
    int8_flag: bool
    calibrator: bool
    strongly_typed: bool
    strongly_typed_flag: bool
    explicit_batch_flag: bool
    obey_precision: bool = True
    dla: bool = True

    @classmethod
    def from_module(cls, trt) -> "TrtCaps":
        version = str(trt.__version__)
        major, minor = trt_version_tuple(version)
        flags = getattr(trt, "BuilderFlag", None)
        creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
        return cls(
            version=version, major=major, minor=minor,
            fp16_flag=hasattr(flags, "FP16"), int8_flag=hasattr(flags, "INT8"),
            calibrator=hasattr(trt, "IInt8EntropyCalibrator2"),
            strongly_typed=hasattr(creation, "STRONGLY_TYPED") or major >= 11,
            strongly_typed_flag=major == 10 and hasattr(creation, "STRONGLY_TYPED"),
            explicit_batch_flag=major < 10 and hasattr(creation, "EXPLICIT_BATCH"),
            obey_precision=hasattr(flags, "OBEY_PRECISION_CONSTRAINTS"),
            dla=_has_dla(major, minor),
        )

    @classmethod
    def for_version(cls, version: str) -> "TrtCaps":
        """The documented capabilities of a TensorRT version (the table in the module docstring)."""
        major, minor = trt_version_tuple(version)
        return cls(version=str(version), major=major, minor=minor, fp16_flag=major < 11, int8_flag=major < 11,
                   calibrator=major < 11, strongly_typed=major >= 10, strongly_typed_flag=major == 10,
                   explicit_batch_flag=major < 10, obey_precision=True, dla=_has_dla(major, minor))


def _has_dla(major: int, minor: int) -> bool:
    return not (major == 11 and minor <= 3)


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class BuildPlan:
    """How one engine is built.

    Attributes:
        precision: ``fp32`` | ``fp16`` | ``int8``.
        onnx_precision: which ONNX file of the bundle is parsed (its ``precision``).
        flags: ``trt.BuilderFlag`` names to set (``"FP16"``, ``"INT8"``, ``"GPU_FALLBACK"``,
            ``"OBEY_PRECISION_CONSTRAINTS"``).
        clear_flags: ``trt.BuilderFlag`` names to clear (``"TF32"`` for the FP32 reference).
        strongly_typed: the network is strongly typed (10.x flag; always on 11.x).
        strongly_typed_flag: pass the STRONGLY_TYPED creation flag (10.x only).
        explicit_batch: pass the EXPLICIT_BATCH creation flag (8.x).
        pin_fp32: pin the post-processing layers to FP32 (``layer.precision`` and float
            outputs), chosen by :func:`.reachability.choose_fp32_layers` (non-strongly-typed builds).
        fp32_post_processing: how FP32 post-processing is enforced, for the manifest.
        calibrator: attach the IInt8EntropyCalibrator2 (implicit INT8).
        calibration_profile: also ``config.set_calibration_profile`` (implicit INT8 with a
            dynamic batch, every version that has the method).
        drift_graph: the ONNX precision whose recorded drift describes this engine (the graph it
            is built from), ``None`` where no graph does (the implicit calibrator's choices).
        dla_core: DLA core to build for, ``None`` for the GPU.
        int8_mode: ``"qdq"`` or ``"calibrator"`` for INT8, else ``None``.
        notes: what the user should know (printed, and recorded in the manifest).
    """

    precision: str
    onnx_precision: str
    flags: Tuple[str, ...] = ()
    clear_flags: Tuple[str, ...] = ()
    strongly_typed: bool = False
    strongly_typed_flag: bool = False
    explicit_batch: bool = False
    pin_fp32: bool = False
    fp32_post_processing: str = ""
    calibrator: bool = False
    calibration_profile: bool = False
    drift_graph: Optional[str] = None
    dla_core: Optional[int] = None
    int8_mode: Optional[str] = None
    notes: Tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"onnx_precision": self.onnx_precision, "flags": list(self.flags),
                "cleared_flags": list(self.clear_flags), "strongly_typed": self.strongly_typed,
                "fp32_post_processing": self.fp32_post_processing, "calibrator": self.calibrator,
                "dla_core": self.dla_core, "int8_mode": self.int8_mode, "drift_graph": self.drift_graph,
                "notes": list(self.notes)}


def plan_build(caps: TrtCaps, precision: str, int8_mode: str = "qdq", dla_core: Optional[int] = None,
               dla_cores: int = 0, dynamic: bool = False, fast_fp16: Optional[bool] = None,
               fast_int8: Optional[bool] = None, allow_slow: bool = False) -> BuildPlan:
    """Decide how to build a ``precision`` engine with TensorRT ``caps``; raise if it cannot work.

    ``fast_fp16``/``fast_int8`` come from :func:`fast_precisions` (``None`` when unknown).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if int8_mode not in INT8_MODES:
        raise ConfigError(f"unknown INT8 engine mode {int8_mode!r}; expected one of {', '.join(INT8_MODES)}")
    notes: List[str] = []
    flags: List[str] = []
    strongly_typed = caps.major >= 11  # 11.x networks are always strongly typed
    calibrator = False
    onnx_precision = "fp32"
    mode = None

    if precision == "fp16":
        onnx_precision = "fp16"  # the graph whose drift the manifest records, on every route
        if caps.strongly_typed:
            strongly_typed = True
        elif caps.fp16_flag:
            flags.append("FP16")
        else:  # pragma: no cover - no known version lacks both
            raise TensorRTBuildError(f"TensorRT {caps.version} offers neither strong typing nor the FP16 flag")
    elif precision == "int8":
        mode = int8_mode
        if int8_mode == "qdq":
            onnx_precision = "int8"
            if caps.major >= 10 and caps.strongly_typed:
                strongly_typed = True
            elif caps.int8_flag:
                flags += ["INT8", "FP16"]  # 8.x: Q/DQ needs INT8; FP16 so unquantized layers are not FP32
            else:  # pragma: no cover - no known version lacks both
                raise TensorRTBuildError(f"TensorRT {caps.version} offers neither strong typing nor the INT8 flag")
        else:
            if not (caps.calibrator and caps.int8_flag):
                raise ConfigError(
                    f"TensorRT {caps.version} has no implicit INT8 calibration (removed in 11)",
                    hint="use the Q/DQ model: --int8-engine qdq")
            flags += ["INT8", "FP16"]
            calibrator = True
            notes.append("the implicit calibrator is TensorRT's EntropyCalibration2, which clipped our pose models' "
                         "activation tails: in float Q/DQ it moved the pose 17x (dino) to 36x (demo scene) more "
                         "than MinMax ranges (benchmarks/results/int8_qat.md); the default --int8-engine qdq "
                         "builds the Q/DQ model with MinMax or QAT ranges")
            if caps.major >= 10:
                notes.append(f"implicit INT8 calibration is deprecated in TensorRT {caps.major}; "
                             "prefer --int8-engine qdq")

    pin = False
    # TF32 is on by default (NvInfer.h): cleared in every precision, so the FP32 layers are FP32
    clear: Tuple[str, ...] = ("TF32",)
    if precision == "fp32":
        enforced = "FP32 engine with TF32 cleared"
    elif strongly_typed:
        enforced = "ONNX types (strongly typed network; the graph lint checks post-processing is float32)"
    elif flags:  # reduced precision by builder flags: pin post-processing, and make the pin binding
        if not caps.obey_precision:  # pragma: no cover - the flag exists from 8.2
            raise TensorRTBuildError(f"TensorRT {caps.version} lacks OBEY_PRECISION_CONSTRAINTS")
        pin = True
        flags.append("OBEY_PRECISION_CONSTRAINTS")
        enforced = ("layer precision FP32 on every post-processing layer, chosen by reachability from the "
                    "post-processing inputs to the outputs, + OBEY_PRECISION_CONSTRAINTS, TF32 cleared")
    else:  # pragma: no cover - fp16/int8 always set a flag or are strongly typed
        enforced = "none"

    fast = {"fp16": fast_fp16, "int8": fast_int8}.get(precision)
    if precision != "fp32":
        if fast is False and not allow_slow:
            raise SlowPrecisionError(
                f"this GPU has no fast {precision.upper()} path (decided from its compute capability); "
                "an engine would run but not faster than FP32",
                hint="pass --allow-slow-precision to build it anyway, or drop it from --precision")
        if fast is False:
            notes.append(f"{precision.upper()} is not fast on this GPU (built on request: --allow-slow-precision)")
        elif fast is None:
            notes.append(f"whether {precision.upper()} is fast on this GPU is unknown (no compute capability)")

    if dla_core is not None:
        _check_dla(caps, precision, mode, dla_core, dla_cores, dynamic)
        flags.append("GPU_FALLBACK")
        notes.append("layers the DLA cannot run fall back to the GPU (GPU_FALLBACK); the build reports how "
                     "many layers the DLA takes")

    return BuildPlan(precision=precision, onnx_precision=onnx_precision, flags=tuple(flags), clear_flags=clear,
                     strongly_typed=strongly_typed, strongly_typed_flag=strongly_typed and caps.strongly_typed_flag,
                     explicit_batch=caps.explicit_batch_flag, pin_fp32=pin, fp32_post_processing=enforced,
                     calibrator=calibrator, calibration_profile=calibrator and dynamic,
                     drift_graph=None if calibrator else onnx_precision,
                     dla_core=dla_core, int8_mode=mode, notes=tuple(notes))


def _check_dla(caps: TrtCaps, precision: str, mode: Optional[str], dla_core: int, dla_cores: int,
               dynamic: bool) -> None:
    """Refuse DLA builds that would run elsewhere than on the DLA, with the reason."""
    if not caps.dla:
        raise ConfigError(f"TensorRT {caps.version} has no DLA support (TensorRT 11.0-11.3 dropped it); "
                          "this is the TensorRT version, not the device",
                          hint="drop --dla-core, or build with a TensorRT that supports DLA (10.x on JetPack 6)")
    if precision == "fp32":
        raise ConfigError("DLA runs FP16 or INT8 only; --dla-core needs --precision fp16 or int8",
                          hint="drop --dla-core for FP32 engines")
    if dla_core < 0 or dla_core >= dla_cores:
        raise ConfigError(f"--dla-core {dla_core} asked, this device has {dla_cores} DLA core(s)",
                          hint="drop --dla-core (Orin Nano and discrete GPUs have none)"
                          if dla_cores == 0 else f"pick a core in 0..{dla_cores - 1}")
    if dynamic:
        raise ConfigError("DLA needs static shapes (optimization profile min = opt = max); this bundle has a "
                          "dynamic batch, so every layer would fall back to the GPU",
                          hint="re-export with a fixed batch (--batch N, no --dynamic-batch) for DLA")
    if precision == "int8" and mode == "qdq" and caps.major < 10:
        raise ConfigError(f"TensorRT {caps.version} DLA does not take explicitly quantized (Q/DQ) networks",
                          hint="use --int8-engine calibrator for DLA INT8 on TensorRT 8.x, or --precision fp16")


def trtexec_command(onnx: str, plan: BuildPlan, input_name: str, shapes: Tuple[Shape, Shape, Shape],
                    engine: str = "model.engine", workspace_gb: float = 1.0, calib_cache: Optional[str] = None) -> str:
    """The equivalent ``trtexec`` line, for users who compare with NVIDIA's tool.

    trtexec's ``--layerPrecisions`` takes exact layer names, not the ``/post_*`` prefixes, so this
    line does not pin the post-processing to FP32 as :mod:`.builder` does.
    """
    parts = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}"]
    if "FP16" in plan.flags:
        parts.append("--fp16")
    if "INT8" in plan.flags:
        parts.append("--int8")
    if "TF32" in plan.clear_flags:
        parts.append("--noTF32")
    if plan.strongly_typed_flag:
        parts.append("--stronglyTyped")
    if plan.calibrator and calib_cache:
        parts.append(f"--calib={calib_cache}")
    if shapes[0] != shapes[2]:
        fmt = lambda s: "x".join(str(v) for v in s)  # noqa: E731
        parts += [f"--minShapes={input_name}:{fmt(shapes[0])}", f"--optShapes={input_name}:{fmt(shapes[1])}",
                  f"--maxShapes={input_name}:{fmt(shapes[2])}"]
    if plan.dla_core is not None:
        parts += [f"--useDLACore={plan.dla_core}", "--allowGPUFallback"]
    parts.append(f"--memPoolSize=workspace:{int(workspace_gb * 1024)}M")
    return " ".join(parts)


def check_onnx_files(available: Sequence[str], plans: Sequence[BuildPlan]) -> None:
    """Raise when a plan needs an ONNX precision the bundle lacks."""
    missing = sorted({p.onnx_precision for p in plans} - set(available))
    if missing:
        raise ConfigError(f"the bundle has no ONNX file for {missing} (it has {sorted(available)})",
                          hint="re-export the bundle from the run with those precisions: "
                               f"edgepose-export RUN --out BUNDLE --precision {','.join(missing)}")
