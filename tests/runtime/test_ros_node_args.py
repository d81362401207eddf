"""edgepose-ros2 takes ROS arguments and declares every setting as a ROS parameter, without ROS
installed. rclpy is not on PyPI: the parameter declaration runs against a TEST DOUBLE of
rclpy's Node API (declare_parameter / get_parameter, overrides applied at declaration as rcl
does); the real node runs under rclpy in test_ros_node.py where ROS 2 is installed."""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.errors import ConfigError
from edgepose.runtime.ros.node import build_parser, launch_file, parse_args
from edgepose.runtime.ros.node_args import SETTINGS, declare_settings, parse_ros_args, split_ros_args


class RclpyNodeDouble:
    """Test double of ``rclpy.node.Node``'s parameter API: ``declare_parameter(name, value,
    descriptor)`` returns the parameter, whose value is the override from ``-p`` / a params
    file when one was given (rcl's rule), else the default; ``get_parameter(name).value``."""

    class Parameter:
        def __init__(self, name, value):
            self.name, self.value = name, value

    def __init__(self, overrides):
        self.overrides, self.params, self.descriptors = dict(overrides), {}, {}

    def declare_parameter(self, name, value=None, descriptor=None):
        if name in self.params:
            raise RuntimeError(f"ParameterAlreadyDeclaredException: {name}")  # what rclpy raises
        self.params[name] = self.Parameter(name, self.overrides.get(name, value))
        self.descriptors[name] = descriptor
        return self.params[name]

    def get_parameter(self, name):
        return self.params[name]


ISSUE_ARGV = ["bundle", "--ros-args", "-r", "/camera/image_raw:=/front/image", "-p", "use_sim_time:=true"]


def test_ros_args_are_split_off_and_read():
    own, ros = split_ros_args(ISSUE_ARGV + ["-r", "__ns:=/front", "-r", "__node:=edgepose_front",
                                            "--params-file", "p.yaml", "--log-level", "debug", "--", "--compressed"])
    assert own == ["bundle", "--compressed"]
    r = parse_ros_args(ros)
    assert r.argv[0] == "--ros-args" and r.argv[-1] == "--"  # handed to rclpy.init(args=...) as given
    assert r.remaps["/camera/image_raw"] == "/front/image"
    assert r.params == {"use_sim_time": True} and r.params_files == ["p.yaml"]
    assert r.namespace == "/front" and r.node_name == "edgepose_front"


def test_parse_args_accepts_what_main_rejected():
    args, ros = parse_args(ISSUE_ARGV)  # main: "unrecognized arguments: --ros-args -r ..."
    assert args.bundle == "bundle" and ros.params["use_sim_time"] is True


@pytest.mark.parametrize("bad", [["--ros-args", "-r", "/a"], ["--ros-args", "-p", "x"], ["--ros-args", "-p"]])
def test_malformed_ros_args_are_named(bad):
    with pytest.raises(ConfigError, match="NAME:=VALUE|needs a value"):
        parse_ros_args(split_ros_args(bad)[1])


def test_the_command_line_reaches_rclpy_not_argparse(bundle):
    exe = Path(sys.executable).with_name("edgepose-ros2")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose.runtime.ros.node"]
    # a real bundle: one named on the command line is opened before ROS starts
    p = subprocess.run(cmd + [str(bundle[0])] + ISSUE_ARGV[1:], capture_output=True, text=True, timeout=120)
    assert "unrecognized arguments" not in p.stderr
    try:
        import rclpy  # noqa: F401
    except ImportError:
        assert p.returncode == 2 and "rclpy" in p.stderr  # it got as far as needing ROS


def test_every_setting_is_a_ros_parameter_and_overrides_win():
    args, ros = parse_args(["b", "--frame-id", "odom", "--ros-args", "-p", "frame_id:=map", "-p",
                            "camera_to_base:=0 0 0 0 0 0 1", "-p", "diagnostics_period:=2.5"])
    node = RclpyNodeDouble(ros.params)
    cfg = declare_settings(node, args, describe=lambda s: s.description)
    dests = {a.dest for a in build_parser()._actions if not isinstance(a, argparse._HelpAction)} - {"launch_file"}
    assert set(node.params) == {s.name for s in SETTINGS} and {s.dest for s in SETTINGS} == dests
    assert "use_sim_time" not in node.params  # rclpy declares it itself; declaring it again raises
    assert cfg["frame_id"] == "map" and cfg["camera_to_base"] == "0 0 0 0 0 0 1"  # -p beats the flag
    assert cfg["diagnostics_period"] == 2.5 and cfg["bundle"] == "b"
    assert all(node.descriptors[s.name] for s in SETTINGS)
    node2 = RclpyNodeDouble(parse_ros_args(["--ros-args", "-p", "diagnostics_period:=2", "-p", "publish_tf:=true"]).params)
    cfg2 = declare_settings(node2, args)
    assert cfg2["diagnostics_period"] == 2.0 and isinstance(cfg2["diagnostics_period"], float)  # an int from -p
    assert cfg2["publish_tf"] is True
    assert not cfg["image_topic"].startswith("/") and not cfg["pose_topic"].startswith("/")  # relative names


def test_launch_file_ships_with_the_package_and_declares_the_node():
    path = launch_file()
    assert path.is_file() and path.parent.parent.name == "ros"
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    out = subprocess.run([sys.executable, "-m", "edgepose.runtime.ros.node", "--launch-file"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and Path(out.stdout.strip()) == path


def test_launch_file_under_ros_launch():
    pytest.importorskip("launch_ros", reason="launch_ros comes with a ROS 2 install, not PyPI")
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgepose_launch", launch_file())
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    names = {a.name for a in ld.entities if hasattr(a, "name") and a.__class__.__name__ == "DeclareLaunchArgument"}
    assert {"bundle", "namespace", "use_sim_time", "camera_to_base"} <= names
