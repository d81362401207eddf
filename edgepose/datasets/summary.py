"""What ``edgepose-inspect`` reports about a dataset, as plain data."""
from __future__ import annotations

from collections import Counter
from typing import Dict

import numpy as np

from ..geometry import quat_to_matrix
from .loader import LoadReport


def summarize(report: LoadReport) -> Dict[str, object]:
    """Counts, sizes, intrinsics, scene extent and what 3D data exists (JSON-ready)."""
    ds = report.dataset
    frames = ds.frames
    P = np.stack([f.position for f in frames])
    sizes = Counter(f"{f.width}x{f.height}" for f in frames)
    Ks = Counter(tuple(np.round(np.asarray(f.K)[[0, 1, 0, 1], [0, 1, 2, 2]], 2)) for f in frames)
    fx, fy, cx, cy = Ks.most_common(1)[0][0]
    with_points = [f for f in frames if f.points is not None and len(f.points) and not f.points_synthetic]
    with_depth = [f for f in frames if f.depth is not None]
    z = quat_to_matrix(np.stack([f.rotation for f in frames]))[:, :, 2]
    lo, hi = P.min(0), P.max(0)
    return {
        "format": ds.format,
        "root": str(ds.root),
        "split_policy": str(report.policy),
        "splits": ds.counts(),
        "sequences": sorted({f.sequence for f in frames if f.sequence}),
        "image_sizes": dict(sizes.most_common()),
        "intrinsics": {"distinct": len(Ks), "most_common": {"fx": fx, "fy": fy, "cx": cx, "cy": cy}},
        "scene_extent": {
            "min": lo.tolist(), "max": hi.tolist(), "size": (hi - lo).tolist(),
            "centre": ((lo + hi) / 2).tolist(),
            "mean_view_direction": (z.mean(0) / max(np.linalg.norm(z.mean(0)), 1e-12)).tolist(),
        },
        "points": {
            "frames_with_points": len(with_points),
            "median_points_per_frame": float(np.median([len(f.points) for f in with_points])) if with_points else 0.0,
            "frames_with_depth": len(with_depth),
            "frames_synthetic": len(frames) - len(with_points) - len(with_depth),
        },
        "errors": list(report.errors),
        "problems": list(ds.problems),
    }
