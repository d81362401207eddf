"""edgepose-ros2 under a real rclpy: images published on a topic come back as poses with the
image's stamp. rclpy comes with a ROS 2 install (not PyPI), so this skips elsewhere; the parts
of the node that do not need rclpy (live source, message fields, QoS) are tested in
test_ros_bags.py and test_ros_messages.py."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy comes with a ROS 2 install, not PyPI: "
                                            "source /opt/ros/<distro>/setup.bash to run the node test")


def test_node_publishes_stamped_poses(bundle):
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from sensor_msgs.msg import Image

    from edgepose.runtime.ros.messages import IMAGE_QOS, POSE_QOS, to_rclpy_qos
    from edgepose.runtime.ros.node import main
    from ros_image_bags import frame_stamps, gradient_frames

    rc = {}
    argv = [str(bundle[0]), "--backend", "onnxruntime", "--precision", "fp32",  # ROS arguments as ROS users give them
            "--ros-args", "-r", "__ns:=/t", "-r", "camera/image_raw:=/t_img", "-p", "frame_id:=odom"]
    t = threading.Thread(target=lambda: rc.setdefault("rc", main(argv)))
    t.start()
    time.sleep(3.0)  # the node's init
    node = rclpy.create_node("edgepose_test")
    got = []
    node.create_subscription(PoseWithCovarianceStamped, "/t/edgepose/pose", got.append, to_rclpy_qos(POSE_QOS))
    pub = node.create_publisher(Image, "/t_img", to_rclpy_qos(IMAGE_QOS))
    stamps = frame_stamps(20)
    for s, img in zip(stamps, gradient_frames(20)):
        m = Image(height=img.shape[0], width=img.shape[1], encoding="rgb8", step=img.shape[1] * 3,
                  data=img.tobytes())
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(s, 10**9)
        pub.publish(m)
        rclpy.spin_once(node, timeout_sec=0.05)
    deadline = time.time() + 10
    while time.time() < deadline and not got:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    t.join(20)
    assert got, "no pose came back"
    for m in got:
        assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec in stamps
        assert m.header.frame_id == "odom"  # the -p parameter
        cov = np.asarray(m.pose.covariance).reshape(6, 6)
        assert np.all(np.linalg.eigvalsh(cov) > 0)
