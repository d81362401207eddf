"""Visible 3D points per frame, for the geometric reprojection loss.

:func:`visible_points` returns, in order of preference:

1. the frame's own points (COLMAP tracks, Cambridge NVM measurements), subsampled;
2. points back-projected from its depth map (7-Scenes ``*.depth.png``: uint16 millimetres,
   0 and 65535 invalid), a deterministic subsample of the valid pixels;
3. the **frustum fallback**: pixels drawn uniformly over the image at depths drawn
   uniformly in the scene's depth range (see :mod:`edgepose.datasets.scene`), flagged
   ``synthetic=True``. These points are not the scene; they make the reprojection loss a
   pose loss weighted like the camera sees it.

Sampling is seeded by ``seed`` and the image name (zlib.crc32), so it is the same on every
run and every machine, and different frames get different draws.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image

from ..errors import DataFormatError
from ..geometry import backproject
from ..image_decode import require_regular_file
from ..records import FrameRecord
from .scene import DEFAULT_DEPTH_RANGE, box_depth_range


def _rng(record: FrameRecord, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(Path(record.image).name.encode())])


def visible_points(record: FrameRecord, max_points: int = 256, seed: int = 0) -> Tuple[np.ndarray, bool]:
    """``(points (M, 3) float64 world metres, synthetic)`` with ``M <= max_points``."""
    rng = _rng(record, seed)
    if record.points is not None and len(record.points):
        pts = np.asarray(record.points, dtype=np.float64)
        if len(pts) > max_points:
            pts = pts[np.sort(rng.choice(len(pts), max_points, replace=False))]
        return pts, bool(record.points_synthetic)
    if record.depth is not None:
        pts = depth_points(record, max_points, rng)
        if len(pts):
            return pts, False
    return frustum_points(record, max_points, rng), True


def read_depth_m(record: FrameRecord) -> np.ndarray:
    """The depth map ``(h, w)`` in metres, NaN where invalid."""
    path = Path(record.depth)
    require_regular_file(path, "depth map")
    try:
        with Image.open(path) as im:
            raw = np.asarray(im)
    except FileNotFoundError:
        raise DataFormatError("depth map not found", path=path) from None
    except Exception as exc:
        raise DataFormatError(f"cannot decode the depth map ({exc})", path=path) from None
    if raw.ndim != 2:
        raise DataFormatError(f"expected a single-channel 16-bit depth PNG; found shape {raw.shape}", path=path)
    invalid = record.extra.get("depth_invalid", (0, 65535))
    scale = float(record.extra.get("depth_scale_m", 1e-3))
    d = raw.astype(np.float64) * scale
    d[np.isin(raw, invalid)] = np.nan
    return d


def depth_points(record: FrameRecord, max_points: int, rng: np.random.Generator) -> np.ndarray:
    d = read_depth_m(record)
    h, w = d.shape
    K = np.asarray(record.extra.get("depth_K", record.K), dtype=np.float64).copy()
    ref = record.extra.get("depth_K_size", (record.width, record.height))
    K[0, :] *= w / ref[0]
    K[1, :] *= h / ref[1]
    flat = np.flatnonzero(np.isfinite(d.ravel()))
    if len(flat) == 0:
        return np.zeros((0, 3))
    take = np.sort(rng.choice(len(flat), min(max_points, len(flat)), replace=False))
    idx = flat[take]
    v, u = np.divmod(idx, w)
    uv = np.stack([u + 0.5, v + 0.5], -1)  # pixel centres, origin at the image corner
    return backproject(uv, d.ravel()[idx], K, record.position, record.rotation)


def frame_depth_range(record: FrameRecord) -> Tuple[float, float]:
    """``(near, far)``: ``extra["depth_range"]``, else from ``extra["scene_box"]``, else the default."""
    if "depth_range" in record.extra:
        near, far = record.extra["depth_range"]
        return float(near), float(far)
    if "scene_box" in record.extra:
        return box_depth_range(record.position, record.rotation, record.extra["scene_box"])
    return DEFAULT_DEPTH_RANGE


def frustum_points(record: FrameRecord, max_points: int, rng: np.random.Generator) -> np.ndarray:
    near, far = frame_depth_range(record)
    uv = rng.uniform([0.0, 0.0], [record.width, record.height], size=(max_points, 2))
    z = rng.uniform(near, far, size=max_points)
    return backproject(uv, z, record.K, record.position, record.rotation)


def attach_points(frames, max_points: int = 256, seed: int = 0) -> None:
    """Fill ``points`` / ``points_synthetic`` of every frame that has no points, in place."""
    for f in frames:
        if f.points is None or not len(f.points):
            f.points, f.points_synthetic = visible_points(f, max_points, seed)
