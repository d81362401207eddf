"""``edgepose-ros2``: a ROS 2 node that turns camera images into poses.

A node as ROS users expect (:mod:`.node_args`): ``--ros-args`` go to rcl (remaps, ``__ns``,
``__node``, ``-p``, ``--params-file``, ``use_sim_time``), every setting is a ROS parameter,
topics are relative names, and ``--launch-file`` prints the bundled launch file's path.
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
from pathlib import Path
from typing import List, Optional

from edgepose.bundle import PRECISIONS
from edgepose.errors import EdgePoseError, require

from ..runners.base import DEFAULT_PRECISION
from .messages import (DEFAULT_FRAME_ID, DIAGNOSTICS_QOS, DIAGNOSTICS_TOPIC, IMAGE_QOS, POSE_QOS,
                       diagnostic_values, pose_message, to_rclpy, to_rclpy_qos)
from ..filter import make_filter
from ..pipeline import Pipeline
from ..runners import open_runner
from .frames import CameraToBase, chain
from .live import MessageSource
from .node_args import declare_settings, parse_ros_args, split_ros_args

#: relative topic names: resolved in the node's namespace (-r __ns:=/front)
DEFAULT_IMAGE_TOPIC = "camera/image_raw"
NODE_POSE_TOPIC = "edgepose/pose"

RCLPY_INSTALL = ("a ROS 2 install (rclpy is not on PyPI): on a Jetson with ROS 2 Humble, "
                 "`source /opt/ros/humble/setup.bash` before starting the node")

EPILOG = """\
EXAMPLE (Jetson, ROS 2 Humble, TensorRT engine in the bundle)
  source /opt/ros/humble/setup.bash
  edgepose-ros2 bundle --backend tensorrt --precision fp16 --camera-to-base '0.1 0 0.05 -0.5 0.5 -0.5 0.5' \\
      --ros-args -r __ns:=/front -r camera/image_raw:=/front/camera/color/image_raw -p use_sim_time:=false
  ros2 topic echo /front/edgepose/pose  # poses, stamped with the image's stamp
  ros2 param list /front/edgepose       # every setting is a parameter
  ros2 launch $(edgepose-ros2 --launch-file) bundle:=/path/to/bundle namespace:=front
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgepose-ros2", description=__doc__.split("\n\n")[1].replace("\n", " "),
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", nargs="?", default="",
                   help="bundle folder (with edgepose.json), made by edgepose-export (or -p bundle:=...)")
    p.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC,
                   help=f"camera topic, relative to the node's namespace (default {DEFAULT_IMAGE_TOPIC})")
    p.add_argument("--compressed", action="store_true", help="the topic carries sensor_msgs/CompressedImage (jpeg, png)")
    p.add_argument("--pose-topic", default=NODE_POSE_TOPIC, help=f"output topic (default {NODE_POSE_TOPIC})")
    p.add_argument("--frame-id", default=DEFAULT_FRAME_ID,
                   help=f"header.frame_id: the dataset's world frame (default {DEFAULT_FRAME_ID})")
    p.add_argument("--camera-to-base", default="", help="as in edgepose-run: publish the base frame's pose")
    p.add_argument("--base-frame-id", default="base_link", help="child frame of --publish-tf (default base_link)")
    p.add_argument("--publish-tf", action="store_true", help="also broadcast frame_id -> base_frame_id on /tf")
    p.add_argument("--backend", default="auto", help="auto (default), tensorrt, onnxruntime")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=f"default {DEFAULT_PRECISION}")
    p.add_argument("--filter", default="none", choices=("none", "kalman"), help="as in edgepose-run")
    p.add_argument("--diagnostics-period", type=float, default=1.0, help="seconds between diagnostics (default 1)")
    p.add_argument("--launch-file", action="store_true", help="print the path of the bundled launch file and exit")
    return p


def launch_file() -> Path:
    """The launch file installed with the package (``ros2 launch`` takes its path)."""
    return Path(__file__).with_name("launch") / "edgepose.launch.py"


def parse_args(argv: Optional[List[str]]):
    """``(argparse namespace, RosArgs)`` of a node command line (see :mod:`.node_args`)."""
    own, ros = split_ros_args(list(sys.argv[1:] if argv is None else argv))
    return build_parser().parse_args(own), parse_ros_args(ros)


def _describe(setting):
    from rcl_interfaces.msg import ParameterDescriptor

    return ParameterDescriptor(description=setting.description, dynamic_typing=True)


def _transform(pm, base_frame: str):
    """``geometry_msgs/TransformStamped`` frame_id -> base_frame of a pose message's fields."""
    from geometry_msgs.msg import TransformStamped

    t = TransformStamped()
    t.header.stamp.sec, t.header.stamp.nanosec, t.header.frame_id = pm.sec, pm.nanosec, pm.frame_id
    t.child_frame_id = base_frame
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = pm.position
    q = t.transform.rotation
    q.x, q.y, q.z, q.w = pm.orientation_xyzw
    return t


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
    try:
        args, ros = parse_args(argv)
    except EdgePoseError as exc:
        print(f"edgepose-ros2: error: {exc}", file=sys.stderr)
        return 2
    if args.launch_file:
        print(launch_file())
        return 0
    try:
        rclpy = require("rclpy", "the ROS 2 node edgepose-ros2", RCLPY_INSTALL)
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from sensor_msgs.msg import CompressedImage, Image
    except (EdgePoseError, ImportError) as exc:
        print(f"edgepose-ros2: error: {exc}", file=sys.stderr)
        return 2
    rclpy.init(args=["edgepose-ros2"] + ros.argv)
    node = rclpy.create_node("edgepose")  # __node:= / __ns:= remaps rename and namespace it
    try:
        rc = _serve(rclpy, node, declare_settings(node, args, _describe), PoseWithCovarianceStamped,
                    CompressedImage, Image)
    finally:
        if rclpy.ok():
            rclpy.shutdown()
        node.destroy_node()
    return rc


def _serve(rclpy, node, cfg: dict, PoseWithCovarianceStamped, CompressedImage, Image) -> int:
    """Run the node with its declared settings ``cfg`` until shutdown; the exit code."""
    log = node.get_logger()
    if not cfg["bundle"]:
        log.error("no bundle: give it as the first argument or as -p bundle:=/path/to/bundle")
        return 2
    if not cfg["camera_to_base"]:
        log.warn("publishing the camera OPTICAL frame's pose; robot_localization / Nav2 read a "
                 "PoseWithCovarianceStamped as the body's pose: set camera_to_base (tf2_echo base_link "
                 "<camera optical frame>)")
    msgtype = "sensor_msgs/msg/CompressedImage" if cfg["compressed"] else "sensor_msgs/msg/Image"
    source = MessageSource(cfg["image_topic"], msgtype)
    try:
        post = chain(make_filter(cfg["filter"]), CameraToBase.from_option(cfg["camera_to_base"] or None))
        runner = open_runner(cfg["bundle"], cfg["backend"], cfg["precision"])
    except EdgePoseError as exc:
        log.error(str(exc))
        return 2
    node.create_subscription(CompressedImage if cfg["compressed"] else Image, cfg["image_topic"],
                             source.push, to_rclpy_qos(IMAGE_QOS))
    pub = node.create_publisher(PoseWithCovarianceStamped, cfg["pose_topic"], to_rclpy_qos(POSE_QOS))
    from diagnostic_msgs.msg import DiagnosticArray

    diag = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, to_rclpy_qos(DIAGNOSTICS_QOS))
    tf = None
    if cfg["publish_tf"]:
        from tf2_ros import TransformBroadcaster

        tf = TransformBroadcaster(node)

    def spin():  # rclpy's SIGINT handler (or rclpy.shutdown) ends spin: then end the stream too
        try:
            rclpy.spin(node)
        except Exception:  # noqa: BLE001 - ExternalShutdownException and friends on shutdown
            pass
        finally:
            source.close()

    spinner = threading.Thread(target=spin, name="edgepose-ros2-spin", daemon=True)
    log.info(f"edgepose-ros2 {node.get_fully_qualified_name()}: {cfg['image_topic']} -> {cfg['pose_topic']} "
             f"(frame {cfg['frame_id']}), backend {cfg['backend']} {cfg['precision']}")
    rc = 0
    with runner:
        pipe = Pipeline(runner, source, policy="latest", postprocess=post)
        spinner.start()
        last_diag, last_latency = time.monotonic(), None
        try:
            for r in pipe:
                if r.ok:
                    pm = pose_message(r, cfg["frame_id"])
                    pub.publish(to_rclpy(pm, PoseWithCovarianceStamped()))
                    if tf is not None:
                        tf.sendTransform(_transform(pm, cfg["base_frame_id"]))
                    last_latency = r.latency_ms
                else:
                    log.warn(f"frame {r.index}: {r.error}")
                if time.monotonic() - last_diag >= cfg["diagnostics_period"]:
                    last_diag = time.monotonic()
                    diag.publish(_diagnostics(pipe.stats, source.dropped, node.get_clock().now().to_msg(), last_latency))
        except KeyboardInterrupt:
            rc = 130
        except EdgePoseError as exc:
            log.error(str(exc))
            rc = 2
        finally:
            source.close()
            pipe.close()
            if rclpy.ok():
                rclpy.shutdown()
            spinner.join(5.0)
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
