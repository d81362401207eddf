"""Pose covariance in ROS conventions, from each frame's sigma (numpy only).

**What sigma is.** The network's uncertainty heads are trained with a Laplace negative
log-likelihood on the per-frame errors (``edgepose.train.losses.laplace_nll``), whose minimiser
is ``b = E[err]``: ``sigma = [expected Euclidean position error (m), expected rotation angle
error (rad)]`` of the frame. Sigma is a *mean norm*, not a per-axis standard deviation.

**The mapping.** A covariance needs a distribution. We take the error as an isotropic
3-D Gaussian per block: position error ``e ~ N(0, s_p² I3)`` and rotation error as a rotation
vector ``w ~ N(0, s_r² I3)`` (the angle is ``|w|``), independent. The norm of such a vector
follows the chi distribution with 3 degrees of freedom, whose mean is
``s · 2·sqrt(2/pi)`` (``CHI3_MEAN`` = 1.5958). Matching that mean to sigma gives the per-axis
variance::

    s² = sigma² / CHI3_MEAN² = sigma² · pi / 8        (m² for position, rad² for rotation)

so a frame with sigma = (0.2 m, 0.05 rad) has variances 0.04·pi/8 = 0.0157 m² on x, y, z and
0.0025·pi/8 = 9.82e-4 rad² on the three rotation axes, zero off the diagonal.

**ROS layout.** ``geometry_msgs/PoseWithCovariance.covariance`` is a row-major 6x6
``float64[36]`` in the order ``(x, y, z, rotation about X, rotation about Y, rotation about
Z)``, the rotation axes being the FIXED axes of ``header.frame_id`` (a small world-frame
rotation ``dR = exp([w]x)`` applied on the left: ``R_true = dR · R``). The isotropic blocks
are the same in every frame; they stop being isotropic only when the pose is moved to
another body point (:func:`transform_covariance`), where the lever arm couples rotation error
into position error.

When the calibrated full covariance of the model lands it replaces :func:`sigma_to_covariance`;
everything downstream takes a 6x6 matrix.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import EdgePoseError
from .geometry import quat_rotate

#: mean of the chi distribution with 3 degrees of freedom: E|v| for v ~ N(0, I3)
CHI3_MEAN = 2.0 * math.sqrt(2.0 / math.pi)

#: names of the six axes, in the ROS order of the covariance rows
ROS_AXES = ("x", "y", "z", "rot_x", "rot_y", "rot_z")


def per_axis_variance(sigma: float) -> float:
    """Per-axis variance of an isotropic 3-D Gaussian whose norm has mean ``sigma``."""
    return float(sigma) ** 2 / CHI3_MEAN ** 2


def sigma_to_covariance(sigma_position_m: float, sigma_rotation_rad: float) -> np.ndarray:
    """The 6x6 pose covariance (m², rad²; ROS axis order) of one frame's sigma.

    Raises :class:`EdgePoseError` for a negative or non-finite sigma (a broken model head).
    """
    for name, s in (("position", sigma_position_m), ("rotation", sigma_rotation_rad)):
        if not (math.isfinite(float(s)) and float(s) >= 0.0):
            raise EdgePoseError(f"sigma {name} is {s!r}; expected a finite value >= 0",
                                hint="the model's sigma head is broken: re-export the bundle")
    cov = np.zeros((6, 6))
    cov[:3, :3] = np.eye(3) * per_axis_variance(sigma_position_m)
    cov[3:, 3:] = np.eye(3) * per_axis_variance(sigma_rotation_rad)
    return cov


def skew(v: Sequence[float]) -> np.ndarray:
    """``[v]x``: the matrix with ``skew(v) @ u == cross(v, u)``."""
    x, y, z = (float(c) for c in v)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def transform_covariance(cov: np.ndarray, rotation_world_from_a: np.ndarray, lever_a: np.ndarray) -> np.ndarray:
    """Covariance of the pose of point/frame B rigidly attached to frame A.

    ``T_world_from_b = T_world_from_a · T_a_from_b`` with ``lever_a`` = the origin of B in
    A's axes (``T_a_from_b``'s translation) and ``rotation_world_from_a`` A's wxyz quaternion.
    With the world-frame (fixed-axes) rotation error ``w`` of ROS, B's position error is
    ``dp_b = dp_a + w x r = dp_a - [r]x w`` with ``r = R_world_from_a · lever_a``; its rotation
    error is ``w`` itself. So ``cov_b = J cov_a J^T`` with ``J = [[I, -[r]x], [0, I]]``.
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (6, 6):
        raise EdgePoseError(f"pose covariance has shape {cov.shape}; expected (6, 6)")
    r = quat_rotate(np.asarray(rotation_world_from_a, np.float64), np.asarray(lever_a, np.float64))
    J = np.eye(6)
    J[:3, 3:] = -skew(r)
    out = J @ cov @ J.T
    return 0.5 * (out + out.T)


def to_ros_array(cov: np.ndarray) -> np.ndarray:
    """The ``float64[36]`` row-major array of a 6x6 covariance, as ROS messages carry it."""
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (6, 6):
        raise EdgePoseError(f"pose covariance has shape {cov.shape}; expected (6, 6)")
    return np.ascontiguousarray(cov).reshape(36).copy()
