"""What one export does: :class:`ExportConfig` (as ``TrainConfig`` is for training).

``edgepose-export`` parses its flags into an :class:`ExportConfig` and hands it to
:func:`edgepose.export.api.export_bundle`; Python callers and the benchmarks build one
directly::

    from edgepose.export import ExportConfig, export_bundle
    result = export_bundle(ExportConfig("runs/dino", out="bundles/dino", precisions=["fp32", "fp16"]))

Every field has the CLI's default; :meth:`ExportConfig.check` raises :class:`ConfigError`
naming the flag for a value out of range. The text parsers of the CLI
(:func:`parse_precisions`, :func:`parse_batch`) live here too, so the CLI only wires them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from edgepose.bundle import PRECISIONS
from edgepose.bundle_files import CAMERA_CHANNELS
from edgepose.errors import ConfigError
from edgepose.frame_choice import CALIBRATION_FRAMES
from edgepose.input_spec import MAX_SIDE

CALIB_METHODS = ("minmax", "entropy", "percentile")
INT8_ENGINE_MODES = ("qdq", "calibrator")
ENGINE_MODES = ("auto", "yes", "no")
INPUT_KINDS = ("uint8", "float32")
DEFAULT_VAL_FRAMES = 200
DEFAULT_OPSET = 17
#: precisions exported from a run when none are asked (a bundle source: every ONNX it holds)
DEFAULT_RUN_PRECISIONS = ("fp32", "fp16")
GUIDE_EVERY = 10  # guided INT8 ranks layers on every 10th training frame ...
GUIDE_MAX_FRAMES = 64  # ... at most this many (each guided step evaluates them all)
PARITY_FRAMES = 8

#: the largest TensorRT builder workspace asked for (GB; an Orin has 64 GB in all) and DLA core index
MAX_WORKSPACE_GB = 1024.0
MAX_DLA_CORE = 7

@dataclass
class ExportConfig:
    """One export: a run/checkpoint -> a bundle, or a bundle -> its engines.

    Attributes (CLI flag in brackets):
        source: a training run folder, a checkpoint file, or an existing bundle (then only
            engines are built).
        out: bundle folder to write [--out]; default ``source`` when it is a bundle.
        overwrite: export into an ``out`` that holds files no export wrote [--overwrite]; they are
            kept (moved aside when named like a bundle file), never deleted.
        precisions: subset of ``fp32, fp16, int8`` [--precision]; ``None`` = fp32,fp16 from a
            run, every ONNX precision of a bundle. ``model.onnx`` (fp32) is always written.
        allow_slow_precision: build FP16/INT8 engines where TensorRT calls them slow.
        calib: dataset for calibration and validation [--calib]; default the run's dataset.
        calib_frames, calib_method: INT8 calibration frames (training split) and range method.
        int8_max_drift_m, int8_max_drift_deg: guided mixed precision bounds (None = plain INT8).
        int8_engine: ``"qdq"`` or ``"calibrator"`` (TensorRT implicit calibration).
        guided_max_steps: at most this many units are left in float by guided INT8 (Python API).
        batch: fixed batch size; dynamic_batch: ``(min, opt, max)`` profile or None.
        input: ``"uint8"`` NHWC or ``"float32"`` NCHW 0..255 graph input.
        opset, simplify: ONNX opset and whether onnxsim runs.
        fp16_keep_heads_fp32: also keep the FC and head Gemms in float32 in the FP16 pass
            (Python API; the benchmarks compare it).
        val_frames: test-split frames for accuracy and drift.
        max_drift_m, max_drift_deg: a precision whose median drift exceeds these fails the export.
        engine: ``"auto"`` | ``"yes"`` | ``"no"`` TensorRT engines.
        dla_core, workspace_gb, timing_cache_dir: TensorRT builder settings.
        camera_sizes: ``[(w, h)]`` camera frame sizes that get camera-resolution graphs
            [--camera-size]; camera_channels: ``"rgb"`` or ``"bgr"`` [--camera-channels].
        argv: the command line recorded in the manifest (the CLI fills it).
    """

    source: Path
    out: Optional[Path] = None
    overwrite: bool = False
    precisions: Optional[Sequence[str]] = None
    allow_slow_precision: bool = False
    calib: Optional[Path] = None
    calib_frames: int = CALIBRATION_FRAMES
    calib_method: str = "minmax"
    int8_max_drift_m: Optional[float] = None
    int8_max_drift_deg: Optional[float] = None
    int8_engine: str = "qdq"
    guided_max_steps: int = 32
    batch: int = 1
    dynamic_batch: Optional[Tuple[int, int, int]] = None
    input: str = "uint8"
    opset: int = DEFAULT_OPSET
    simplify: bool = True
    fp16_keep_heads_fp32: bool = False
    val_frames: int = DEFAULT_VAL_FRAMES
    max_drift_m: Optional[float] = None
    max_drift_deg: Optional[float] = None
    engine: str = "auto"
    dla_core: Optional[int] = None
    workspace_gb: float = 1.0
    timing_cache_dir: Optional[Path] = None
    camera_sizes: Sequence[Tuple[int, int]] = ()
    camera_channels: str = "rgb"
    argv: List[str] = field(default_factory=list)

    def __post_init__(self):
        self.source = Path(self.source)
        self.out = None if self.out is None else Path(self.out)
        self.calib = None if self.calib is None else Path(self.calib)
        if self.precisions is not None:
            self.precisions = canonical_precisions(self.precisions)

    @property
    def guided(self) -> bool:
        """Whether INT8 is guided mixed precision (a drift bound was given)."""
        return self.int8_max_drift_m is not None or self.int8_max_drift_deg is not None

    @property
    def batch_profile(self) -> Tuple[int, int, int]:
        """``(min, opt, max)`` batch sizes (all equal for a fixed batch)."""
        if self.dynamic_batch is not None:
            return tuple(int(v) for v in self.dynamic_batch)  # type: ignore[return-value]
        return (int(self.batch),) * 3  # type: ignore[return-value]

    def check(self) -> "ExportConfig":
        """Raise :class:`ConfigError` (naming the flag) for a value out of range; return self."""
        _choice("--calib-method", self.calib_method, CALIB_METHODS)
        _choice("--int8-engine", self.int8_engine, INT8_ENGINE_MODES)
        _choice("--engine", self.engine, ENGINE_MODES)
        _choice("--input", self.input, INPUT_KINDS)
        _choice("--camera-channels", self.camera_channels, CAMERA_CHANNELS)
        if self.camera_sizes and self.input != "uint8":
            raise ConfigError("--camera-size needs --input uint8: a camera graph takes the camera's uint8 frame",
                              hint="drop --input float32, or drop --camera-size")
        for w, h in self.camera_sizes:
            if not (1 <= int(w) <= MAX_SIDE and 1 <= int(h) <= MAX_SIDE):
                raise ConfigError(f"--camera-size {w}x{h}: each side must be 1..{MAX_SIDE} pixels")
        if self.dynamic_batch is None:
            if self.batch < 1:
                raise ConfigError(f"--batch must be >= 1; got {self.batch}")
        else:
            lo, opt, hi = self.batch_profile
            if not 1 <= lo <= opt <= hi:
                raise ConfigError(f"--dynamic-batch {lo}:{opt}:{hi}: needs 1 <= MIN <= OPT <= MAX")
        if not (isinstance(self.workspace_gb, (int, float)) and 0 < self.workspace_gb <= MAX_WORKSPACE_GB):
            raise ConfigError(f"--workspace-gb {self.workspace_gb}: expected a number in (0, {MAX_WORKSPACE_GB}] GB")
        if self.dla_core is not None and not 0 <= self.dla_core <= MAX_DLA_CORE:
            raise ConfigError(f"--dla-core {self.dla_core}: expected 0..{MAX_DLA_CORE} (Orin has DLA cores 0 and 1)")
        if self.calib_frames < 1:
            raise ConfigError(f"--calib-frames must be >= 1; got {self.calib_frames}")
        if self.val_frames < 1:
            raise ConfigError(f"--val-frames must be >= 1; got {self.val_frames}")
        for name in ("max_drift_m", "max_drift_deg", "int8_max_drift_m", "int8_max_drift_deg"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a number >= 0; got {v}")
        return self


def _choice(flag: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{flag} {value!r}: expected one of {', '.join(allowed)}")


def canonical_precisions(names: Sequence[str], flag: str = "--precision") -> List[str]:
    """``names`` in canonical order (fp32, fp16, int8); unknown or no names raise :class:`ConfigError`."""
    asked = [str(t).strip().lower() for t in names if str(t).strip()]
    unknown = [t for t in asked if t not in PRECISIONS]
    if unknown or not asked:
        raise ConfigError(f"{flag} {','.join(map(str, names))!r}: unknown precision "
                          f"{', '.join(unknown) or '(empty)'}; expected a comma list of {', '.join(PRECISIONS)}",
                          hint="e.g. --precision fp32,fp16,int8")
    return [p for p in PRECISIONS if p in asked]


def parse_precisions(text: Optional[str], default: Sequence[str]) -> List[str]:
    """``"fp16,int8"`` -> ``["fp16", "int8"]`` in canonical order; unknown names raise :class:`ConfigError`.

    >>> parse_precisions("int8, FP32", ())
    ['fp32', 'int8']
    >>> parse_precisions(None, ("fp32", "fp16"))
    ['fp32', 'fp16']
    """
    if text is None:
        return list(default)
    return canonical_precisions(text.split(","))


def parse_batch(batch: int, dynamic: Optional[str]) -> Tuple[Tuple[int, int, int], bool]:
    """``((min, opt, max), dynamic)`` from ``--batch`` / ``--dynamic-batch MIN:OPT:MAX``.

    >>> parse_batch(1, "1:4:8")
    ((1, 4, 8), True)
    """
    if dynamic is None:
        if batch < 1:
            raise ConfigError(f"--batch must be >= 1; got {batch}")
        return (batch, batch, batch), False
    try:
        lo, opt, hi = (int(v) for v in dynamic.split(":"))
    except ValueError:
        raise ConfigError(f"--dynamic-batch {dynamic!r}: expected MIN:OPT:MAX integers, e.g. 1:4:8") from None
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"--dynamic-batch {dynamic!r}: needs 1 <= MIN <= OPT <= MAX")
    return (lo, opt, hi), True
