"""Image files -> ``uint8 (H, W, 3)`` RGB, the one decoding rule of training and the runtime.

What Pillow's plain ``convert("RGB")`` gets wrong, and what happens instead:

==========================  =====================================  ==============================
stored pixels               ``convert("RGB")``                     here
==========================  =====================================  ==============================
16-bit grayscale (PNG/TIF)  clipped at 255: all white              scaled by the type's range,
                                                                   ``round(v * 255 / 65535)``
                                                                   (OpenCV's ``imread`` keeps the
                                                                   high byte the same way)
32-bit float (TIFF ``F``)   clipped: black for 0..1 data           refused: floats have no fixed
                                                                   range (0..1? 0..255? metres?)
32-bit integer (``I``)      clipped                                as 16-bit when 0..65535, else
                                                                   refused
EXIF Orientation 2..8       ignored: the pixels stay as stored     applied (the image is shown
                                                                   upright, as every viewer does)
==========================  =====================================  ==============================

Sizes read from headers (:func:`upright_size`) apply the same orientation, so intrinsics
and decoded pixels always agree. Only regular files are opened: a FIFO named like an image
would block forever. Encoded images in memory (a ROS ``CompressedImage``) go through
:func:`decode_bytes`, the same rules; its caller may name its own 16-bit rule (``gray16``).
"""
from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import numpy as np
from PIL import Image

from .errors import DataFormatError

ORIENTATION_TAG = 0x0112
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
             6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
FLOAT_HINT = "save the frames as 8-bit or 16-bit PNG/JPEG (edgepose cannot guess the range of float pixels)"


def require_regular_file(path: Union[str, Path], what: str = "file") -> None:
    """Raise DataFormatError unless ``path`` is a regular file (FIFOs and devices block or never end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataFormatError(f"{what} not found", path=path) from None
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"cannot open this {what} ({getattr(exc, 'strerror', None) or exc})", path=path) from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise DataFormatError(f"expected a regular {what}; found {kind}", path=path,
                              hint="replace it with the real file (edgepose opens only regular files)")


def orientation(im: Image.Image, header_only: bool = False) -> int:
    """The EXIF Orientation (1..8; 1 when absent or unreadable).

    ``header_only`` never decodes pixels: a PNG whose eXIf chunk follows the pixel data
    (rare; Pillow and cameras write it first) then counts as upright.
    """
    if header_only and im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        o = int(im.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # a corrupt EXIF block is not worth refusing the image for
        return 1
    return o if o in TRANSPOSE else 1


def upright_size(path: Union[str, Path]) -> Tuple[int, int]:
    """``(width, height)`` as decoded by :func:`decode_rgb8` (EXIF orientation applied), from the header."""
    require_regular_file(path, "image")
    try:
        with Image.open(path) as im:
            w, h = int(im.size[0]), int(im.size[1])
            return (h, w) if orientation(im, header_only=True) >= 5 else (w, h)
    except DataFormatError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt headers
        raise DataFormatError(f"cannot read the image header ({exc})", path=path,
                              hint="the file is corrupt or not an image") from None


def full_range16(a: np.ndarray) -> np.ndarray:
    """16-bit values (``(H, W)``, 0..65535) -> ``uint8`` by the type's range: ``round(v * 255 / 65535)``."""
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


Gray16 = Callable[[np.ndarray], np.ndarray]


def to_rgb8(im: Image.Image, path: Optional[Union[str, Path]] = "image", gray16: Optional[Gray16] = None) -> np.ndarray:
    """A loaded PIL image as ``uint8 (H, W, 3)`` by the rules in the module docstring.

    ``gray16`` maps 16-bit pixels (``uint16 (H, W)``) to ``uint8``; default :func:`full_range16`.
    Errors name ``path`` (``None``: no path, e.g. bytes from a message).
    """
    method = TRANSPOSE.get(orientation(im))
    if method is not None:
        im = im.transpose(method)
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode == "F":
        raise DataFormatError("32-bit float pixels: refused (no defined range to map to 8-bit)", path=path,
                              hint=FLOAT_HINT)
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        a = np.asarray(im)
        if a.ndim != 2:
            raise DataFormatError(f"unexpected {mode} image of shape {a.shape}", path=path, hint=FLOAT_HINT)
        if mode == "I" and a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            raise DataFormatError(f"32-bit integer pixels outside 0..65535 (found {int(a.min())}..{int(a.max())}): "
                                  "refused (no defined range to map to 8-bit)", path=path, hint=FLOAT_HINT)
        g = (gray16 or full_range16)(a.astype(np.uint16))
        return np.repeat(g[:, :, None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def decode_rgb8(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as ``uint8 (H, W, 3)`` RGB, upright. Bad files raise DataFormatError."""
    require_regular_file(path, "image")
    return _decode(path, path)


def decode_bytes(data: bytes, gray16: Optional[Gray16] = None) -> np.ndarray:
    """An encoded image in memory (PNG, JPEG, ...) as ``uint8 (H, W, 3)`` RGB by the rules of
    :func:`decode_rgb8` (EXIF orientation, float refusal, corrupt data), with ``gray16`` as
    the 16-bit rule (default :func:`full_range16`). Bad data raises DataFormatError."""
    return _decode(io.BytesIO(bytes(data)), None, gray16)


def _decode(fp, path, gray16: Optional[Gray16] = None) -> np.ndarray:
    try:
        with Image.open(fp) as im:
            im.load()
            return to_rgb8(im, path, gray16)
    except DataFormatError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise DataFormatError(f"cannot decode the image ({exc})", path=path,
                              hint="the file is corrupt or not an image") from None
