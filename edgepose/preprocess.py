"""The one image preprocessing rule, shared by training evaluation and the runtime.

Rule: scale the image (keeping its aspect ratio, bilinear) so that it *covers* the network
resolution ``(W, H)``, then crop the centre. The result is ``uint8 (H, W, 3)`` RGB; casting
and mean/std normalisation happen inside the model graph (see README, "Conventions").
:func:`adjust_intrinsics` applies the same rule to a camera matrix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
from PIL import Image

from .errors import EdgePoseError
from .image_decode import decode_rgb8, to_rgb8

Size = Tuple[int, int]  # (width, height)


def load_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as ``uint8 (H, W, 3)`` RGB, upright (EXIF orientation applied),
    16-bit grayscale scaled by its range; float images and corrupt files raise a
    :class:`~edgepose.errors.DataFormatError` (an :class:`EdgePoseError`). The rules:
    :mod:`edgepose.image_decode`."""
    return decode_rgb8(path)


EXPECTED_IMAGE = "a uint8 (H, W, 3) RGB array (or (H, W) grey), a PIL image or an image file path"


def check_image(image) -> None:
    """Raise :class:`EdgePoseError` saying what is expected unless ``image`` is a non-empty
    ``uint8 (H, W, 3)`` / ``(H, W)`` array or a PIL image.

    Floats are refused rather than cast (a 0..1 float image would become black, NaN garbage);
    a ``(3, H, W)`` array is named as channels-first.

    >>> check_image(np.zeros((4, 4, 3), np.uint8))
    >>> check_image(np.zeros((3, 4, 5), np.uint8))
    Traceback (most recent call last):
    ...
    edgepose.errors.EdgePoseError: image has shape (3, 4, 5): channels first (CHW); expected ...
    """
    if isinstance(image, Image.Image):
        if image.size[0] < 1 or image.size[1] < 1:
            raise EdgePoseError(f"image is empty ({image.size[0]}x{image.size[1]} pixels); expected {EXPECTED_IMAGE}")
        return
    if not isinstance(image, np.ndarray):
        raise EdgePoseError(f"image is {type(image).__name__}; expected {EXPECTED_IMAGE}")
    shape = tuple(image.shape)
    if image.size == 0:
        raise EdgePoseError(f"image is empty (shape {shape}); expected {EXPECTED_IMAGE}")
    if image.ndim == 3 and shape[0] in (1, 3) and shape[2] not in (1, 3):
        raise EdgePoseError(f"image has shape {shape}: channels first (CHW); expected {EXPECTED_IMAGE}",
                            hint="transpose it: image.transpose(1, 2, 0)")
    if not (image.ndim == 2 or (image.ndim == 3 and shape[2] == 3)):
        raise EdgePoseError(f"image has shape {shape}; expected {EXPECTED_IMAGE}")
    if image.dtype != np.uint8:
        bad = ""
        if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
            bad = f", with {int((~np.isfinite(image)).sum())} NaN/inf value(s)"
        raise EdgePoseError(f"image has dtype {image.dtype}{bad}; expected {EXPECTED_IMAGE}",
                            hint="convert it: np.clip(image * 255, 0, 255).astype(np.uint8) for 0..1 floats")


def crop_box(src: Size, dst: Size) -> Tuple[float, float, float, float, float]:
    """``(scale, x0, y0, x1, y1)``: the scale and the crop window, in source pixels."""
    sw, sh = src
    dw, dh = dst
    scale = max(dw / sw, dh / sh)
    cw, ch = dw / scale, dh / scale
    x0 = (sw - cw) / 2.0
    y0 = (sh - ch) / 2.0
    return scale, x0, y0, x0 + cw, y0 + ch


def resize_crop(image: Union[np.ndarray, Image.Image], size: Size, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Apply the rule to ``image`` (``uint8 (h, w, 3)`` or a PIL image) for ``size = (W, H)``.

    When ``out`` (``uint8 (H, W, 3)``, e.g. a pooled host buffer) is given the result is
    written into it and ``out`` is returned: no new array is kept.
    """
    check_image(image)
    if isinstance(image, Image.Image):
        im = image if image.mode == "RGB" else Image.fromarray(to_rgb8(image))
    else:
        im = Image.fromarray(image)  # uint8 (H, W, 3) or (H, W): checked above
        if im.mode != "RGB":
            im = im.convert("RGB")
    W, H = int(size[0]), int(size[1])
    if im.size == (W, H):
        res = im
    else:
        _, x0, y0, x1, y1 = crop_box(im.size, (W, H))
        res = im.resize((W, H), Image.BILINEAR, box=(x0, y0, x1, y1))
    arr = np.asarray(res)
    if out is None:
        return np.array(arr, dtype=np.uint8, copy=True)
    if out.shape != (H, W, 3) or out.dtype != np.uint8:
        raise EdgePoseError(f"output buffer is {out.dtype}{out.shape}; expected uint8{(H, W, 3)}")
    out[...] = arr
    return out


def adjust_intrinsics(K: np.ndarray, src: Size, dst: Size) -> np.ndarray:
    """``K (3, 3)`` of the source image mapped through the resize/crop rule to ``dst``."""
    scale, x0, y0, _, _ = crop_box(src, dst)
    K = np.array(K, dtype=np.float64, copy=True)
    K[0, 2] -= x0
    K[1, 2] -= y0
    # pixel-centre convention: continuous coordinates scale about the origin at the corner
    K[0, :] *= scale
    K[1, :] *= scale
    return K


def load_and_preprocess(path: Union[str, Path], size: Size, out: Optional[np.ndarray] = None) -> np.ndarray:
    """:func:`load_image` then :func:`resize_crop`."""
    return resize_crop(load_image(path), size, out=out)
