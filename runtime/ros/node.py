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
from typing import Callable, List, Optional

from edgepose.bundle import PRECISIONS
from edgepose.cli.arg_groups import (add_backend, add_bundle, add_precision, add_runner_settings, add_stream_options,
                                     add_threads)
from edgepose.cli.guard import Signals, guarded
from edgepose.errors import ConfigError, require

from ..bundles import open_bundle
from ..driver import Outcome, StreamConfig, drive, late_interrupt_exit, open_configured_runner, stopped_exit
from ..preload import preload_stages
from ..runners.base import DEFAULT_PRECISION
from ..runners.factory import DESCRIPTIONS
from .live import MessageSource
from .messages import (DIAGNOSTICS_QOS, DIAGNOSTICS_TOPIC, IMAGE_QOS, POSE_QOS, diagnostic_values, pose_message,
                       to_rclpy, to_rclpy_qos)
from .node_args import declare_settings, parse_ros_args, split_ros_args
from .options import add_camera_to_base, add_frame_id, add_pose_topic

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
    """The node's own flags; the ones edgepose-run has too come from the same definitions
    (``edgepose.cli.arg_groups``, ``edgepose.runtime.ros.options``)."""
    p = argparse.ArgumentParser(prog="edgepose-ros2", description=__doc__.split("\n\n")[1].replace("\n", " "),
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle(p, optional=True, extra=" (or -p bundle:=...)")
    p.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC,
                   help=f"camera topic, relative to the node's namespace (default {DEFAULT_IMAGE_TOPIC})")
    p.add_argument("--compressed", action="store_true", help="the topic carries sensor_msgs/CompressedImage (jpeg, png)")
    add_pose_topic(p, NODE_POSE_TOPIC, "the node publishes, relative to its namespace")
    add_frame_id(p)
    add_camera_to_base(p)
    p.add_argument("--base-frame-id", default="base_link", help="child frame of --publish-tf (default base_link)")
    p.add_argument("--publish-tf", action="store_true", help="also broadcast frame_id -> base_frame_id on /tf")
    add_backend(p, DESCRIPTIONS)
    add_precision(p, PRECISIONS, f"model precision (default {DEFAULT_PRECISION}; fp32 on torch); a missing one "
                                 "falls back to the nearest, with a warning")
    add_runner_settings(p)
    add_threads(p)
    add_stream_options(p)
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


def stream_config(cfg: dict) -> StreamConfig:
    """The driver's :class:`StreamConfig` of the node's settings (ROS parameters): the ``latest``
    policy (stale frames dropped, bounded latency); ``""`` is a parameter's "not set"."""
    return StreamConfig(bundle=cfg["bundle"], backend=cfg["backend"] or "auto", precision=cfg["precision"] or None,
                        strict=bool(cfg["strict"]), threads=int(cfg["threads"] or 0), cuda_graph=bool(cfg["cuda_graph"]),
                        policy="latest", filter=cfg["filter"] or None, camera_to_base=cfg["camera_to_base"] or None,
                        camera_graphs=(cfg["camera_graph"] or "auto") == "auto")


def node_stream(cfg: dict, source: MessageSource, on_pose: Callable, warn: Callable[[str], None], signals=None,
                on_progress: Optional[Callable] = None) -> Outcome:
    """The node's stream without rclpy: frames pushed into ``source`` go through the driver
    as ``cfg`` says; each ok result goes to ``on_pose``, a failed one to ``warn``."""
    config = stream_config(cfg)
    runner, options = open_configured_runner(config)

    def on_result(r) -> None:
        if r.ok:
            on_pose(r)
        else:
            warn(f"frame {r.index}: {r.error}")

    return drive(config, source, on_result, runner=runner, options=options, signals=signals, on_progress=on_progress)


def image_source(cfg: dict) -> MessageSource:
    """The node's image source, ready for the subscription callback. Its ``push`` decodes each
    message in rclpy's executor thread, which must never import (runtime/preload.py says why:
    a first-time import there waits forever on an import lock a Ctrl-C left held); so what
    decoding imports on first use (Pillow's plugins for a ``CompressedImage``) is imported
    here, in the calling thread, before spin starts. rclpy's own code in that thread imports
    nothing new: ``rclpy.spin`` imports ``rclpy.executors``, loaded with ``rclpy.node`` by
    ``create_node``, and a message's constructor its field types, loaded with its type support
    by ``create_subscription``."""
    msgtype = "sensor_msgs/msg/CompressedImage" if cfg["compressed"] else "sensor_msgs/msg/Image"
    source = MessageSource(cfg["image_topic"], msgtype)
    preload_stages(source)
    return source


def main(argv: Optional[List[str]] = None) -> int:
    with Signals() as signals:  # Ctrl-C and SIGTERM alike (rclpy's own handler chains to it)
        return guarded("edgepose-ros2", lambda: _main(argv, signals),
                       on_interrupt="stopped during start-up: no frame was processed")


def _check_bundle_early(args, ros) -> None:
    """A bundle named on the command line is opened before ROS starts (its errors, in
    edgepose-run's words, come first), unless a ROS parameter may replace it."""
    if args.bundle and "bundle" not in ros.params and not ros.params_files:
        open_bundle(args.bundle)


def _main(argv: Optional[List[str]], signals) -> int:
    args, ros = parse_args(argv)
    if args.launch_file:
        print(launch_file())
        return 0
    _check_bundle_early(args, ros)
    rclpy = require("rclpy", "the ROS 2 node edgepose-ros2", RCLPY_INSTALL)
    require("geometry_msgs.msg", "the ROS 2 node edgepose-ros2", RCLPY_INSTALL)
    require("sensor_msgs.msg", "the ROS 2 node edgepose-ros2", RCLPY_INSTALL)
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from sensor_msgs.msg import CompressedImage, Image

    rclpy.init(args=["edgepose-ros2"] + ros.argv)
    node = rclpy.create_node("edgepose")  # __node:= / __ns:= remaps rename and namespace it
    try:
        return _serve(rclpy, node, declare_settings(node, args, _describe), signals, PoseWithCovarianceStamped,
                      CompressedImage, Image)
    finally:
        if rclpy.ok():
            rclpy.shutdown()
        node.destroy_node()


def _serve(rclpy, node, cfg: dict, signals, PoseWithCovarianceStamped, CompressedImage, Image) -> int:
    """Run the node with its declared settings ``cfg`` until shutdown; the exit code."""
    log = node.get_logger()
    if not cfg["bundle"]:
        raise ConfigError("no bundle given", hint="give it as the first argument or as -p bundle:=/path/to/bundle")
    if not cfg["camera_to_base"]:
        log.warn("publishing the camera OPTICAL frame's pose; robot_localization / Nav2 read a "
                 "PoseWithCovarianceStamped as the body's pose: set camera_to_base (tf2_echo base_link "
                 "<camera optical frame>)")
    source = image_source(cfg)  # before spin: its push runs in rclpy's executor thread
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

    state = {"diag": time.monotonic(), "latency": None}
    published = [0]

    def publish(r) -> None:
        pm = pose_message(r, cfg["frame_id"])
        pub.publish(to_rclpy(pm, PoseWithCovarianceStamped()))
        if tf is not None:
            tf.sendTransform(_transform(pm, cfg["base_frame_id"]))
        state["latency"] = r.latency_ms
        published[0] += 1

    def diagnostics(stats) -> None:
        if time.monotonic() - state["diag"] >= cfg["diagnostics_period"]:
            state["diag"] = time.monotonic()
            diag.publish(_diagnostics(stats, source.dropped, node.get_clock().now().to_msg(), state["latency"]))

    spinner = threading.Thread(target=spin, name="edgepose-ros2-spin", daemon=True)
    spinner.start()
    log.info(f"edgepose-ros2 {node.get_fully_qualified_name()}: {cfg['image_topic']} -> {cfg['pose_topic']} "
             f"(frame {cfg['frame_id']}), backend {cfg['backend']} {cfg['precision'] or DEFAULT_PRECISION}")
    done = "published (or logged, when failed)"

    def stream() -> int:
        try:
            outcome = node_stream(cfg, source, publish, log.warn, signals=signals, on_progress=diagnostics)
        finally:  # a signal here, after poses went out, is a stop mid-run, not in start-up
            source.close()
            if rclpy.ok():
                rclpy.shutdown()
            spinner.join(5.0)
        code = stopped_exit("edgepose-ros2", outcome, done)
        return 0 if code is None else code

    return late_interrupt_exit("edgepose-ros2", stream, published, done)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
