"""Frame conventions and ``--camera-to-base``.

edgepose's pose is ``T_world_from_camera`` of the camera's OPTICAL frame (x right, y down,
z forward: OpenCV, and ROS's ``*_optical_frame`` per REP 103) in the dataset's world frame
(the frame the training poses were given in; ``--frame-id``, default ``map``). ROS
consumers usually want the robot body: REP 103 body axes are x forward, y left, z up.

``--camera-to-base`` gives the static transform from the camera optical frame to the base
frame as the CAMERA's pose in the BASE frame, ``"x y z qx qy qz qw"`` (metres, ROS quaternion
order), i.e. what ``ros2 run tf2_ros tf2_echo base_link camera_optical_frame`` prints and
what a URDF joint chain gives. The published pose is then
``T_world_from_base = T_world_from_camera · inverse(T_base_from_camera)`` and its covariance
is moved with :func:`edgepose.covariance.transform_covariance` (the lever arm turns rotation
error into position error). ``--camera-to-base optical`` is the pure axis change to the
camera's own body frame (same origin, REP 103 axes).
"""
from __future__ import annotations

import re
from typing import Callable, Optional, Tuple

import numpy as np

from edgepose.covariance import transform_covariance
from edgepose.errors import ConfigError
from edgepose.geometry import compose_poses, invert_pose, quat_canonical

#: camera optical frame in the camera body frame (x forward, y left, z up), wxyz: the rotation
#: with columns (optical x, y, z) = (-y_body, -z_body, x_body)
OPTICAL_IN_BODY_WXYZ = (0.5, -0.5, 0.5, -0.5)


def parse_camera_to_base(text: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(translation (3,) m, rotation wxyz (4,))`` of ``T_base_from_camera`` from the option text."""
    if text.strip().lower() == "optical":
        return np.zeros(3), np.asarray(OPTICAL_IN_BODY_WXYZ, np.float64)
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != 7 or not np.all(np.isfinite(vals)):
        raise ConfigError(f"--camera-to-base {text!r}: expected 7 numbers 'x y z qx qy qz qw' (the camera's "
                          "pose in the base frame, metres, ROS quaternion order) or 'optical'",
                          hint="e.g. --camera-to-base '0.10 0 0.05 -0.5 0.5 -0.5 0.5' "
                               "(ros2 run tf2_ros tf2_echo base_link camera_optical_frame prints it)")
    q = np.asarray([vals[6], vals[3], vals[4], vals[5]], np.float64)
    n = float(np.linalg.norm(q))
    if abs(n - 1.0) > 1e-3:
        raise ConfigError(f"--camera-to-base quaternion ({vals[3]}, {vals[4]}, {vals[5]}, {vals[6]}) has norm {n:.6f}; "
                          "expected a unit quaternion (qx qy qz qw)")
    return np.asarray(vals[:3], np.float64), quat_canonical(q)


class CameraToBase:
    """Postprocess step: move each ``ok`` result from the camera optical frame to the base frame."""

    def __init__(self, translation, rotation_wxyz):
        # T_camera_from_base: the base's origin in camera axes is the lever arm
        self.p_cb, self.q_cb = invert_pose(np.asarray(translation, np.float64), np.asarray(rotation_wxyz, np.float64))

    @classmethod
    def from_option(cls, text: Optional[str]) -> Optional["CameraToBase"]:
        return None if not text else cls(*parse_camera_to_base(text))

    def __call__(self, result):
        if not result.ok or result.position is None:
            return result
        cov = result.pose_covariance()
        q_wc = result.rotation
        result.position, result.rotation = compose_poses(result.position, q_wc, self.p_cb, self.q_cb)
        result.covariance = transform_covariance(cov, q_wc, self.p_cb)
        return result


def chain(*steps: Optional[Callable]) -> Optional[Callable]:
    """One postprocess callable running the given steps in order (``None`` steps skipped)."""
    steps = tuple(s for s in steps if s is not None)
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def run(result):
        for s in steps:
            result = s(result)
        return result

    return run
