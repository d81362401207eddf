"""ROS I/O for edgepose-run and the ROS 2 node, without a ROS install.

* :mod:`.bag_source` — frames from rosbag2 (folder with ``metadata.yaml``; sqlite3 or mcap
  storage), a single ``.mcap`` file or a ROS 1 ``.bag`` (``sensor_msgs/Image`` and
  ``CompressedImage``; each frame stamped with the message's ``header.stamp``).
* :mod:`.bag_sink` — ``geometry_msgs/PoseWithCovarianceStamped`` into an ``.mcap`` file or a
  rosbag2 folder, finalised on close (also after Ctrl-C).
* :mod:`.messages` — the message fields and QoS choices shared by the sink and the node.
* :mod:`.images` — image messages to RGB pixels. :mod:`.frames` — ``--camera-to-base``.
* :mod:`.node` — ``edgepose-ros2`` (rclpy, on a ROS 2 machine).

Bags are read and written with the pure-Python ``rosbags`` library (``pip install
edgepose[ros]``), imported when a bag is opened; nothing here imports torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from edgepose.errors import require

ROSBAGS_INSTALL = "pip install 'edgepose[ros]'  (or: pip install rosbags)"
#: file suffixes read as bags: MCAP, rosbag2's sqlite3 storage file, ROS 1
BAG_SUFFIXES = (".mcap", ".db3", ".bag")


def require_rosbags(feature: str):
    """Import ``rosbags`` or raise :class:`MissingDependencyError` naming the install command."""
    return require("rosbags.highlevel", feature, ROSBAGS_INSTALL)


def is_bag_path(spec: Union[str, Path]) -> bool:
    """True for ``*.mcap``, ``*.db3``, ``*.bag`` and a rosbag2 folder (holds ``metadata.yaml``, or
    an ``.mcap`` without it: a recording that was killed before rosbag2 wrote its metadata)."""
    p = Path(str(spec))
    if p.suffix.lower() in BAG_SUFFIXES:
        return True
    return p.is_dir() and ((p / "metadata.yaml").is_file() or any(p.glob("*.mcap")))


def is_bag_output(spec: Union[str, Path, None]) -> bool:
    """True for an ``--out`` that names a bag: ``*.mcap`` (one file) or ``DIR/`` (a rosbag2 folder)."""
    if not spec or str(spec) == "-":
        return False
    s = str(spec)
    return Path(s).suffix.lower() == ".mcap" or s.endswith("/") or is_bag_path(s) and Path(s).is_dir()
