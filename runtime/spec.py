"""The model's input contract, read from the manifest, and the batch builder.

``manifest["input"]`` says what the network takes (DESIGN.md, model contract)::

    {"name": "image", "dtype": "uint8", "layout": "NHWC", "shape": [N|-1, H, W, 3],
     "batch": {"min": 1, "opt": 1, "max": 1}}

or the float32 variant ``{"dtype": "float32", "layout": "NCHW", "shape": [N, 3, H, W]}`` with
values 0..255 (normalisation happens in the graph). :func:`preprocess_batch` turns images of
any size into such a batch with THE preprocessing rule, :func:`edgepose.preprocess.resize_crop`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from edgepose.errors import BundleError, EdgePoseError
from edgepose.preprocess import resize_crop


class InputMismatchError(EdgePoseError):
    """A batch handed to a runner does not match the model's input (shape, dtype, layout)."""


@dataclass(frozen=True)
class InputSpec:
    """What a runner accepts.

    Attributes:
        name: graph input name (``"image"``).
        dtype: numpy dtype name, ``"uint8"`` or ``"float32"``.
        layout: ``"NHWC"`` or ``"NCHW"``.
        shape: 4 ints; the batch dimension is ``-1`` when dynamic.
        batch_min, batch_max: the accepted batch sizes.
    """

    name: str
    dtype: str
    layout: str
    shape: Tuple[int, int, int, int]
    batch_min: int = 1
    batch_max: int = 1

    @classmethod
    def from_manifest(cls, manifest: dict, where: str = "edgepose.json") -> "InputSpec":
        inp = manifest.get("input") or {}
        try:
            shape = tuple(int(v) for v in inp["shape"])
            layout = str(inp.get("layout", "NHWC")).upper()
            dtype = str(inp.get("dtype", "uint8"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: input spec is incomplete ({exc}); found {inp!r}",
                              hint="re-export the bundle") from None
        if layout not in ("NHWC", "NCHW") or len(shape) != 4:
            raise BundleError(f"{where}: input layout {layout!r} with shape {list(shape)}; "
                              "expected NHWC [N,H,W,3] or NCHW [N,3,H,W]", hint="re-export the bundle")
        if dtype not in ("uint8", "float32", "float16"):
            raise BundleError(f"{where}: input dtype {dtype!r}; expected uint8 or float32",
                              hint="re-export the bundle")
        batch = inp.get("batch") or {}
        n = shape[0]
        bmin = int(batch.get("min", n if n > 0 else 1))
        bmax = int(batch.get("max", n if n > 0 else bmin))
        return cls(str(inp.get("name", "image")), dtype, layout, shape, bmin, bmax)

    @property
    def size(self) -> Tuple[int, int]:
        """Network resolution ``(W, H)``."""
        if self.layout == "NHWC":
            return self.shape[2], self.shape[1]
        return self.shape[3], self.shape[2]

    def batch_shape(self, n: int) -> Tuple[int, int, int, int]:
        return (int(n),) + tuple(self.shape[1:])

    def describe(self, n: Optional[int] = None) -> str:
        dims = list(self.shape) if n is None else list(self.batch_shape(n))
        dims = ["N" if d < 0 else d for d in dims]
        return f"{self.dtype} {self.layout} {dims} (batch {self.batch_min}..{self.batch_max})"

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "layout": self.layout, "shape": list(self.shape),
                "batch": {"min": self.batch_min, "max": self.batch_max}}

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


def allocate_batch(spec: InputSpec, n: int = 1) -> np.ndarray:
    """A zeroed batch array of ``n`` frames in the spec's dtype and layout (plain numpy)."""
    return np.zeros(spec.batch_shape(n), dtype=np.dtype(spec.dtype))


def write_frame(image, spec: InputSpec, out: np.ndarray, scratch: Optional[np.ndarray] = None) -> None:
    """Preprocess one image into ``out`` (one frame of a batch: ``(H,W,3)`` or ``(3,H,W)``).

    NHWC uint8 is written in place by :func:`resize_crop`; NCHW float goes through the
    ``uint8 (H, W, 3)`` ``scratch`` (allocate it once and reuse it) and a transposing copy.
    """
    W, H = spec.size
    if spec.layout == "NHWC" and out.dtype == np.uint8:
        resize_crop(image, (W, H), out=out)
        return
    if scratch is None:
        scratch = np.empty((H, W, 3), dtype=np.uint8)
    resize_crop(image, (W, H), out=scratch)
    if spec.layout == "NHWC":
        np.copyto(out, scratch, casting="unsafe")
    else:
        np.copyto(out, scratch.transpose(2, 0, 1), casting="unsafe")


def preprocess_batch(images: Sequence, spec: InputSpec, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Build a batch for ``spec`` from ``images`` (each ``uint8 (h, w, 3)`` of any size, or PIL).

    Each image goes through THE rule (resize to cover, centre crop; the trainer's evaluation
    uses the same function) and is written straight into ``out`` when given (shape
    ``spec.batch_shape(len(images))``, e.g. a pooled or pinned buffer). Returns the batch.
    """
    images = list(images)
    n = len(images)
    if out is None:
        out = allocate_batch(spec, n)
    elif tuple(out.shape) != spec.batch_shape(n) or out.dtype != np.dtype(spec.dtype):
        raise InputMismatchError(f"output buffer is {out.dtype}{list(out.shape)}; expected "
                                 f"{spec.dtype}{list(spec.batch_shape(n))} for {n} images")
    scratch = None if (spec.layout == "NHWC" and spec.dtype == "uint8") else np.empty(
        (spec.size[1], spec.size[0], 3), np.uint8)
    for i, im in enumerate(images):
        write_frame(im, spec, out[i], scratch)
    return out
