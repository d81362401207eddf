"""The model's input contract, as the manifest's ``input`` section says it: :class:`InputSpec`.

One class writes it (the exporter, :meth:`InputSpec.for_model` -> :meth:`InputSpec.to_manifest`),
reads it (the runtime, :meth:`InputSpec.from_manifest`) and checks batches against it
(:meth:`InputSpec.check`)::

    {"name": "image", "dtype": "uint8", "layout": "NHWC", "shape": [N|-1, H, W, 3],
     "batch": {"min": 1, "opt": 1, "max": 1}}

or the float32 variant ``{"dtype": "float32", "layout": "NCHW", "shape": [N, 3, H, W],
"range": [0, 255]}`` (normalisation happens in the graph). ``N`` is ``-1`` for a dynamic batch.
Re-exported by :mod:`edgepose.bundle` (the manifest model) and :mod:`edgepose.runtime`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import BundleError, ConfigError, EdgePoseError
from .manifest_checks import MISSING, Checker, is_whole

#: graph input kinds: uint8 NHWC (normalisation in the graph) or float32 NCHW holding 0..255
INPUT_KINDS = {"uint8": "NHWC", "float32": "NCHW"}
#: the dtypes a manifest's input may declare
INPUT_DTYPES = ("uint8", "float32", "float16")
#: the largest network side (pixels) and batch a manifest or ``--input-size``/``--batch`` may ask
#: for: 8192x8192 RGB is 200 MB per uint8 frame, far beyond any pose network
MAX_SIDE = 8192
MAX_BATCH = 1024


def as_model_input(images: np.ndarray, kind: str) -> np.ndarray:
    """``uint8 (N, H, W, 3)`` frames in the layout/dtype an input ``kind`` expects: uint8 NHWC as
    they are, float32 NCHW (0..255) transposed and cast.

    >>> as_model_input(np.zeros((2, 4, 5, 3), np.uint8), "float32").shape
    (2, 3, 4, 5)
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise EdgePoseError(f"expected frames (N, H, W, 3); got shape {images.shape}")
    if kind == "uint8":
        return np.ascontiguousarray(images.astype(np.uint8))
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).astype(np.float32))


class InputMismatchError(EdgePoseError):
    """A batch handed to a runner does not match the model's input (shape, dtype, layout)."""


@dataclass(frozen=True)
class InputSpec:
    """What a model accepts.

    Attributes:
        name: graph input name (``"image"``).
        dtype: numpy dtype name, ``"uint8"`` or ``"float32"``.
        layout: ``"NHWC"`` or ``"NCHW"``.
        shape: 4 ints; the batch dimension is ``-1`` when dynamic.
        batch_min, batch_max: the accepted batch sizes; batch_opt: the size engines tune for.
    """

    name: str
    dtype: str
    layout: str
    shape: Tuple[int, int, int, int]
    batch_min: int = 1
    batch_max: int = 1
    batch_opt: Optional[int] = None

    @classmethod
    def for_model(cls, kind: str, size: Sequence[int], batch: Tuple[int, int, int] = (1, 1, 1),
                  dynamic: bool = False, name: str = "image") -> "InputSpec":
        """The spec of an exported graph: ``kind`` ``"uint8"``/``"float32"``, ``size = (W, H)``,
        ``batch = (min, opt, max)``.

        >>> InputSpec.for_model("uint8", (32, 24)).shape
        (1, 24, 32, 3)
        >>> InputSpec.for_model("float32", (32, 24), (1, 4, 8), dynamic=True).shape
        (-1, 3, 24, 32)
        """
        if kind not in INPUT_KINDS:
            raise ConfigError(f"--input {kind!r}: expected one of {', '.join(INPUT_KINDS)}")
        W, H = int(size[0]), int(size[1])
        lo, opt, hi = (int(v) for v in batch)
        if not (1 <= W <= MAX_SIDE and 1 <= H <= MAX_SIDE):
            raise ConfigError(f"input size {W}x{H}: expected each side in 1..{MAX_SIDE} pixels")
        if not 1 <= lo <= opt <= hi <= MAX_BATCH:
            raise ConfigError(f"batch min {lo}, opt {opt}, max {hi}: expected 1 <= min <= opt <= max <= {MAX_BATCH}")
        n = -1 if dynamic else opt
        shape = (n, H, W, 3) if kind == "uint8" else (n, 3, H, W)
        return cls(name, kind, INPUT_KINDS[kind], shape, lo, hi, opt)

    @classmethod
    def from_manifest(cls, manifest: dict, where: str = "edgepose.json") -> "InputSpec":
        """Read ``manifest["input"]``; :class:`BundleError` naming ``where`` and each bad key."""
        check = Checker()
        section = check.obj(manifest, "input", "input") if isinstance(manifest, dict) else None
        spec = cls.from_json(section, check) if section is not None else None
        if check.problems or spec is None:
            raise BundleError(f"{where}: the input section is not one this edgepose reads:\n    "
                              + "\n    ".join(check.problems or ["input is missing"]),
                              hint="re-export the bundle (edgepose-export RUN --out BUNDLE)")
        return spec

    @classmethod
    def from_json(cls, inp: dict, check: Checker, key: str = "input") -> Optional["InputSpec"]:
        """The spec in the manifest's ``input`` object, or ``None`` with each problem added to
        ``check``: dtype, layout, 4 dimensions with 3 channels where the layout puts them,
        sides in 1..:data:`MAX_SIDE`, a batch of ``-1`` (dynamic) or 1..:data:`MAX_BATCH`, and
        ``batch {min, opt, max}`` with ``1 <= min <= opt <= max`` that a static batch equals."""
        name = check.text(inp, "name", f"{key}.name", default="image")
        dtype = check.text(inp, "dtype", f"{key}.dtype", choices=INPUT_DTYPES, default="uint8")
        layout = check.text(inp, "layout", f"{key}.layout", choices=("NHWC", "NCHW"), default="NHWC")
        shape = inp.get("shape", MISSING)
        if not (isinstance(shape, list) and len(shape) == 4 and all(is_whole(v) for v in shape)):
            check.bad(f"{key}.shape", shape, "4 whole numbers [N, H, W, 3] (NHWC) or [N, 3, H, W] (NCHW)")
            return None
        if layout is None:
            return None
        n, dims = shape[0], (shape[1:3] if layout == "NHWC" else shape[2:4])
        channels = shape[3] if layout == "NHWC" else shape[1]
        problems = len(check.problems)
        if not (n == -1 or 1 <= n <= MAX_BATCH):
            check.note(f"{key}.shape is {shape}: its batch {n} is not -1 (dynamic) or 1..{MAX_BATCH}")
        if not all(1 <= v <= MAX_SIDE for v in dims) or channels != 3:
            check.note(f"{key}.shape is {shape}: expected height and width in 1..{MAX_SIDE} and 3 channels "
                       f"({layout})")
        batch = check.obj(inp, "batch", f"{key}.batch", required=False)
        fixed = n if n > 0 else None
        lo = hi = opt = fixed if fixed is not None else 1
        if batch is not None:
            lo = check.whole(batch, "min", f"{key}.batch.min", 1, MAX_BATCH, default=lo)
            hi = check.whole(batch, "max", f"{key}.batch.max", 1, MAX_BATCH, default=hi if fixed else lo)
            opt = check.whole(batch, "opt", f"{key}.batch.opt", 1, MAX_BATCH, default=lo)
            if None not in (lo, opt, hi) and not lo <= opt <= hi:  # type: ignore[operator]
                check.note(f"{key}.batch is min {lo}, opt {opt}, max {hi}: expected 1 <= min <= opt <= max")
            elif fixed is not None and not lo == hi == fixed:
                check.note(f"{key}.batch is min {lo}, max {hi} but the graph's batch is fixed at {fixed} "
                           f"({key}.shape {shape}): every other batch size would fail")
        if len(check.problems) > problems or None in (name, dtype, lo, opt, hi):
            return None
        return cls(name, dtype, layout, tuple(shape), lo, hi, opt)  # type: ignore[arg-type]

    def to_manifest(self) -> dict:
        """The manifest's ``input`` section (what :meth:`from_manifest` reads back)."""
        spec = {"name": self.name, "dtype": self.dtype, "layout": self.layout, "shape": list(self.shape)}
        if self.dtype == "float32":
            spec.update({"range": [0, 255], "note": "RGB 0..255; mean/std normalisation is inside the graph"})
        spec["batch"] = {"min": self.batch_min, "opt": self.opt, "max": self.batch_max}
        return spec

    def to_json(self) -> dict:
        """A short form for reports: name, dtype, layout, shape, batch min/max."""
        return {"name": self.name, "dtype": self.dtype, "layout": self.layout, "shape": list(self.shape),
                "batch": {"min": self.batch_min, "max": self.batch_max}}

    @property
    def opt(self) -> int:
        """The batch size engines are tuned for (``batch_opt``, else the fixed or smallest batch)."""
        if self.batch_opt is not None:
            return self.batch_opt
        return self.shape[0] if self.shape[0] > 0 else self.batch_min

    @property
    def dynamic(self) -> bool:
        return self.shape[0] < 0

    @property
    def size(self) -> Tuple[int, int]:
        """Network resolution ``(W, H)``."""
        if self.layout == "NHWC":
            return self.shape[2], self.shape[1]
        return self.shape[3], self.shape[2]

    def batch_shape(self, n: int) -> Tuple[int, int, int, int]:
        return (int(n),) + tuple(self.shape[1:])  # type: ignore[return-value]

    def describe(self, n: Optional[int] = None) -> str:
        dims = list(self.shape) if n is None else list(self.batch_shape(n))
        dims = ["N" if d < 0 else d for d in dims]
        return f"{self.dtype} {self.layout} {dims} (batch {self.batch_min}..{self.batch_max})"

    def check(self, batch) -> np.ndarray:
        """Return ``batch`` as a C-contiguous array, or raise :class:`InputMismatchError`.

        Says what was expected and what was received, and how to build a valid batch.
        """
        hint = "build batches with edgepose.runtime.preprocess_batch(images, runner.input_spec)"
        if not isinstance(batch, np.ndarray):
            raise InputMismatchError(f"input {self.name!r}: expected a numpy array "
                                     f"{self.describe()}, received {type(batch).__name__}", hint=hint)
        if batch.ndim != 4:
            raise InputMismatchError(f"input {self.name!r}: expected 4 dimensions {self.describe()}, "
                                     f"received {batch.ndim} dimensions {list(batch.shape)}", hint=hint)
        if batch.dtype != np.dtype(self.dtype):
            raise InputMismatchError(f"input {self.name!r}: expected dtype {self.dtype} ({self.layout}), "
                                     f"received {batch.dtype}", hint=hint)
        n = batch.shape[0]
        want = self.batch_shape(n)
        if tuple(batch.shape[1:]) != want[1:]:
            other = "NCHW" if self.layout == "NHWC" else "NHWC"
            looks_other = tuple(batch.shape[1:]) == (tuple(np.array(want)[[3, 1, 2]]) if self.layout == "NHWC"
                                                      else tuple(np.array(want)[[2, 3, 1]]))
            extra = f" (it looks like {other}: transpose it)" if looks_other else ""
            raise InputMismatchError(f"input {self.name!r}: expected shape {self.describe(n)} in layout "
                                     f"{self.layout}, received {list(batch.shape)}{extra}", hint=hint)
        if not (self.batch_min <= n <= self.batch_max):
            raise InputMismatchError(f"input {self.name!r}: batch size {n} is outside the bundle's range "
                                     f"{self.batch_min}..{self.batch_max}",
                                     hint="split the batch, or re-export with a larger --batch")
        return np.ascontiguousarray(batch)
