"""The ROS messages edgepose publishes, built once for the bag sink and the ROS 2 node.

* :func:`pose_message` turns a :class:`~edgepose.runtime.results.PoseResult` into the fields
  of ``geometry_msgs/PoseWithCovarianceStamped``: ``header.stamp`` = the source stamp (the
  image's ``header.stamp``; never "now"), ``header.frame_id`` = the world frame the pose is
  in, position (m), orientation ``(x, y, z, w)`` (ROS order; edgepose keeps ``wxyz``) and the
  row-major ``float64[36]`` covariance (x, y, z, rotation about fixed X, Y, Z; m², rad²;
  :mod:`edgepose.covariance`).
* :func:`to_rosbags` / :func:`to_rclpy` fill the message class of either library from those
  fields; :func:`diagnostic_values` is the content of the node's ``DiagnosticStatus``.
* The QoS choices (:data:`POSE_QOS`, :data:`IMAGE_QOS`, :data:`DIAGNOSTICS_QOS`) are written
  into the bag's ``offered_qos_profiles`` and used by the node's publishers and subscription.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from edgepose.covariance import to_ros_array
from edgepose.errors import EdgePoseError

POSE_TYPE = "geometry_msgs/msg/PoseWithCovarianceStamped"
DEFAULT_POSE_TOPIC = "/edgepose/pose"
DEFAULT_FRAME_ID = "map"
DIAGNOSTICS_TOPIC = "/diagnostics"


@dataclass(frozen=True)
class QosChoice:
    """A QoS profile in words, mapped to rosbags' ``Qos`` and rclpy's ``QoSProfile``."""

    reliability: str  # "reliable" | "best_effort"
    durability: str  # "volatile" | "transient_local"
    depth: int  # history keep_last(depth)


#: Poses: reliable, so robot_localization / Nav2 subscriptions (reliable by default) match; a
#: reliable publisher also serves best-effort subscribers (ROS 2 QoS compatibility rules,
#: docs.ros.org "About Quality of Service settings").
POSE_QOS = QosChoice("reliable", "volatile", 10)
#: Camera input: best effort, depth 1 (the sensor-data habit): a best-effort subscription
#: matches both reliable and best-effort camera drivers, and only the newest frame matters.
IMAGE_QOS = QosChoice("best_effort", "volatile", 1)
DIAGNOSTICS_QOS = QosChoice("reliable", "volatile", 10)


def to_rosbags_qos(choice: QosChoice):
    """rosbags' ``Qos`` (what the bag records as the publisher's offered profile)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, choice.depth, QosReliability[choice.reliability.upper()],
               QosDurability[choice.durability.upper()], zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def to_rclpy_qos(choice: QosChoice):
    """rclpy's ``QoSProfile`` of the same choice (rclpy imported here, on a ROS 2 machine)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=choice.depth,
                      reliability=ReliabilityPolicy[choice.reliability.upper()],
                      durability=DurabilityPolicy[choice.durability.upper()])


@dataclass
class PoseMessage:
    """The fields of one ``PoseWithCovarianceStamped``."""

    sec: int
    nanosec: int
    frame_id: str
    position: Tuple[float, float, float]
    orientation_xyzw: Tuple[float, float, float, float]
    covariance: np.ndarray  # (36,) float64, row-major

    @property
    def stamp_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec


def split_stamp(stamp_ns: int) -> Tuple[int, int]:
    """``(sec, nanosec)`` of an integer nanosecond stamp, ``0 <= nanosec < 1e9``."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return int(sec), int(nanosec)


def result_covariance(result) -> np.ndarray:
    """The result's 6x6 covariance (:meth:`PoseResult.pose_covariance`)."""
    return np.asarray(result.pose_covariance(), np.float64)


def pose_message(result, frame_id: str = DEFAULT_FRAME_ID) -> PoseMessage:
    """The message fields of an ``ok`` result (failed frames are not published)."""
    if not result.ok or result.position is None or result.rotation is None:
        raise EdgePoseError(f"frame {result.index} has no pose ({result.error}); failed frames are not published")
    stamp = getattr(result, "stamp_ns", None)
    if stamp is None:
        stamp = int(round(result.capture_time * 1e9))
    sec, nanosec = split_stamp(stamp)
    w, x, y, z = (float(v) for v in result.rotation)
    return PoseMessage(sec, nanosec, frame_id, tuple(float(v) for v in result.position), (x, y, z, w),
                       to_ros_array(result_covariance(result)))


def get_typestore():
    """rosbags' type store of ROS 2 Humble (the message definitions, no ROS install needed)."""
    from rosbags.typesys import Stores, get_typestore as _get

    return _get(Stores.ROS2_HUMBLE)


def to_rosbags(pm: PoseMessage, typestore):
    """A rosbags ``PoseWithCovarianceStamped`` object (serialise with ``typestore.serialize_cdr``)."""
    T = typestore.types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=pm.sec, nanosec=pm.nanosec),
                                      frame_id=pm.frame_id)
    pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](*pm.position),
                                       orientation=T["geometry_msgs/msg/Quaternion"](*pm.orientation_xyzw))
    pwc = T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.asarray(pm.covariance, np.float64))
    return T[POSE_TYPE](header=header, pose=pwc)


def to_rclpy(pm: PoseMessage, msg=None):
    """Fill an rclpy ``geometry_msgs.msg.PoseWithCovarianceStamped`` (made here if not given)."""
    if msg is None:
        from geometry_msgs.msg import PoseWithCovarianceStamped

        msg = PoseWithCovarianceStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = pm.sec, pm.nanosec
    msg.header.frame_id = pm.frame_id
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = pm.position
    q.x, q.y, q.z, q.w = pm.orientation_xyzw
    msg.pose.covariance = [float(v) for v in pm.covariance]
    return msg


def diagnostic_values(stats, last_latency_ms: Optional[float] = None) -> Tuple[int, str, List[Tuple[str, str]]]:
    """``(level, message, [(key, value)])`` of the node's ``DiagnosticStatus`` from pipeline stats.

    Level 0 (OK) normally, 1 (WARN) when frames failed or were dropped in the last report.
    """
    p50, p99 = stats.latency_percentiles(recent=300)
    values = [("frames_read", str(stats.read)), ("results", str(stats.done)), ("failed", str(stats.failed)),
              ("dropped", str(stats.dropped)), ("fps", f"{stats.fps:.2f}"),
              ("latency_p50_ms", f"{p50:.2f}"), ("latency_p99_ms", f"{p99:.2f}")]
    if last_latency_ms is not None:
        values.append(("latency_last_ms", f"{last_latency_ms:.2f}"))
    level = 1 if (stats.failed or stats.dropped) else 0
    message = (f"{stats.done} poses, {stats.failed} failed, {stats.dropped} dropped, "
               f"latency p50 {p50:.1f} ms")
    return level, message, values
