"""``edgepose-ros2``'s command line as ROS 2 users write it, and its ROS parameters (no rclpy here).

A ROS 2 node's argv is ``PROGRAM [its own args] --ros-args [ROS args] [-- [more own args]]``
(ROS 2 design, "Command line arguments"; rcl parses the ROS part). :func:`split_ros_args`
hands everything between ``--ros-args`` and ``--`` to ``rclpy.init(args=...)`` and the rest
to argparse, so remaps (``-r /camera/image_raw:=/front/image``, ``-r __ns:=/front``,
``-r __node:=edgepose_front``), parameters (``-p use_sim_time:=true``), ``--params-file``,
``--log-level`` and the rest reach rcl untouched. :func:`parse_ros_args` reads only what the
node reports (its name and namespace) and refuses a remap or parameter without ``:=`` (rcl
would refuse it too, with a less direct message).

Every setting of the node is a ROS parameter (:data:`SETTINGS`), declared with the command
line's value as its default by :func:`declare_settings`: a launch file, ``-p``, a params file
or ``ros2 param get`` see and set the same names. Topic defaults are relative names
(``camera/image_raw``, ``edgepose/pose``), resolved in the node's namespace.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from edgepose.errors import ConfigError

#: ROS flags that take one value (rcl's ``--ros-args`` grammar); others are single flags
VALUE_FLAGS = ("-r", "--remap", "-p", "--param", "--params-file", "--log-level", "-e", "--enclave",
               "--log-config-file")


@dataclass
class RosArgs:
    """What the node reads from its ``--ros-args`` (rcl applies all of them itself)."""

    argv: List[str] = field(default_factory=list)  # the --ros-args ... parts, as given
    remaps: Dict[str, str] = field(default_factory=dict)
    params: Dict[str, Any] = field(default_factory=dict)
    params_files: List[str] = field(default_factory=list)
    node_name: Optional[str] = None
    namespace: Optional[str] = None


def split_ros_args(argv: List[str]) -> Tuple[List[str], List[str]]:
    """``(own args, ROS args)``: the ROS part keeps its ``--ros-args`` markers (and ``--``)."""
    own: List[str] = []
    ros: List[str] = []
    inside = False
    for a in argv:
        if a == "--ros-args":
            inside = True
            ros.append(a)
        elif inside and a == "--":
            inside = False
            ros.append(a)
        elif inside:
            ros.append(a)
        else:
            own.append(a)
    return own, ros


def _scalar(text: str) -> Any:
    """A ``-p name:=value`` value as rcl reads it (a YAML scalar): bool, int, float or string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_ros_args(ros: List[str]) -> RosArgs:
    """Read the ROS part of argv (see the module docstring)."""
    out = RosArgs(argv=list(ros))
    i = 0
    while i < len(ros):
        a = ros[i]
        if a in ("--ros-args", "--"):
            i += 1
            continue
        if a in VALUE_FLAGS:
            if i + 1 >= len(ros):
                raise ConfigError(f"--ros-args: {a} needs a value", hint="e.g. -r /camera/image_raw:=/front/image_raw")
            value = ros[i + 1]
            if a in ("-r", "--remap", "-p", "--param"):
                name, sep, to = value.partition(":=")
                if not sep or not name:
                    raise ConfigError(f"--ros-args {a} {value!r}: expected NAME:=VALUE",
                                      hint="e.g. -r /camera/image_raw:=/front/image_raw or -p use_sim_time:=true")
                if a in ("-p", "--param"):
                    out.params[name] = _scalar(to)
                else:
                    key = name.rpartition(":")[2]  # "node:from" applies to one node only
                    out.remaps[key] = to
                    if key == "__ns":
                        out.namespace = to
                    elif key in ("__node", "__name"):
                        out.node_name = to
            elif a == "--params-file":
                out.params_files.append(value)
            i += 2
            continue
        i += 1  # a single flag (--disable-rosout-logs, ...): rcl's to judge
    return out


@dataclass(frozen=True)
class Setting:
    """One node setting: its ROS parameter name, the argparse dest it mirrors, its meaning."""

    name: str
    dest: str
    description: str


SETTINGS = (
    Setting("bundle", "bundle", "bundle folder (edgepose.json) made by edgepose-export"),
    Setting("image_topic", "image_topic", "camera topic (relative: resolved in the node's namespace)"),
    Setting("compressed", "compressed", "the camera topic carries sensor_msgs/CompressedImage"),
    Setting("pose_topic", "pose_topic", "PoseWithCovarianceStamped output topic (relative)"),
    Setting("frame_id", "frame_id", "header.frame_id of the poses: the z-up world frame (REP 105)"),
    Setting("camera_to_base", "camera_to_base",
            "'x y z qx qy qz qw' camera optical frame in the base frame: publish the body's pose ('' = optical)"),
    Setting("base_frame_id", "base_frame_id", "child frame of the optional map->base TF"),
    Setting("publish_tf", "publish_tf", "also broadcast frame_id -> base_frame_id on /tf"),
    Setting("backend", "backend", "auto, tensorrt, onnxruntime, ... (as edgepose-run --backend)"),
    Setting("precision", "precision", "fp32, fp16 or int8 ('' = the backend's default, fp16)"),
    Setting("strict", "strict", "fail instead of falling back to another precision"),
    Setting("threads", "threads", "intra-op CPU threads of ONNX Runtime / torch (0 = the library's default)"),
    Setting("cuda_graph", "cuda_graph", "TensorRT: replay the inference as a CUDA graph"),
    Setting("filter", "filter", "none or kalman"),
    Setting("camera_graph", "camera_graph", "auto: frames of a camera-resolution graph's size go to it; off: host"),
    Setting("diagnostics_period", "diagnostics_period", "seconds between /diagnostics messages"),
)


def declare_settings(node, args, describe: Optional[Callable[[Setting], Any]] = None) -> Dict[str, Any]:
    """Declare every :data:`SETTINGS` entry on an rclpy ``node`` with the command line's value
    as default, and return the values the node ends up with (``-p``, params files and launch
    files override the defaults; rcl applies them at declaration).

    ``describe(setting)`` may build an ``rcl_interfaces/ParameterDescriptor`` for each (the
    node's allows dynamic typing, so ``-p diagnostics_period:=2`` is not refused as an int;
    values are converted to the setting's type here).
    """
    values: Dict[str, Any] = {}
    for s in SETTINGS:
        default = getattr(args, s.dest)
        if default is None:
            default = ""
        if s.dest == "diagnostics_period":
            default = float(default)
        if describe is not None:
            node.declare_parameter(s.name, default, describe(s))
        else:
            node.declare_parameter(s.name, default)
        values[s.name] = _as_type_of(default, node.get_parameter(s.name).value, s.name)
    return values


def _as_type_of(default, value, name: str):
    """``value`` as the type of ``default`` (``-p diagnostics_period:=2`` arrives as an int)."""
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
        return type(default)(value)
    except (TypeError, ValueError):
        raise ConfigError(f"ROS parameter {name}: expected a {type(default).__name__}, found {value!r}") from None
