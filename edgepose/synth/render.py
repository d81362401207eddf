"""Vectorised ray casting of the room: all rays of a frame at once, in numpy.

Camera model: pinhole ``K`` in pixels, OpenCV axes (x right, y down, z forward), pose
``T_world_from_camera`` (position m, camera-to-world quaternion wxyz). Pixel ``(col, row)``
covers the continuous image square ``[col, col+1) x [row, row+1)``, so its centre is
``(col + 0.5, row + 0.5)``; this is the convention of :func:`edgepose.preprocess.adjust_intrinsics`
(scaling about the image corner) and the one to use when back-projecting a depth pixel.

Every camera-frame ray is ``(x, y, 1)``, so the hit distance ``t`` along it is the depth
along the optical axis (what 7-Scenes depth maps store).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ..errors import EdgePoseError
from ..geometry import quat_to_matrix
from .scene import LIGHT_RADIUS, Scene

Size = Tuple[int, int]  # (width, height)

AMBIENT = 0.38
DIFFUSE = 1.45


def intrinsics(size: Size, hfov_deg: float = 60.0) -> np.ndarray:
    """``K (3, 3)`` of a square-pixel camera with horizontal field of view ``hfov_deg``.

    The principal point is the image centre ``(W/2, H/2)`` (pixel-corner origin, see the
    module docstring).
    """
    W, H = int(size[0]), int(size[1])
    if W < 1 or H < 1:
        raise EdgePoseError(f"image size must be positive, got {W}x{H}")
    if not 1.0 < hfov_deg < 170.0:
        raise EdgePoseError(f"horizontal field of view must be in (1, 170) degrees, got {hfov_deg}")
    f = (W / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, W / 2.0], [0.0, f, H / 2.0], [0.0, 0.0, 1.0]])


def camera_rays(K: np.ndarray, size: Size, aa: int = 1) -> np.ndarray:
    """Camera-frame rays ``float32 (H, aa, W, aa, 3)`` with z = 1, ``aa x aa`` per pixel.

    Sub-sample ``(sy, sx)`` of pixel ``(row, col)`` passes through
    ``(col + (sx + 0.5) / aa, row + (sy + 0.5) / aa)``; with ``aa = 1`` that is the centre.
    """
    W, H = int(size[0]), int(size[1])
    K = np.asarray(K, dtype=np.float64)
    sub = (np.arange(aa) + 0.5) / aa
    u = (np.arange(W)[:, None] + sub[None, :]).reshape(-1)        # (W*aa,)
    v = (np.arange(H)[:, None] + sub[None, :]).reshape(-1)        # (H*aa,)
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y[:, None]) / K[0, 0]          # (H*aa, W*aa)
    rays = np.empty((H * aa, W * aa, 3), np.float32)
    rays[..., 0] = x
    rays[..., 1] = y[:, None]
    rays[..., 2] = 1.0
    return rays.reshape(H, aa, W, aa, 3)


def _box_window(lo, hi, o, R, K, aa, shape):
    """Slices ``(rows, cols)`` of the ray grid that can see box ``[lo, hi]``, or ``None``.

    Projects the 8 corners; a box wholly behind the camera is skipped, one straddling the
    image plane is tested over the whole grid.
    """
    c = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    Xc = (c - o) @ R                     # = R^T (c - o), rows are corners
    z = Xc[:, 2]
    if np.all(z <= 1e-6):
        return None
    Hs, Ws = shape
    if np.any(z <= 1e-3):
        return slice(0, Hs), slice(0, Ws)
    u = (K[0, 0] * Xc[:, 0] + K[0, 1] * Xc[:, 1]) / z + K[0, 2]
    v = K[1, 1] * Xc[:, 1] / z + K[1, 2]
    c0 = max(int(np.floor(u.min() * aa - 0.5)) - 1, 0)
    c1 = min(int(np.ceil(u.max() * aa - 0.5)) + 2, Ws)
    r0 = max(int(np.floor(v.min() * aa - 0.5)) - 1, 0)
    r1 = min(int(np.ceil(v.max() * aa - 0.5)) + 2, Hs)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def cast(scene: Scene, origin: np.ndarray, R: np.ndarray, K: np.ndarray, aa: int,
         cam_rays: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of every ray of a grid.

    Args:
        origin: ``(3,)`` camera centre, metres, inside the room's free space.
        R: ``(3, 3)`` camera-to-world rotation.
        K, aa: the intrinsics and supersampling the grid was made with (:func:`camera_rays`),
            used to restrict each box's test to the rays that can see it.
        cam_rays: ``float32 (3, Hs, Ws)`` camera-frame rays with z = 1 (components first:
            ``camera_rays(...).reshape(Hs, Ws, 3).transpose(2, 0, 1)``).

    Returns:
        ``t float32 (Hs, Ws)`` depth along the optical axis in metres (``inf``: no hit),
        ``face int64 (Hs, Ws)`` index into ``scene.faces`` (-1: no hit) and the world
        directions ``float32 (3, Hs, Ws)``.
    """
    o = np.asarray(origin, np.float64)
    R = np.asarray(R, np.float64)
    K = np.asarray(K, np.float64)
    Rf = R.astype(np.float32)
    x, y, z = cam_rays
    d = np.stack([Rf[i, 0] * x + Rf[i, 1] * y + Rf[i, 2] * z for i in range(3)])  # (3, Hs, Ws)
    of = o.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = 1.0 / np.where(d == 0, np.float32(1e-30), d)
        # room, seen from inside: leave through the plane each axis is heading to
        t = face = None
        for a in range(3):
            pos = d[a] > 0
            bound = np.where(pos, np.float32(scene.room_hi[a]), np.float32(scene.room_lo[a]))
            ta = (bound - of[a]) * inv[a]
            fa = 2 * a + pos
            if t is None:
                t, face = ta, fa.astype(np.int64)
            else:
                closer = ta < t
                t = np.where(closer, ta, t)
                face = np.where(closer, fa, face)
        # boxes, seen from outside: slab test on the window of rays that can see the box
        for b, (lo, hi) in enumerate(scene.boxes):
            win = _box_window(lo, hi, o, R, K, aa, t.shape)
            if win is None:
                continue
            near_t = far_t = near_a = None
            for a in range(3):
                t1 = (np.float32(lo[a]) - of[a]) * inv[a][win]
                t2 = (np.float32(hi[a]) - of[a]) * inv[a][win]
                n, f = np.minimum(t1, t2), np.maximum(t1, t2)
                if near_t is None:
                    near_t, far_t, near_a = n, f, np.zeros(n.shape, np.int64)
                else:
                    later = n > near_t
                    near_t = np.where(later, n, near_t)
                    near_a = np.where(later, a, near_a)
                    far_t = np.minimum(far_t, f)
            tw = t[win]
            hit = (near_t <= far_t) & (near_t > 0) & (near_t < tw)
            if not hit.any():
                continue
            d_along = np.choose(near_a, [d[0][win], d[1][win], d[2][win]])
            fb = 6 + 6 * b + 2 * near_a + (d_along < 0)
            t[win] = np.where(hit, near_t, tw)
            face[win] = np.where(hit, fb, face[win])
    bad = ~np.isfinite(t) | (t <= 0)
    if bad.any():
        t = np.where(bad, np.float32(np.inf), t)
        face = np.where(bad, -1, face)
    return t.astype(np.float32), face.astype(np.int64), d


def shade(scene: Scene, origin: np.ndarray, d: np.ndarray, t: np.ndarray, face: np.ndarray) -> np.ndarray:
    """``float32 (..., 3)`` colours in [0, 255] of the hits from :func:`cast`.

    ``d (3, ...)`` world directions, ``t (...)`` and ``face (...)`` as :func:`cast` returns.
    Texture by integer lookup in the atlas (nearest texel), lit by one point light:
    ``ambient + diffuse * max(<n, l>, 0) / (1 + (dist / R)^2)``. Misses are black.
    """
    miss = face < 0
    f = np.where(miss, 0, face)
    tt = np.where(miss, np.float32(0), t)
    fp = np.take(scene.face_params_t, f, axis=1)     # (11, ...): right, up, normal, u0, v0
    fi = np.take(scene.face_index_t, f, axis=1)      # (3, ...): width, height, atlas offset
    P = [np.float32(origin[a]) + tt * d[a] for a in range(3)]
    L = [np.float32(scene.light[a]) - P[a] for a in range(3)]
    u = P[0] * fp[0] + P[1] * fp[1] + P[2] * fp[2] - fp[9]
    v = fp[10] - (P[0] * fp[3] + P[1] * fp[4] + P[2] * fp[5])
    lam = L[0] * fp[6] + L[1] * fp[7] + L[2] * fp[8]
    d2 = L[0] * L[0] + L[1] * L[1] + L[2] * L[2]
    lam = np.maximum(lam, 0) / np.sqrt(np.maximum(d2, np.float32(1e-12)))
    w, h = fi[0], fi[1]
    col = np.clip((u * np.float32(scene.ppm)).astype(np.int64), 0, w - 1)
    row = np.clip((v * np.float32(scene.ppm)).astype(np.int64), 0, h - 1)
    texel = scene.atlas[fi[2] + row * w + col]                    # (..., 3) uint8
    gain = np.float32(AMBIENT) + np.float32(DIFFUSE) * lam / (1.0 + d2 / np.float32(LIGHT_RADIUS ** 2))
    gain = np.where(miss, np.float32(0), gain)
    return texel.astype(np.float32) * gain[..., None]


class Renderer:
    """Renders RGB and depth of one scene for one camera; rays are computed once.

    ``aa`` is the supersampling factor per axis for colour (``aa x aa`` rays per pixel,
    box-filtered); depth always comes from the pixel-centre ray, so a depth pixel
    back-projects exactly onto the surface.
    """

    def __init__(self, scene: Scene, K: np.ndarray, size: Size, aa: int = 2):
        if int(aa) < 1:
            raise EdgePoseError(f"supersampling factor must be >= 1, got {aa}")
        self.scene, self.K, self.size, self.aa = scene, np.asarray(K, np.float64), (int(size[0]), int(size[1])), int(aa)
        W, H = self.size
        sub = camera_rays(self.K, self.size, self.aa).reshape(H * self.aa, W * self.aa, 3)
        self._sub = np.ascontiguousarray(sub.transpose(2, 0, 1))
        self._centre = None
        if self.aa % 2 == 0:
            centre = camera_rays(self.K, self.size, 1).reshape(H, W, 3)
            self._centre = np.ascontiguousarray(centre.transpose(2, 0, 1))

    def render(self, position: np.ndarray, rotation: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``rgb uint8 (H, W, 3)`` and ``depth float32 (H, W)`` metres (``inf`` = no hit)."""
        W, H = self.size
        a = self.aa
        R = quat_to_matrix(np.asarray(rotation, np.float64))
        o = np.asarray(position, np.float64)
        t, face, d = cast(self.scene, o, R, self.K, a, self._sub)
        col = shade(self.scene, o, d, t, face)
        if a > 1:  # box filter of the a x a sub-samples
            col = col.reshape(H, a, W, a, 3)
            acc = col[:, 0].copy()
            for i in range(1, a):
                acc += col[:, i]
            rgb = acc.sum(axis=2) * np.float32(1.0 / (a * a))
        else:
            rgb = col
        rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        if self._centre is None:
            c = a // 2
            depth = t.reshape(H, a, W, a)[:, c, :, c]
        else:
            depth = cast(self.scene, o, R, self.K, 1, self._centre)[0]
        return rgb, np.ascontiguousarray(depth)
