"""The one image preprocessing rule, shared by training evaluation and the runtime.

Rule: scale the image (keeping its aspect ratio, bilinear) so that it *covers* the network
resolution ``(W, H)``, then crop the centre. The result is ``uint8 (H, W, 3)`` RGB; casting
and mean/std normalisation happen inside the model graph (see DESIGN.md, model contract).
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
    if isinstance(image, Image.Image):
        im = image if image.mode == "RGB" else Image.fromarray(to_rgb8(image))
    else:
        im = Image.fromarray(np.asarray(image, dtype=np.uint8))
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
