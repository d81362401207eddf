"""``--filter kalman``: smoothing a stream of poses with each frame's own uncertainty.

Position: a constant-velocity Kalman filter per axis (state: position m, velocity m/s). The
measurement noise of a frame is its predicted sigma: ``sigma_position_m`` is an expected
Euclidean error, so each axis gets the variance :func:`edgepose.covariance.per_axis_variance`
gives (``sigma**2 * pi / 8``, the isotropic Gaussian whose norm has mean sigma; the same
mapping as the ROS covariance). Each filtered result carries the posterior as its
``covariance`` (position block = the filter's per-axis variances). A frame whose innovation has a
Mahalanobis distance beyond the chi-square gate (3 dof, 99.9 % by default) is an outlier:
it is rejected (the prediction is reported, ``filtered = "rejected"``); after
``max_rejects`` rejections in a row the filter restarts at the measurement (the camera
really moved, e.g. after a relocalisation).

Rotation: smoothed on the sphere with :func:`edgepose.geometry.quat_slerp` from the filtered
quaternion towards the measured one, by the scalar Kalman gain of the rotation variance
(prediction grows it by ``rot_rate_deg`` per second; the frame's ``sigma_rotation_deg`` is
its measurement noise).

Time is the frame's media ``timestamp`` (s).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from edgepose.covariance import per_axis_variance, sigma_to_covariance
from edgepose.errors import ConfigError
from edgepose.geometry import quat_canonical, quat_slerp

from .results import PoseResult

CHI2_3DOF = {0.99: 11.345, 0.999: 16.266}


class PoseFilter:
    """Constant-velocity Kalman filter on position + slerp smoothing of rotation.

    Args:
        accel_std: process noise, standard deviation of acceleration (m/s^2).
        rot_rate_deg: process noise of rotation, degrees per second (1-sigma).
        gate: chi-square gate probability (0.99 or 0.999), or ``None`` to disable gating.
        max_rejects: consecutive rejections after which the filter restarts.
        min_sigma_m / min_sigma_deg: floors on the per-frame sigmas.
    """

    def __init__(self, accel_std: float = 2.0, rot_rate_deg: float = 30.0, gate: Optional[float] = 0.999,
                 max_rejects: int = 5, min_sigma_m: float = 1e-3, min_sigma_deg: float = 0.01):
        self.accel_std = float(accel_std)
        self.rot_rate_deg = float(rot_rate_deg)
        self.gate = None if gate is None else CHI2_3DOF.get(gate, gate)
        self.max_rejects = int(max_rejects)
        self.min_sigma_m, self.min_sigma_deg = float(min_sigma_m), float(min_sigma_deg)
        self.reset()

    def reset(self) -> None:
        self.x: Optional[np.ndarray] = None  # (3, 2): [position, velocity] per axis
        self.P: Optional[np.ndarray] = None  # (3, 2, 2)
        self.q: Optional[np.ndarray] = None  # (4,)
        self.var_rot = 0.0  # deg^2
        self.t: Optional[float] = None
        self.rejects = 0
        self.rejected_total = 0

    def _start(self, z: np.ndarray, r: float, q: np.ndarray, r_rot: float, t: float) -> None:
        self.x = np.stack([z, np.zeros(3)], axis=1)
        self.P = np.zeros((3, 2, 2))
        self.P[:, 0, 0] = r
        self.P[:, 1, 1] = 1.0  # (m/s)^2: the speed is unknown at first
        self.q, self.var_rot, self.t, self.rejects = q, r_rot, t, 0

    def _predict(self, dt: float) -> None:
        F = np.array([[1.0, dt], [0.0, 1.0]])
        qa = self.accel_std ** 2
        Q = qa * np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]])
        self.x = self.x @ F.T
        self.P = F @ self.P @ F.T + Q
        self.var_rot += (self.rot_rate_deg * dt) ** 2

    def __call__(self, result: PoseResult) -> PoseResult:
        """Filter ``result`` in place (if ``ok``) and return it; frames must come in order."""
        if not result.ok or result.position is None:
            return result
        z = np.asarray(result.position, np.float64)
        r = per_axis_variance(max(result.sigma_position_m, self.min_sigma_m))
        zq = quat_canonical(result.rotation)
        r_rot = max(result.sigma_rotation_deg, self.min_sigma_deg) ** 2
        t = float(result.timestamp)
        if self.x is None or not math.isfinite(r):
            self._start(z, r, zq, r_rot, t)
            result.filtered = "filtered"
            return result
        dt = min(max(t - self.t, 1e-3), 5.0)
        self.t = t
        self._predict(dt)
        innov = z - self.x[:, 0]
        S = self.P[:, 0, 0] + r  # (3,)
        d2 = float(np.sum(innov ** 2 / S))
        if self.gate is not None and d2 > self.gate:
            self.rejects += 1
            self.rejected_total += 1
            if self.rejects > self.max_rejects:
                self._start(z, r, zq, r_rot, t)
                result.filtered = "filtered"
                return result
            self._write(result)
            result.filtered = "rejected"
            return result
        self.rejects = 0
        K = self.P[:, :, 0] / S[:, None]  # (3, 2)
        self.x = self.x + K * innov[:, None]
        I_KH = np.eye(2)[None] - K[:, :, None] * np.array([1.0, 0.0])[None, None, :]
        self.P = I_KH @ self.P
        k_rot = self.var_rot / (self.var_rot + r_rot)
        self.q = quat_slerp(self.q, zq, k_rot)
        self.var_rot *= (1.0 - k_rot)
        self._write(result)
        result.filtered = "filtered"
        return result

    def _write(self, result: PoseResult) -> None:
        result.position = self.x[:, 0].copy()
        result.rotation = self.q.copy()
        result.sigma_position_m = float(math.sqrt(np.sum(self.P[:, 0, 0])))
        result.sigma_rotation_deg = float(math.sqrt(self.var_rot))
        cov = sigma_to_covariance(0.0, math.radians(result.sigma_rotation_deg))
        cov[:3, :3] = np.diag(self.P[:, 0, 0])
        result.covariance = cov


def make_filter(name: Optional[str], **options) -> Optional[PoseFilter]:
    """``None`` for ``"none"``/``None``; :class:`PoseFilter` for ``"kalman"``."""
    if name in (None, "none"):
        return None
    if name == "kalman":
        return PoseFilter(**options)
    raise ConfigError(f"unknown filter {name!r}; expected 'none' or 'kalman'")
