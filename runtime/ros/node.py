"""``edgepose-ros2``: a ROS 2 node that turns camera images into poses.

Subscribes to ``sensor_msgs/Image`` (or ``CompressedImage`` with ``--compressed``), runs the
same pipeline as ``edgepose-run`` with the ``latest`` policy (stale frames are dropped, so
latency stays bounded), publishes ``geometry_msgs/PoseWithCovarianceStamped`` stamped with
the image's ``header.stamp`` and reports frames, drops and latency as a
``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` once a second. Message fields and QoS
come from :mod:`.messages`, shared with the bag sink. rclpy and the message packages come
with a ROS 2 install (not PyPI) and are imported only here, when the node starts.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import List, Optional

from edgepose.bundle import PRECISIONS
from edgepose.errors import EdgePoseError, require

from ..runners.base import DEFAULT_PRECISION
from .messages import (DEFAULT_FRAME_ID, DEFAULT_POSE_TOPIC, DIAGNOSTICS_QOS, DIAGNOSTICS_TOPIC, IMAGE_QOS,
                       POSE_QOS, diagnostic_values, pose_message, to_rclpy, to_rclpy_qos)

RCLPY_INSTALL = ("a ROS 2 install (rclpy is not on PyPI): on a Jetson with ROS 2 Humble, "
                 "`source /opt/ros/humble/setup.bash` before starting the node")

EPILOG = """\
EXAMPLE (Jetson, ROS 2 Humble, TensorRT engine in the bundle)
  source /opt/ros/humble/setup.bash
  edgepose-ros2 bundle --image-topic /camera/image_raw --pose-topic /edgepose/pose \\
      --frame-id map --backend tensorrt --precision fp16
  ros2 topic echo /edgepose/pose        # poses, stamped with the image's stamp
  ros2 topic echo /diagnostics          # frames, drops, latency p50/p99
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgepose-ros2", description=__doc__.split("\n\n")[1].replace("\n", " "),
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="bundle folder (with edgepose.json), made by edgepose-export")
    p.add_argument("--image-topic", default="/camera/image_raw", help="camera topic (default /camera/image_raw)")
    p.add_argument("--compressed", action="store_true", help="the topic carries sensor_msgs/CompressedImage (jpeg, png)")
    p.add_argument("--pose-topic", default=DEFAULT_POSE_TOPIC, help=f"output topic (default {DEFAULT_POSE_TOPIC})")
    p.add_argument("--frame-id", default=DEFAULT_FRAME_ID,
                   help=f"header.frame_id: the dataset's world frame (default {DEFAULT_FRAME_ID})")
    p.add_argument("--camera-to-base", default=None, help="as in edgepose-run: publish the base frame's pose")
    p.add_argument("--backend", default="auto", help="auto (default), tensorrt, onnxruntime")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=f"default {DEFAULT_PRECISION}")
    p.add_argument("--filter", default="none", choices=("none", "kalman"), help="as in edgepose-run")
    p.add_argument("--diagnostics-period", type=float, default=1.0, help="seconds between diagnostics (default 1)")
    return p


def _diagnostics(stats, dropped_before: int, stamp, last_latency):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    level, message, values = diagnostic_values(stats, last_latency)
    values.append(("dropped_before_pipeline", str(dropped_before)))
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    st = DiagnosticStatus(level=bytes([level]), name="edgepose: pose", message=message, hardware_id="edgepose")
    st.values = [KeyValue(key=k, value=v) for k, v in values]
    arr.status = [st]
    return arr


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rclpy = require("rclpy", "the ROS 2 node edgepose-ros2", RCLPY_INSTALL)
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from sensor_msgs.msg import CompressedImage, Image
    except (EdgePoseError, ImportError) as exc:
        print(f"edgepose-ros2: error: {exc}", file=sys.stderr)
        return 2
    from ..filter import make_filter
    from ..pipeline import Pipeline
    from ..runners import open_runner
    from .frames import CameraToBase, chain
    from .live import MessageSource

    msgtype = "sensor_msgs/msg/CompressedImage" if args.compressed else "sensor_msgs/msg/Image"
    source = MessageSource(args.image_topic, msgtype)
    try:
        post = chain(make_filter(args.filter), CameraToBase.from_option(args.camera_to_base))
        runner = open_runner(args.bundle, args.backend, args.precision)
    except EdgePoseError as exc:
        print(f"edgepose-ros2: error: {exc}", file=sys.stderr)
        return 2
    rclpy.init()
    node = rclpy.create_node("edgepose")
    node.create_subscription(CompressedImage if args.compressed else Image, args.image_topic,
                             source.push, to_rclpy_qos(IMAGE_QOS))
    pub = node.create_publisher(PoseWithCovarianceStamped, args.pose_topic, to_rclpy_qos(POSE_QOS))
    from diagnostic_msgs.msg import DiagnosticArray

    diag = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, to_rclpy_qos(DIAGNOSTICS_QOS))
    def spin():  # rclpy's SIGINT handler (or rclpy.shutdown) ends spin: then end the stream too
        try:
            rclpy.spin(node)
        except Exception:  # noqa: BLE001 - ExternalShutdownException and friends on shutdown
            pass
        finally:
            source.close()

    spinner = threading.Thread(target=spin, name="edgepose-ros2-spin", daemon=True)
    node.get_logger().info(f"edgepose-ros2: {args.image_topic} -> {args.pose_topic} (frame {args.frame_id}), "
                           f"backend {args.backend} {args.precision}")
    rc = 0
    with runner:
        pipe = Pipeline(runner, source, policy="latest", postprocess=post)
        spinner.start()
        last_diag, last_latency = time.monotonic(), None
        try:
            for r in pipe:
                if r.ok:
                    pub.publish(to_rclpy(pose_message(r, args.frame_id), PoseWithCovarianceStamped()))
                    last_latency = r.latency_ms
                else:
                    node.get_logger().warn(f"frame {r.index}: {r.error}")
                if time.monotonic() - last_diag >= args.diagnostics_period:
                    last_diag = time.monotonic()
                    diag.publish(_diagnostics(pipe.stats, source.dropped, node.get_clock().now().to_msg(), last_latency))
        except KeyboardInterrupt:
            rc = 130
        except EdgePoseError as exc:
            node.get_logger().error(str(exc))
            rc = 2
        finally:
            source.close()
            pipe.close()
            if rclpy.ok():
                rclpy.shutdown()
            spinner.join(5.0)
            node.destroy_node()
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
