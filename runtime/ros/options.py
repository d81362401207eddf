"""edgepose-run's ROS options and the glue its dispatch points call (no rosbags import here)."""
from __future__ import annotations

import argparse
from typing import Callable, Optional

from . import is_bag_output, is_bag_path
from .messages import DEFAULT_FRAME_ID, DEFAULT_POSE_TOPIC

EPILOG_SOURCES = """\
  flight.mcap --topic T   a bag: .mcap, rosbag2 folder (metadata.yaml; sqlite3 or mcap), ROS 1 .bag;
                          sensor_msgs/Image or CompressedImage, stamped by header.stamp (recorded)
"""


def add_ros_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ROS bags and frames (pip install 'edgepose[ros]')")
    g.add_argument("--topic", default=None,
                   help="image topic of a bag --source; without it the image topics are listed with their counts")
    g.add_argument("--pose-topic", default=DEFAULT_POSE_TOPIC,
                   help=f"topic of the poses when --out is a bag (default {DEFAULT_POSE_TOPIC})")
    g.add_argument("--frame-id", default=DEFAULT_FRAME_ID,
                   help=f"header.frame_id of the poses: the dataset's world frame (default {DEFAULT_FRAME_ID})")
    g.add_argument("--camera-to-base", default=None, metavar="'X Y Z QX QY QZ QW'|optical",
                   help="publish the pose of the base frame instead of the camera optical frame: the camera's "
                        "pose in the base frame (tf2_echo base_link camera_optical_frame), or 'optical' for the "
                        "camera's own REP 103 body axes; the covariance follows the lever arm")
    g.add_argument("--copy-images", action="store_true",
                   help="with a bag --source and a bag --out: copy the image topic into the output too")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output bag (refused otherwise)")


def source_options(args) -> dict:
    """Keyword options for ``open_source``: the topic, for a bag source."""
    if is_bag_path(args.source):
        return {"topic": args.topic}
    if args.topic:
        from edgepose.errors import ConfigError

        raise ConfigError(f"--topic {args.topic} is for a bag --source; {args.source!r} is not a bag "
                          "(.mcap, .db3, .bag or a rosbag2 folder with metadata.yaml)")
    return {}


def bag_sink_options(args, source) -> Optional[dict]:
    """Options of the bag sink when ``--out`` names a bag, else ``None``."""
    if not is_bag_output(args.out):
        return None
    copy = None
    if args.copy_images and getattr(source, "topic", None) and hasattr(source, "path"):
        copy = (source.path, source.topic)
    return {"topic": args.pose_topic, "frame_id": args.frame_id, "overwrite": args.overwrite, "copy_images": copy}


def postprocess(args, step: Optional[Callable]) -> Optional[Callable]:
    """``step`` (the filter) followed by the ``--camera-to-base`` transform, if given."""
    from .frames import CameraToBase, chain

    return chain(step, CameraToBase.from_option(args.camera_to_base))


def next_command(args) -> Optional[str]:
    """The next command to print after a run that wrote a bag."""
    if not is_bag_output(args.out):
        return None
    return (f"next: `ros2 bag info {args.out}` or open it in Foxglove; play it beside the camera with "
            f"`ros2 bag play {args.out}`; read it in Python with rosbags' AnyReader")
