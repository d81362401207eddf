"""The 7-Scenes file layout the synthetic scene is written in (read by the 7-Scenes reader).

::

    OUT/seq-01/frame-000000.color.png   RGB, 8 bit
    OUT/seq-01/frame-000000.depth.png   16-bit grey, depth along the optical axis z in
                                        millimetres, 65535 = invalid / no hit
    OUT/seq-01/frame-000000.pose.txt    4x4 T_world_from_camera (camera-to-world), 4 lines,
                                        tab-separated, OpenCV camera axes
    OUT/TrainSplit.txt, OUT/TestSplit.txt   one line per sequence: ``sequence1``
    OUT/intrinsics.txt                  the 3x3 K (pixels of the stored images), 3 lines
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Union

import numpy as np
from PIL import Image

from ..geometry import pose_to_matrix

DEPTH_INVALID = 65535
#: largest depth (m) a 16-bit millimetre map can hold before the invalid code
DEPTH_MAX_M = (DEPTH_INVALID - 1) / 1000.0
#: zlib level of the PNGs: fast to write, still lossless
PNG_LEVEL = 1

PathLike = Union[str, Path]


def sequence_dir(number: int) -> str:
    """``seq-01`` for sequence 1."""
    return f"seq-{int(number):02d}"


def frame_stem(index: int) -> str:
    """``frame-000000`` for frame 0."""
    return f"frame-{int(index):06d}"


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """``uint16 (H, W)`` millimetres of depths ``(H, W)`` metres; non-finite, non-positive or
    too far (> 65.534 m) become :data:`DEPTH_INVALID`."""
    d = np.asarray(depth_m, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0) & (d <= DEPTH_MAX_M)
    mm = np.where(ok, np.rint(np.where(ok, d, 0) * 1000.0), DEPTH_INVALID)
    return mm.astype(np.uint16)


def write_color(path: PathLike, rgb: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(path, format="PNG", compress_level=PNG_LEVEL)


def write_depth(path: PathLike, depth_m: np.ndarray) -> None:
    """16-bit PNG of :func:`depth_to_mm` (PIL mode ``I;16``)."""
    mm = depth_to_mm(depth_m)
    Image.fromarray(mm.astype("<u2")).save(path, format="PNG", compress_level=PNG_LEVEL)


def pose_text(position: np.ndarray, rotation: np.ndarray) -> str:
    """The 4 tab-separated lines of a ``.pose.txt`` (``T_world_from_camera``)."""
    T = pose_to_matrix(np.asarray(position, np.float64), np.asarray(rotation, np.float64))
    return "".join("\t".join(f"{v:.9e}" for v in row) + "\n" for row in T)


def intrinsics_text(K: np.ndarray) -> str:
    return "".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in np.asarray(K, np.float64))


def split_text(numbers: Iterable[int]) -> str:
    """Lines ``sequence<N>``, one per sequence, as 7-Scenes' TrainSplit.txt / TestSplit.txt."""
    return "".join(f"sequence{int(n)}\n" for n in numbers)


def read_depth_m(path: PathLike) -> np.ndarray:
    """``float32 (H, W)`` metres of a depth PNG; invalid pixels are ``nan``."""
    with Image.open(path) as im:
        mm = np.asarray(im).astype(np.float32)
    return np.where(mm == DEPTH_INVALID, np.nan, mm / 1000.0).astype(np.float32)
