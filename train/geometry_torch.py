"""Differentiable pose geometry in torch, for the losses.

The same conventions as :mod:`edgepose.geometry` (numpy), and tests compare the two on random
inputs (``tests/train/test_geometry_torch.py``):

* quaternions are ``(w, x, y, z)``, Hamilton, camera-to-world, canonical ``w >= 0``;
* a pose is ``T_world_from_camera``: a world point ``X`` is at ``X_cam = R^T (X - position)``
  in the camera, ``R = quat_to_matrix(rotation)``;
* camera axes as OpenCV (x right, y down, z forward; depth = ``X_cam[..., 2]``).

Every function is written so that its value and gradient stay finite for every finite input
(no division by a depth that can be zero, no ``acos`` at 1 in a differentiated path).
Shapes are written with leading batch dimensions ``(..., 4)``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def quat_normalize(q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit quaternions ``(..., 4)``; a zero input stays finite (it is divided by ``eps``)."""
    return q / q.norm(dim=-1, keepdim=True).clamp_min(eps)


def quat_canonical(q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Normalise ``q (..., 4)`` and flip it onto ``w >= 0``.

    Ties at ``w == 0`` are broken by the first non-zero of ``x, y, z`` being positive, the rule
    of :func:`edgepose.geometry.quat_canonical`, so both libraries pick the same representative.
    """
    q = quat_normalize(q, eps)
    sign = torch.sign(q[..., :1])
    for i in (1, 2, 3):
        sign = torch.where(sign == 0, torch.sign(q[..., i:i + 1]), sign)
    return q * torch.where(sign == 0, torch.ones_like(sign), sign)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` (normalised first).

    ``q`` and ``-q`` give the same matrix (every entry is quadratic in ``q``).
    """
    q = quat_normalize(q)
    w, x, y, z = q.unbind(-1)
    row0 = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1)
    row1 = torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1)
    row2 = torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)
    return torch.stack([row0, row1, row2], dim=-2)


def world_to_camera_points(points: torch.Tensor, position: torch.Tensor,
                           rotation: torch.Tensor) -> torch.Tensor:
    """Camera-frame coordinates ``(N, M, 3)`` of world points ``(N, M, 3)``.

    ``position (N, 3)`` is the camera centre and ``rotation (N, 4)`` the camera-to-world
    quaternion, both in the units of ``points`` (metres or normalised scene units: the
    normalised image coordinates do not depend on the choice).
    """
    R = quat_to_matrix(rotation)                       # (N, 3, 3) camera-to-world
    d = points - position[..., None, :]                # (N, M, 3)
    return torch.einsum("nji,nmj->nmi", R, d)          # R^T d


def project_points(points: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor,
                   K: Optional[torch.Tensor] = None,
                   min_depth: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project world points ``(N, M, 3)`` into cameras ``position (N, 3)``, ``rotation (N, 4)``.

    Args:
        K: ``(N, 3, 3)`` or ``(3, 3)`` intrinsics in pixels, or ``None`` for identity
            (normalised image coordinates ``(x/z, y/z)``).
        min_depth: points at or below this depth (units of ``points``) are marked invalid.

    Returns:
        ``uv (N, M, 2)`` (pixels, or normalised units without ``K``), ``depth (N, M)`` and
        ``valid (N, M)`` bool, in front of the camera. ``uv`` of invalid points is finite
        (divided by 1 instead of the depth) and so is its gradient, but it means nothing:
        mask it out or replace it with ``torch.where``.
    """
    Xc = world_to_camera_points(points, position, rotation)
    depth = Xc[..., 2]
    valid = depth > min_depth
    z = torch.where(valid, depth, torch.ones_like(depth))
    uv = Xc[..., :2] / z[..., None]
    if K is not None:
        K = K.to(uv.dtype)
        if K.dim() == 2:
            K = K.expand(uv.shape[0], 3, 3)
        uv = torch.einsum("nij,nmj->nmi", K[:, :2, :2], uv) + K[:, None, :2, 2]
    return uv, depth, valid


def rotation_angle(q_pred: torch.Tensor, q_true: torch.Tensor) -> torch.Tensor:
    """Angle ``(...)`` in radians between rotations ``(..., 4)``; ``q`` and ``-q`` are equal.

    Computed as ``4·asin(d/2)`` with ``d = min(|q1 - q2|, |q1 + q2|)`` the chord between the
    unit quaternions, which equals ``2·acos(|<q1, q2>|)`` (the metric of
    :func:`edgepose.geometry.rotation_error_rad`) but has a finite gradient at zero error
    (a sub-gradient of 0 there, as for an L1 norm) and near 180 degrees.
    """
    a = quat_normalize(q_pred)
    b = quat_normalize(q_true)
    d = torch.minimum((a - b).norm(dim=-1), (a + b).norm(dim=-1))
    return 4.0 * torch.asin((d / 2.0).clamp(max=1.0))
