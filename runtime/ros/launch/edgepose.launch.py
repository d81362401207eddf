"""Launch edgepose-ros2: ``ros2 launch $(edgepose-ros2 --launch-file) bundle:=/path/to/bundle``.

Arguments (``ros2 launch ... --show-args``): ``bundle`` (required), ``namespace`` (e.g.
``front``: topics become /front/camera/image_raw -> /front/edgepose/pose), ``node_name``,
``image_topic`` (remapped onto the node's ``camera/image_raw``), ``camera_to_base``,
``frame_id``, ``backend``, ``precision``, ``use_sim_time``. Every node setting is a ROS
parameter, so a params file (``params_file:=edgepose.yaml``) can set the others.
The node is the ``edgepose-ros2`` console script (no ROS package), found on PATH.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

ARGS = (
    ("bundle", None, "bundle folder made by edgepose-export"),
    ("namespace", "", "namespace of the node and its relative topics"),
    ("node_name", "edgepose", "node name (two cameras need two names or namespaces)"),
    ("image_topic", "camera/image_raw", "camera topic to subscribe (remapped onto camera/image_raw)"),
    ("camera_to_base", "", "'x y z qx qy qz qw' of the camera optical frame in base_link ('' = optical pose)"),
    ("frame_id", "map", "world frame of the poses (z up, REP 105)"),
    ("backend", "auto", "auto, tensorrt or onnxruntime"),
    ("precision", "fp16", "fp32, fp16 or int8"),
    ("use_sim_time", "false", "true when playing a bag with --clock"),
    ("params_file", "", "optional YAML parameters file for the node"),
)


def _node(with_params_file: bool):
    cfg = LaunchConfiguration
    params = [{name: ParameterValue(cfg(name), value_type=str)  # text as given (a path is never read as YAML)
               for name in ("bundle", "camera_to_base", "frame_id", "backend", "precision")}]
    params[0]["use_sim_time"] = cfg("use_sim_time")  # 'true'/'false': launch_ros reads it as a YAML bool
    if with_params_file:
        params.append(cfg("params_file"))
    has_file = PythonExpression(["'", cfg("params_file"), "' != ''"])
    return Node(executable="edgepose-ros2", name=cfg("node_name"), namespace=cfg("namespace"), output="screen",
                parameters=params, remappings=[("camera/image_raw", cfg("image_topic"))],
                condition=IfCondition(has_file) if with_params_file else UnlessCondition(has_file))


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, description=text) if default is None else
                DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGS]
    return LaunchDescription(declared + [_node(False), _node(True)])
