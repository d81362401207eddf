"""Rotations, poses, projection and pose errors, in numpy.

Conventions (pinned by ``tests/core/test_geometry.py``):

* Quaternions are ``(w, x, y, z)``, Hamilton product, unit length. A pose's quaternion
  rotates camera-frame vectors into the world frame (camera-to-world). The canonical
  representative has ``w >= 0``; ``q`` and ``-q`` are the same rotation.
* A pose is ``T_world_from_camera``: ``position`` is the camera centre in the world frame
  (metres), ``rotation`` the camera-to-world quaternion. A world point ``X`` is seen in the
  camera at ``X_cam = R^T (X - position)`` where ``R = quat_to_matrix(rotation)``.
* Camera axes follow OpenCV: x right, y down, z forward (depth = ``X_cam[..., 2]``).
* Angles are radians inside; the error helpers that say ``deg`` return degrees.

All functions accept leading batch dimensions: shapes are written as ``(..., 4)``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .errors import EdgePoseError

# --------------------------------------------------------------------------- quaternions
def quat_canonical(q: np.ndarray) -> np.ndarray:
    """Normalise ``q (..., 4)`` to unit length and flip it onto the ``w >= 0`` hemisphere.

    Ties at ``w == 0`` are broken by the first non-zero of ``x, y, z`` being positive, so the
    representative is unique. Raises :class:`EdgePoseError` for zero or non-finite input.
    """
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.all(np.isfinite(q)) or np.any(n < 1e-12):
        raise EdgePoseError("quaternion must be finite and non-zero", hint="check the rotation data")
    q = q / n
    sign = np.sign(q[..., :1])
    # break w == 0 ties deterministically on x, then y, then z
    for i in (1, 2, 3):
        sign = np.where(sign == 0, np.sign(q[..., i : i + 1]), sign)
    return q * np.where(sign == 0, 1.0, sign)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate ``(w, -x, -y, -z)``; the inverse rotation for unit ``q (..., 4)``."""
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` of ``(..., 4)`` quaternions: rotate by ``b`` then by ``a``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """Canonical quaternions ``(..., 4)`` of rotation matrices ``(..., 3, 3)``.

    Uses the largest of the four diagonal combinations (Shepperd's method), so it stays
    accurate near 180 degrees where ``w`` is close to 0.
    """
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    tr = m00 + m11 + m22
    cands = np.stack([tr, m00, m11, m22], axis=-1)
    k = np.argmax(cands, axis=-1)
    q = np.empty(R.shape[:-2] + (4,))
    # case w largest
    s = np.sqrt(np.maximum(1.0 + tr, 1e-300)) * 2
    qw = np.stack([0.25 * s, (R[..., 2, 1] - R[..., 1, 2]) / s, (R[..., 0, 2] - R[..., 2, 0]) / s,
                   (R[..., 1, 0] - R[..., 0, 1]) / s], -1)
    s = np.sqrt(np.maximum(1.0 + m00 - m11 - m22, 1e-300)) * 2
    qx = np.stack([(R[..., 2, 1] - R[..., 1, 2]) / s, 0.25 * s, (R[..., 0, 1] + R[..., 1, 0]) / s,
                   (R[..., 0, 2] + R[..., 2, 0]) / s], -1)
    s = np.sqrt(np.maximum(1.0 - m00 + m11 - m22, 1e-300)) * 2
    qy = np.stack([(R[..., 0, 2] - R[..., 2, 0]) / s, (R[..., 0, 1] + R[..., 1, 0]) / s, 0.25 * s,
                   (R[..., 1, 2] + R[..., 2, 1]) / s], -1)
    s = np.sqrt(np.maximum(1.0 - m00 - m11 + m22, 1e-300)) * 2
    qz = np.stack([(R[..., 1, 0] - R[..., 0, 1]) / s, (R[..., 0, 2] + R[..., 2, 0]) / s,
                   (R[..., 1, 2] + R[..., 2, 1]) / s, 0.25 * s], -1)
    q = np.choose(k[..., None], [qw, qx, qy, qz])
    return quat_canonical(q)


def quat_slerp(q0: np.ndarray, q1: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation from ``q0`` (t=0) to ``q1`` (t=1) along the shorter arc.

    ``q0, q1 (..., 4)``; ``t`` scalar or ``(...)``. Returns canonical unit quaternions.
    """
    q0 = quat_canonical(q0)
    q1 = quat_canonical(q1)
    t = np.asarray(t, dtype=np.float64)[..., None]
    d = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(d < 0, -q1, q1)
    d = np.abs(d)
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    sin_t = np.sin(theta)
    small = sin_t < 1e-9
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(small, 1.0, sin_t))
    w1 = np.where(small, t, np.sin(t * theta) / np.where(small, 1.0, sin_t))
    return quat_canonical(w0 * q0 + w1 * q1)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (..., 3)`` by quaternions ``q (..., 4)``."""
    R = quat_to_matrix(q)
    return np.einsum("...ij,...j->...i", R, np.asarray(v, dtype=np.float64))


def validate_quaternions(q: np.ndarray, tol: float = 1e-2) -> np.ndarray:
    """Boolean mask ``(...)``: finite, non-zero and within ``tol`` of unit length."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1)
    return np.all(np.isfinite(q), axis=-1) & (np.abs(n - 1.0) <= tol)


# --------------------------------------------------------------------------- poses
def pose_from_world_to_camera(R_cw: np.ndarray, t_cw: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Convert a world-to-camera ``[R | t]`` (``x_cam = R X + t``) to our pose.

    ``R_cw (..., 3, 3)``, ``t_cw (..., 3)`` -> ``(position (..., 3) m, rotation (..., 4))``
    with ``position = -R^T t`` (the camera centre) and ``rotation = quat(R^T)``.
    """
    R_cw = np.asarray(R_cw, dtype=np.float64)
    t_cw = np.asarray(t_cw, dtype=np.float64)
    R_wc = np.swapaxes(R_cw, -1, -2)
    position = -np.einsum("...ij,...j->...i", R_wc, t_cw)
    return position, matrix_to_quat(R_wc)


def camera_center(R_cw: np.ndarray, t_cw: np.ndarray) -> np.ndarray:
    """Camera centre ``C = -R^T t`` ``(..., 3)`` of a world-to-camera ``[R | t]``."""
    return pose_from_world_to_camera(R_cw, t_cw)[0]


def world_to_camera(position: np.ndarray, rotation: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pose_from_world_to_camera`: ``(R_cw (..., 3, 3), t_cw (..., 3))``."""
    R_wc = quat_to_matrix(rotation)
    R_cw = np.swapaxes(R_wc, -1, -2)
    t_cw = -np.einsum("...ij,...j->...i", R_cw, np.asarray(position, dtype=np.float64))
    return R_cw, t_cw


def pose_to_matrix(position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous ``T_world_from_camera`` ``(..., 4, 4)``."""
    position = np.asarray(position, dtype=np.float64)
    T = np.zeros(position.shape[:-1] + (4, 4))
    T[..., :3, :3] = quat_to_matrix(rotation)
    T[..., :3, 3] = position
    T[..., 3, 3] = 1.0
    return T


def matrix_to_pose(T: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(position (..., 3), rotation (..., 4))`` of a 4x4 ``T_world_from_camera``.

    The rotation block is re-orthonormalised (SVD) first, since files store rounded values.
    """
    T = np.asarray(T, dtype=np.float64)
    U, _, Vt = np.linalg.svd(T[..., :3, :3])
    R = U @ Vt
    det = np.linalg.det(R)
    if np.any(det < 0):
        raise EdgePoseError("pose matrix has a reflection (det < 0), not a rotation",
                            hint="check the handedness of the source convention")
    return T[..., :3, 3].copy(), matrix_to_quat(R)


def compose_poses(p_ab: np.ndarray, q_ab: np.ndarray, p_bc: np.ndarray, q_bc: np.ndarray):
    """``T_ac = T_ab · T_bc`` for poses given as (position, rotation). Returns ``(p_ac, q_ac)``."""
    p_ac = np.asarray(p_ab, dtype=np.float64) + quat_rotate(q_ab, p_bc)
    return p_ac, quat_canonical(quat_multiply(q_ab, q_bc))


def invert_pose(position: np.ndarray, rotation: np.ndarray):
    """``T^-1`` of a pose given as (position, rotation). Returns ``(position, rotation)``."""
    q_inv = quat_conjugate(quat_canonical(rotation))
    return -quat_rotate(q_inv, position), quat_canonical(q_inv)


# --------------------------------------------------------------------------- projection
def project_points(points_world: np.ndarray, position: np.ndarray, rotation: np.ndarray,
                   K: Optional[np.ndarray] = None, min_depth: float = 1e-6):
    """Project world points into a camera.

    Args:
        points_world: ``(M, 3)`` or ``(..., M, 3)`` metres, world frame.
        position: ``(..., 3)`` camera centre, metres.
        rotation: ``(..., 4)`` camera-to-world quaternion.
        K: ``(3, 3)`` or ``(..., 3, 3)`` intrinsics in pixels; ``None`` means identity
            (normalised image coordinates ``x/z, y/z``).
        min_depth: points with camera depth at or below this (metres) are masked.

    Returns:
        ``uv (..., M, 2)`` (pixels, or normalised units when ``K`` is ``None``),
        ``depth (..., M)`` metres along the optical axis, ``valid (..., M)`` bool
        (in front of the camera). ``uv`` of invalid points is finite but meaningless.
    """
    R_cw, t_cw = world_to_camera(position, rotation)
    X = np.asarray(points_world, dtype=np.float64)
    Xc = np.einsum("...ij,...mj->...mi", R_cw, X) + t_cw[..., None, :]
    depth = Xc[..., 2]
    valid = depth > min_depth
    z = np.where(valid, depth, 1.0)
    xy = Xc[..., :2] / z[..., None]
    if K is not None:
        K = np.asarray(K, dtype=np.float64)
        xy = np.einsum("...ij,...mj->...mi", K[..., :2, :2], xy) + K[..., None, :2, 2]
    return xy, depth, valid


def backproject(uv: np.ndarray, depth: np.ndarray, K: np.ndarray,
                position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """World points ``(M, 3)`` of pixels ``uv (M, 2)`` with depths ``(M,)`` m in a camera."""
    K = np.asarray(K, dtype=np.float64)
    uv = np.asarray(uv, dtype=np.float64)
    x = (uv[:, 0] - K[0, 2]) / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    Xc = np.stack([x, y, np.ones_like(x)], -1) * np.asarray(depth, dtype=np.float64)[:, None]
    return quat_rotate(rotation, Xc) + np.asarray(position, dtype=np.float64)


def look_at(position: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world quaternion of a camera at ``position`` whose +z looks at ``target``.

    The image's y axis (down) is aligned with ``-up`` as far as possible.
    """
    position = np.asarray(position, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - position
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    up = np.broadcast_to(np.asarray(up, dtype=np.float64), z.shape)
    x = np.cross(z, up)  # right = forward x up
    nx = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(nx < 1e-9):
        raise EdgePoseError("look_at: viewing direction is parallel to 'up'", hint="pick another up vector")
    x = x / nx
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=-1)  # columns = camera axes in world
    return matrix_to_quat(R)


# --------------------------------------------------------------------------- errors
def translation_error(p_pred: np.ndarray, p_true: np.ndarray) -> np.ndarray:
    """Euclidean distance ``(...)`` in metres between positions ``(..., 3)``."""
    return np.linalg.norm(np.asarray(p_pred, np.float64) - np.asarray(p_true, np.float64), axis=-1)


def rotation_error_rad(q_pred: np.ndarray, q_true: np.ndarray) -> np.ndarray:
    """Angle ``2·acos(|<q1, q2>|)`` ``(...)`` in radians; ``q`` and ``-q`` count as equal."""
    a = np.asarray(q_pred, np.float64)
    b = np.asarray(q_true, np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    d = np.abs(np.sum(a * b, axis=-1))
    return 2.0 * np.arccos(np.clip(d, 0.0, 1.0))


def rotation_error_deg(q_pred: np.ndarray, q_true: np.ndarray) -> np.ndarray:
    """:func:`rotation_error_rad` in degrees."""
    return np.degrees(rotation_error_rad(q_pred, q_true))
