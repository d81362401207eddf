"""The ROS flags of edgepose-run (and those edgepose-ros2 shares with it) and the glue their dispatch
points call (no rosbags import here)."""
from __future__ import annotations

import argparse
from typing import Optional

from edgepose.errors import ConfigError

from . import is_bag_output, is_bag_path
from .bag_source import BagSource
from .messages import DEFAULT_FRAME_ID, DEFAULT_POSE_TOPIC

EPILOG_SOURCES = """\
  flight.mcap --topic T   a bag: .mcap, rosbag2 folder (metadata.yaml; sqlite3 or mcap), ROS 1 .bag;
                          sensor_msgs/Image or CompressedImage, stamped by header.stamp (recorded)
"""


def add_pose_topic(g, default: str = DEFAULT_POSE_TOPIC, where: str = "when --out is a bag") -> None:
    """``--pose-topic``: the topic the poses go to (a bag's or the node's)."""
    g.add_argument("--pose-topic", default=default, metavar="TOPIC", help=f"topic of the poses {where} (default {default})")


def add_frame_id(g) -> None:
    """``--frame-id``: ``header.frame_id`` of every pose message."""
    g.add_argument("--frame-id", default=DEFAULT_FRAME_ID, metavar="FRAME",
                   help=f"header.frame_id of the poses: the dataset's world frame, z up (default {DEFAULT_FRAME_ID})")


def add_camera_to_base(g) -> None:
    """``--camera-to-base``: publish the base frame's pose (:class:`~.frames.CameraToBase`)."""
    g.add_argument("--camera-to-base", default=None, metavar="'X Y Z QX QY QZ QW'|optical",
                   help="publish the pose of the base frame instead of the camera optical frame: the camera's "
                        "pose in the base frame (tf2_echo base_link camera_optical_frame), or 'optical' for the "
                        "camera's own REP 103 body axes; the covariance follows the lever arm")


def add_ros_arguments(p: argparse.ArgumentParser) -> None:
    """edgepose-run's ROS group: bag topics, the pose messages' frames, bag output options."""
    g = p.add_argument_group("ROS bags and frames (pip install 'edgepose[ros]')")
    g.add_argument("--topic", default=None,
                   help="image topic of a bag --source; without it the image topics are listed with their counts")
    add_pose_topic(g)
    add_frame_id(g)
    add_camera_to_base(g)
    g.add_argument("--copy-images", action="store_true",
                   help="with a bag --source and a bag --out: copy the image topic into the output too")
    g.add_argument("--allow-depth", action="store_true",
                   help="read a depth topic (named *depth*, 16UC1) as intensity frames; refused otherwise")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output bag (refused otherwise)")


def source_options(args) -> dict:
    """Keyword options for ``open_source``: the topic, for a bag source."""
    if is_bag_path(args.source):
        return {"topic": args.topic, "allow_depth": args.allow_depth}
    if args.topic:
        raise ConfigError(f"--topic {args.topic} is for a bag --source; {args.source!r} is not a bag "
                          "(.mcap, .db3, .bag or a rosbag2 folder with metadata.yaml)")
    return {}


def topic_listing(args) -> Optional[str]:
    """The image topics of a bag ``--source`` given without ``--topic`` (what the user asked
    for: printed on stdout, exit 0), else ``None``."""
    if args.topic or not is_bag_path(args.source):
        return None

    return (f"{args.source}: {BagSource.listing(args.source)}\n"
            f"next: edgepose-run {args.bundle} --source {args.source} --topic TOPIC --out poses.mcap")


def pose_of(args) -> str:
    """What the published pose is of: the base (``--camera-to-base``) or the camera optical frame."""
    if args.camera_to_base:
        return f"base (--camera-to-base {args.camera_to_base})"
    return "camera_optical_frame"


def warn_optical_pose(what: str) -> None:
    """Warn that a pose message will carry the camera optical frame's pose, not the body's."""
    import warnings

    warnings.warn(f"{what} carries the camera OPTICAL frame's pose (x right, y down, z forward); "
                  "PoseWithCovarianceStamped has no child frame and robot_localization / Nav2 read it as the "
                  "robot body's pose. Pass --camera-to-base 'X Y Z QX QY QZ QW' (ros2 run tf2_ros tf2_echo "
                  "base_link <camera optical frame>) to publish the body's pose")


def bag_sink_options(args, source) -> Optional[dict]:
    """Options of the bag sink when ``--out`` names a bag, else ``None``."""
    if not is_bag_output(args.out):
        return None
    bag_source = source if hasattr(source, "take_record") else None
    if args.copy_images and bag_source is None:
        raise ConfigError(f"--copy-images copies the image topic of a bag --source; {args.source!r} is not a bag",
                          hint="drop --copy-images, or pass a bag as --source")
    if not args.camera_to_base:
        warn_optical_pose(f"--out {args.out}")
    return {"topic": args.pose_topic, "frame_id": args.frame_id, "overwrite": args.overwrite,
            "source": bag_source, "copy_images": bool(args.copy_images), "pose_of": pose_of(args)}


def next_command(args) -> Optional[str]:
    """The next command to print after a run that wrote a bag."""
    if not is_bag_output(args.out):
        return None
    return (f"next: `ros2 bag info {args.out}` or open it in Foxglove; play it beside the camera with "
            f"`ros2 bag play {args.out}`; read it in Python with rosbags' AnyReader")
