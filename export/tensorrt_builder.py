"""Thin, version-agnostic TensorRT engine builder (TensorRT 8.5 through 11).

Two halves:

* **Decisions, pure Python** (tested without a GPU): :class:`TrtCaps` says what a TensorRT
  version offers (read with ``hasattr`` from the real module, or from the version table in
  :meth:`TrtCaps.for_version` for documentation and tests); :func:`plan_build` turns a
  precision request into a :class:`BuildPlan` (which ONNX file, which builder flags, strongly
  typed or not, calibrator or not, DLA) and refuses what cannot work, with the reason:

  ============  ============================  =====================================
  precision     TensorRT 8.x / 10.x           TensorRT 11.x (flags removed)
  ============  ============================  =====================================
  fp32          model.onnx                    model.onnx (strongly typed)
  fp16          model.onnx + FP16 flag        model.fp16.onnx, strongly typed
  int8 (qdq)    model.int8.onnx + INT8+FP16   model.int8.onnx, strongly typed
                flags on 8.x; strongly typed
                on 10.x
  int8 (calib)  model.onnx + INT8+FP16 +      not available
                IInt8EntropyCalibrator2 (8.x;
                deprecated in 10.x)
  ============  ============================  =====================================

  No silent downgrade: if the platform reports FP16/INT8 as not fast, :func:`plan_build`
  raises :class:`SlowPrecisionError` unless ``allow_slow=True``.

* **The build itself** (:func:`build_serialized_engine`): parse the ONNX file (every parser
  error listed), workspace limit, optimization profile for a dynamic batch, timing cache
  keyed by TensorRT version, DLA core with GPU fallback, ``build_serialized_network``. Only
  this function touches ``tensorrt``; it is exercised by the ``@pytest.mark.tensorrt`` tests.

API facts: /work/shared/reference/deployment-facts.md sections 1, 4 and 5.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from edgepose.bundle import PRECISIONS
from edgepose.errors import ConfigError, EdgePoseError

from .device_fingerprint import trt_major
from .timing_cache import attach_timing_cache, save_timing_cache

INT8_MODES = ("qdq", "calibrator")
Shape = Tuple[int, ...]


class TensorRTBuildError(EdgePoseError):
    """TensorRT could not parse or build the network (the message lists every error)."""


class SlowPrecisionError(EdgePoseError):
    """The platform reports the asked precision as not fast; we stop instead of downgrading."""


# --------------------------------------------------------------------------- capabilities
@dataclass(frozen=True)
class TrtCaps:
    """What one TensorRT version offers, found with ``hasattr`` (never by version strings alone).

    Attributes:
        version: ``tensorrt.__version__``.
        major: its major number.
        fp16_flag, int8_flag: ``trt.BuilderFlag.FP16`` / ``INT8`` exist (removed in 11).
        calibrator: ``trt.IInt8EntropyCalibrator2`` exists (removed in 11).
        strongly_typed: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists (10.x), or the
            network is always strongly typed (11.x).
        explicit_batch_flag: the EXPLICIT_BATCH creation flag is needed (8.x).
        fast_precision_query: ``builder.platform_has_fast_fp16/int8`` exist (removed in 11).
    """

    version: str
    major: int
    fp16_flag: bool
    int8_flag: bool
    calibrator: bool
    strongly_typed: bool
    explicit_batch_flag: bool
    fast_precision_query: bool

    @classmethod
    def from_module(cls, trt) -> "TrtCaps":
        version = str(trt.__version__)
        major = trt_major(version)
        flags = getattr(trt, "BuilderFlag", None)
        creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
        return cls(
            version=version, major=major,
            fp16_flag=hasattr(flags, "FP16"), int8_flag=hasattr(flags, "INT8"),
            calibrator=hasattr(trt, "IInt8EntropyCalibrator2"),
            strongly_typed=hasattr(creation, "STRONGLY_TYPED") or major >= 11,
            explicit_batch_flag=major < 10 and hasattr(creation, "EXPLICIT_BATCH"),
            fast_precision_query=hasattr(getattr(trt, "Builder", None), "platform_has_fast_fp16"),
        )

    @classmethod
    def for_version(cls, version: str) -> "TrtCaps":
        """The documented capabilities of a TensorRT version (the table in the facts file).

        Used to document and test :func:`plan_build`; a real build uses :meth:`from_module`.
        """
        major = trt_major(version)
        return cls(version=str(version), major=major, fp16_flag=major < 11, int8_flag=major < 11,
                   calibrator=major < 11, strongly_typed=major >= 10, explicit_batch_flag=major < 10,
                   fast_precision_query=major < 11)


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class BuildPlan:
    """How one engine is built.

    Attributes:
        precision: ``fp32`` | ``fp16`` | ``int8``.
        onnx_precision: which ONNX file of the bundle is parsed (its ``precision``).
        flags: ``trt.BuilderFlag`` names to set (``"FP16"``, ``"INT8"``, ``"GPU_FALLBACK"``).
        strongly_typed: create the network STRONGLY_TYPED (10.x flag; always on 11.x).
        explicit_batch: pass the EXPLICIT_BATCH creation flag (8.x).
        calibrator: attach the IInt8EntropyCalibrator2 (implicit INT8, 8.x).
        calibration_profile: also ``config.set_calibration_profile`` (8.x, dynamic batch).
        dla_core: DLA core to build for, ``None`` for the GPU.
        int8_mode: ``"qdq"`` or ``"calibrator"`` for INT8, else ``None``.
        notes: what the user should know (printed, and recorded in the manifest).
    """

    precision: str
    onnx_precision: str
    flags: Tuple[str, ...] = ()
    strongly_typed: bool = False
    explicit_batch: bool = False
    calibrator: bool = False
    calibration_profile: bool = False
    dla_core: Optional[int] = None
    int8_mode: Optional[str] = None
    notes: Tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"onnx_precision": self.onnx_precision, "flags": list(self.flags),
                "strongly_typed": self.strongly_typed, "calibrator": self.calibrator,
                "dla_core": self.dla_core, "int8_mode": self.int8_mode, "notes": list(self.notes)}


def plan_build(caps: TrtCaps, precision: str, int8_mode: str = "qdq", dla_core: Optional[int] = None,
               dla_cores: int = 0, dynamic: bool = False, fast_fp16: Optional[bool] = None,
               fast_int8: Optional[bool] = None, allow_slow: bool = False) -> BuildPlan:
    """Decide how to build a ``precision`` engine with TensorRT ``caps``; raise if it cannot work.

    ``fast_fp16``/``fast_int8`` are ``builder.platform_has_fast_*`` (``None`` when unknown).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if int8_mode not in INT8_MODES:
        raise ConfigError(f"unknown INT8 engine mode {int8_mode!r}; expected one of {', '.join(INT8_MODES)}")
    notes: List[str] = []
    flags: List[str] = []
    strongly_typed = False
    calibrator = False
    onnx_precision = "fp32"
    mode = None

    if precision == "fp16":
        if caps.fp16_flag:
            flags.append("FP16")
        else:
            onnx_precision, strongly_typed = "fp16", True
            notes.append(f"TensorRT {caps.version} has no FP16 flag: building the FP16 ONNX strongly typed")
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
            if caps.major >= 10:
                notes.append(f"implicit INT8 calibration is deprecated in TensorRT {caps.major}; "
                             "prefer --int8-engine qdq")
    elif caps.major >= 11:
        strongly_typed = True

    if caps.major >= 11:
        strongly_typed = True  # 11.x networks are always strongly typed

    fast = {"fp16": fast_fp16, "int8": fast_int8}.get(precision)
    if precision != "fp32":
        if fast is False and not allow_slow:
            raise SlowPrecisionError(
                f"this platform reports {precision.upper()} as not fast (builder.platform_has_fast_{precision} "
                f"is False); an engine would run but not faster than FP32",
                hint="pass --allow-slow-precision to build it anyway, or drop it from --precision")
        if fast is False:
            notes.append(f"{precision.upper()} is not fast on this platform (built on request: --allow-slow-precision)")
        elif fast is None and not caps.fast_precision_query:
            notes.append(f"TensorRT {caps.version} cannot report whether {precision.upper()} is fast here")

    if dla_core is not None:
        if precision == "fp32":
            raise ConfigError("DLA runs FP16 or INT8 only; --dla-core needs --precision fp16 or int8",
                              hint="drop --dla-core for FP32 engines")
        if dla_core < 0 or dla_core >= dla_cores:
            raise ConfigError(f"--dla-core {dla_core} asked, this device has {dla_cores} DLA core(s)",
                              hint="drop --dla-core (Orin Nano and discrete GPUs have none)"
                              if dla_cores == 0 else f"pick a core in 0..{dla_cores - 1}")
        flags.append("GPU_FALLBACK")
        notes.append("layers the DLA cannot run fall back to the GPU (GPU_FALLBACK)")

    return BuildPlan(precision=precision, onnx_precision=onnx_precision, flags=tuple(flags),
                     strongly_typed=strongly_typed, explicit_batch=caps.explicit_batch_flag,
                     calibrator=calibrator, calibration_profile=calibrator and dynamic and caps.major < 10,
                     dla_core=dla_core, int8_mode=mode, notes=tuple(notes))


def profile_shapes(input_spec: dict, batch: Optional[dict] = None) -> Tuple[Shape, Shape, Shape]:
    """``(min, opt, max)`` input shapes from the manifest's input spec.

    >>> profile_shapes({"layout": "NHWC", "shape": [-1, 24, 32, 3], "batch": {"min": 1, "opt": 4, "max": 8}})
    ((1, 24, 32, 3), (4, 24, 32, 3), (8, 24, 32, 3))
    """
    shape = [int(v) for v in input_spec["shape"]]
    b = batch or input_spec.get("batch") or {}
    n = shape[0] if shape[0] > 0 else 1
    lo, opt, hi = int(b.get("min", n)), int(b.get("opt", n)), int(b.get("max", n))
    if not (1 <= lo <= opt <= hi):
        raise ConfigError(f"batch range must satisfy 1 <= min <= opt <= max; got {lo}:{opt}:{hi}")
    rest = tuple(shape[1:])
    return (lo,) + rest, (opt,) + rest, (hi,) + rest


def trtexec_command(onnx: str, plan: BuildPlan, input_name: str, shapes: Tuple[Shape, Shape, Shape],
                    engine: str = "model.engine", workspace_gb: float = 1.0, calib_cache: Optional[str] = None) -> str:
    """The equivalent ``trtexec`` line, for users who compare with NVIDIA's tool."""
    parts = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}"]
    if "FP16" in plan.flags:
        parts.append("--fp16")
    if "INT8" in plan.flags:
        parts.append("--int8")
    if plan.strongly_typed and not plan.flags:
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


# --------------------------------------------------------------------------- the build
def _make_logger(trt):
    """A ``trt.ILogger`` that prints warnings and keeps every message for error reports."""

    class CollectingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: List[str] = []

        def log(self, severity, msg):
            self.messages.append(f"[{severity}] {msg}")
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                print(f"TensorRT {severity}: {msg}")

    return CollectingLogger()


def parse_errors(parser) -> List[str]:
    """Every error an ``OnnxParser`` holds, as strings (not just the first)."""
    out = []
    for i in range(int(parser.num_errors)):
        e = parser.get_error(i)
        try:
            out.append(f"{e.desc()} (node {e.node()}, {e.file()}:{e.line()})")
        except Exception:
            out.append(str(e))
    return out


def build_serialized_engine(trt, onnx_path: Union[str, Path], plan: BuildPlan, input_name: str,
                            shapes: Tuple[Shape, Shape, Shape], workspace_gb: float = 1.0,
                            timing_cache: Optional[Union[str, Path]] = None, calibrator=None) -> bytes:
    """Build a serialized engine (plan bytes) from ``onnx_path`` as ``plan`` says.

    Raises :class:`TensorRTBuildError` listing every parser error, or the logged errors when
    ``build_serialized_network`` returns ``None``.
    """
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if plan.explicit_batch:
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if plan.strongly_typed and hasattr(creation, "STRONGLY_TYPED"):
        flags |= 1 << int(creation.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = parse_errors(parser) or ["(the parser reported failure without errors)"]
        raise TensorRTBuildError(f"TensorRT {trt.__version__} cannot parse {onnx_path}:\n    " + "\n    ".join(errors),
                                 hint="check the ONNX opset (--opset) and re-export; onnx.checker must pass")

    config = builder.create_builder_config()
    nbytes = int(workspace_gb * (1 << 30))
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)
    else:  # 8.4 and older
        config.max_workspace_size = nbytes
    for name in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, name))

    profile = None
    inp = network.get_input(0)
    if any(int(d) < 0 for d in inp.shape) or shapes[0] != shapes[2]:
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name or input_name, *shapes)
        config.add_optimization_profile(profile)

    if plan.calibrator:
        if calibrator is None:
            raise TensorRTBuildError("the plan needs an INT8 calibrator and none was given")
        config.int8_calibrator = calibrator
        if plan.calibration_profile and profile is not None:
            config.set_calibration_profile(profile)

    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan.dla_core)

    if timing_cache is not None:
        attach_timing_cache(config, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [m for m in logger.messages if "ERROR" in m.upper()] or logger.messages[-5:]
        raise TensorRTBuildError(f"TensorRT {trt.__version__} failed to build a {plan.precision} engine from "
                                 f"{onnx_path}:\n    " + "\n    ".join(errors or ["(no log)"]),
                                 hint="try a larger --workspace-gb, or another precision")
    if timing_cache is not None:
        save_timing_cache(config, timing_cache)
    return memoryview(serialized).tobytes()


def import_tensorrt():
    """``tensorrt`` or ``None`` when it is not installed (callers decide whether that is fatal)."""
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt


def check_onnx_files(available: Sequence[str], plans: Sequence[BuildPlan]) -> None:
    """Raise when a plan needs an ONNX precision the bundle lacks."""
    missing = sorted({p.onnx_precision for p in plans} - set(available))
    if missing:
        raise ConfigError(f"the bundle has no ONNX file for {missing} (it has {sorted(available)})",
                          hint="re-export the bundle from the run with those precisions: "
                               f"edgepose-export RUN --out BUNDLE --precision {','.join(missing)}")
