"""Scene-level geometry the readers do not provide: where the cameras look, how deep.

Used for the synthetic reprojection points of sources without 3D points or depth.

Depth-range rule (documented default): if a bounding box of the scene is known
(Middlebury README), each camera's range is the nearest..farthest depth of the box's
corners in that camera. Otherwise the *scene centre* is the least-squares point closest to
all optical axes; when the axes converge on it (inward-facing captures: object scans,
NeRF sets) the range is ``0.5x .. 2x`` the median camera distance to it. When they do not
converge (forward-facing or driving captures) the range is ``0.5x .. 2x`` of
``max(1, median camera distance to the mean camera position)`` in the file's units, and a
problem is reported, since those points say little about the real scene.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..geometry import quat_to_matrix

#: (near, far) metres used when a frame carries no scene information at all
DEFAULT_DEPTH_RANGE = (0.5, 5.0)


def optical_axes_centre(positions: np.ndarray, rotations: np.ndarray) -> Optional[np.ndarray]:
    """Least-squares point ``(3,)`` nearest to every camera's optical axis, or None.

    None when the axes are close to parallel (poorly conditioned) or the point is behind
    most cameras. ``positions (N, 3)``, ``rotations (N, 4)`` camera-to-world.
    """
    P = np.asarray(positions, dtype=np.float64)
    d = quat_to_matrix(np.asarray(rotations, dtype=np.float64))[:, :, 2]  # (N, 3) optical axes
    if len(P) < 2:
        return None
    A = np.einsum("nij->ij", np.eye(3)[None] - d[:, :, None] * d[:, None, :])
    b = np.einsum("nij,nj->i", np.eye(3)[None] - d[:, :, None] * d[:, None, :], P)
    ev = np.linalg.eigvalsh(A)
    if ev[0] < 0.05 * len(P):  # the axes span too few directions (< ~13 degrees apart)
        return None
    c = np.linalg.solve(A, b)
    if np.median(np.einsum("ni,ni->n", c[None] - P, d)) <= 0:
        return None
    return c


def default_depth_range(positions: np.ndarray, rotations: np.ndarray) -> Tuple[float, float, bool]:
    """``(near, far, converged)`` for the whole scene by the rule in the module docstring."""
    P = np.asarray(positions, dtype=np.float64)
    c = optical_axes_centre(P, rotations)
    if c is not None:
        dist = float(np.median(np.linalg.norm(P - c, axis=1)))
        if dist > 0:
            return 0.5 * dist, 2.0 * dist, True
    spread = float(np.median(np.linalg.norm(P - P.mean(0), axis=1))) if len(P) else 0.0
    s = max(1.0, spread)
    return 0.5 * s, 2.0 * s, False


def box_depth_range(position: np.ndarray, rotation: np.ndarray, box: np.ndarray) -> Tuple[float, float]:
    """Nearest and farthest camera depth ``(near, far)`` of the corners of ``box (2, 3)``."""
    box = np.asarray(box, dtype=np.float64)
    corners = np.array([[box[i, 0], box[j, 1], box[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    z = (corners - np.asarray(position, dtype=np.float64)) @ quat_to_matrix(rotation)[:, 2]
    far = float(z.max())
    near = float(max(z.min(), 1e-3 * max(far, 1e-9)))
    if far <= near:  # the box is behind the camera: fall back to a thin shell at its distance
        dist = float(np.linalg.norm(box.mean(0) - position))
        return 0.5 * dist, 2.0 * dist
    return near, far
