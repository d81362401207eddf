"""The preprocessing rule's resize as matrices, so a graph can do it on the device.

:func:`edgepose.preprocess.resize_crop` scales a frame to cover the network size with Pillow's
BILINEAR filter over the crop box. Downscaling, that filter is anti-aliased: each output pixel
is a triangle-weighted mean of the source pixels within ``scale`` of its centre, the weights
normalised to sum to 1 (Pillow's ``Resample.c``, ``precompute_coeffs``). The resize is
separable, so it is two matrices::

    out (H, W) = A_y (H, h) @ frame (h, w) @ A_x.T (w, W)      (per channel)

:func:`resample_matrix` computes one of them the way Pillow does. A 1920-pixel row times a
(1920, 128) matrix is a lot of multiply-adds for nothing (most weights are 0), so
:func:`pooled_resample` first averages ``k x k`` pixel blocks (an ``AveragePool``, one read of
every pixel) and folds the weights of each block's pixels into one weight
(:func:`pool_weights`): the same filter sampled in steps of ``k`` pixels. ``k`` is chosen
so the triangle, ``2 * scale`` pixels wide, still spans at least :data:`MIN_TAPS` blocks.

Pillow rounds to uint8 between its horizontal and vertical pass and uses fixed-point weights;
these float matrices differ from it by about one grey level (tests/core/test_resample.py
measures both against Pillow itself).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .errors import ConfigError
from .preprocess import crop_box

Size = Tuple[int, int]  # (width, height)
#: the fewest pooled blocks the filter spans. The block mean costs exactness: on the demo
#: model, 1920x1080 frames moved the pose by 4.3 mm (median) with k = 2 and by 0.3 mm with
#: Pillow's exact weights (k = 1), against a 0.435 m median error (benchmarks/results/
#: camera_graph.md). 16 keeps k = 1 up to 8x downscaling of the crop (1920x1080 to 128x96 is
#: 11.25x: 22.5-pixel triangles, 1.4 blocks of 16 -> k = 1) and pools beyond (4K: k = 2)
MIN_TAPS = 16


def resample_matrix(in_size: int, out_size: int, box: Tuple[float, float]) -> np.ndarray:
    """``float64 (out_size, in_size)``: row ``i`` holds the weights of output pixel ``i``.

    ``box = (lo, hi)`` is the source interval (pixels, continuous coordinates) mapped onto the
    output, as Pillow's ``resize(..., box=...)`` takes it; the filter may read source pixels
    outside the box (up to the image border), as Pillow's does.

    >>> m = resample_matrix(4, 2, (0.0, 4.0))
    >>> m.sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    >>> resample_matrix(3, 3, (0.0, 3.0)).round(6).tolist()  # same size: the identity
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    lo, hi = float(box[0]), float(box[1])
    if not (in_size >= 1 and out_size >= 1 and 0 <= lo < hi <= in_size):
        raise ConfigError(f"cannot resample {in_size} pixels over [{lo}, {hi}) to {out_size}")
    scale = (hi - lo) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear (triangle) filter has support 1
    out = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        center = lo + (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        x = np.arange(xmin, xmax, dtype=np.float64)
        w = np.clip(1.0 - np.abs((x - center + 0.5) / filterscale), 0.0, None)
        total = w.sum()
        if total > 0:
            out[i, xmin:xmax] = w / total
    return out


def separable(rows: np.ndarray, frame: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``rows (H, h) @ frame (h, w, C) @ cols.T (w, W)`` per channel -> ``(H, W, C)``."""
    t = np.tensordot(rows, frame, axes=(1, 0))          # (H, w, C)
    return np.tensordot(cols, t, axes=(1, 1)).transpose(1, 0, 2)  # (W, H, C) -> (H, W, C)


def pool_factor(in_size: int, out_size: int, box: Tuple[float, float], min_taps: int = MIN_TAPS) -> int:
    """The block size ``k`` for :func:`pooled_resample`: the largest with the filter (``2 *
    scale`` source pixels wide) spanning at least ``min_taps`` blocks; 1 when not downscaling.

    >>> pool_factor(1920, 128, (240.0, 1680.0))   # 11.25 source pixels per output pixel
    1
    >>> pool_factor(3840, 128, (480.0, 3360.0))   # 4K: 22.5 source pixels per output pixel
    2
    >>> pool_factor(640, 128, (0.0, 640.0))
    1
    """
    scale = (float(box[1]) - float(box[0])) / out_size
    return max(1, int(math.floor(2.0 * scale / min_taps)))


def pool_weights(matrix: np.ndarray, start: int, k: int, cells: int) -> np.ndarray:
    """Fold ``matrix (out, in)`` onto ``cells`` blocks of ``k`` pixels from ``start``:
    ``(out, cells)``, block ``j`` weighted by the sum of its pixels' weights (the block's
    mean times that sum is the weighted sum when the weights are flat across the block). A
    pixel outside the blocks (the image's last ``in % k`` pixels) gives its weight to the
    nearest block, so every row still sums to 1."""
    cell = np.clip((np.arange(matrix.shape[1]) - start) // k, 0, cells - 1)
    out = np.zeros((matrix.shape[0], cells), np.float64)
    np.add.at(out.T, cell, matrix.T)
    return out


@dataclass(frozen=True)
class AxisPlan:
    """One axis of a pooled resample: read source pixels ``[start, start + cells * k)``,
    average blocks of ``k``, then ``weights (out, cells)``."""

    start: int
    k: int
    cells: int
    weights: np.ndarray

    @property
    def stop(self) -> int:
        return self.start + self.cells * self.k


def _axis_plan(in_size: int, out_size: int, box: Tuple[float, float], k: int) -> AxisPlan:
    m = resample_matrix(in_size, out_size, box)
    used = np.flatnonzero(m.any(axis=0))
    lo, hi = int(used[0]), int(used[-1]) + 1
    cells = min(-(-(hi - lo) // k), in_size // k)
    start = min(lo, in_size - cells * k)
    return AxisPlan(start, k, cells, pool_weights(m, start, k, cells))


@dataclass(frozen=True)
class PooledResample:
    """The resize of a ``src`` frame to ``dst`` under the preprocessing rule, as a crop, a
    ``k x k`` average pool and two small matrices (``y``: rows, ``x``: columns)."""

    src: Size
    dst: Size
    y: AxisPlan
    x: AxisPlan

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """``float64 (H, W, C)`` from ``frame (h, w, C)`` (the numpy twin of the ONNX graph): the
        block mean, then Pillow's order, columns first, each pass rounded to whole grey levels
        (Pillow keeps 8 bits between its passes; a trained network moves by millimetres for
        one grey level on a tenth of the pixels, so the rounding is part of the rule)."""
        f = np.asarray(frame, np.float64)[self.y.start:self.y.stop, self.x.start:self.x.stop]
        c = f.shape[2]
        f = f.reshape(self.y.cells, self.y.k, self.x.cells, self.x.k, c).mean(axis=(1, 3))
        t = np.rint(np.tensordot(self.x.weights, f, axes=(1, 1)).transpose(1, 0, 2))  # (cy, W, C)
        return np.rint(np.tensordot(self.y.weights, t, axes=(1, 0)))


def pooled_resample(src: Size, dst: Size, k: int = 0) -> PooledResample:
    """The :class:`PooledResample` of ``src = (w, h)`` to ``dst = (W, H)`` under the rule
    (cover, centre crop). ``k = 0`` picks :func:`pool_factor` (the same for both axes, since
    the rule scales both by the same factor); ``k = 1``: no block mean, Pillow's exact weights.

    >>> p = pooled_resample((3840, 2160), (128, 96))
    >>> (p.x.k, p.x.weights.shape, p.y.weights.shape)
    (2, (128, 1451), (96, 1080))
    """
    (w, h), (W, H) = (int(src[0]), int(src[1])), (int(dst[0]), int(dst[1]))
    if min(w, h, W, H) < 1:
        raise ConfigError(f"cannot resize {w}x{h} to {W}x{H}")
    _, x0, y0, x1, y1 = crop_box((w, h), (W, H))
    if k <= 0:
        k = min(pool_factor(w, W, (x0, x1)), pool_factor(h, H, (y0, y1)))
    return PooledResample((w, h), (W, H), _axis_plan(h, H, (y0, y1), k), _axis_plan(w, W, (x0, x1), k))
