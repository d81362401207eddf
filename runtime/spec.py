"""Batches for the model's input contract.

``manifest["input"]`` says what the network takes (README, "Conventions"); the core reads
it into an :class:`~edgepose.input_spec.InputSpec` (re-exported here with
:class:`~edgepose.input_spec.InputMismatchError`). :func:`preprocess_batch` turns images of any
size into such a batch with THE preprocessing rule, :func:`edgepose.preprocess.resize_crop`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from edgepose.input_spec import InputMismatchError, InputSpec
from edgepose.preprocess import resize_crop

__all__ = ["InputSpec", "InputMismatchError", "allocate_batch", "write_frame", "preprocess_batch"]


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
        if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (H, W, 3):
            np.copyto(out, image)  # already the input's size (a camera graph's frame): the host only copies
        else:
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
