"""Image decoding, message building, QoS and --camera-to-base, on real rosbags messages.

Oracles: hand-made pixel arrays, Pillow's own encoders, scipy's Rotation and the covariance
formula worked by hand in tests/core/test_covariance.py."""
from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation as SciRot

pytest.importorskip("rosbags", reason="the ROS tests need rosbags: pip install 'edgepose[ros]'")

from edgepose.errors import ConfigError, EdgePoseError  # noqa: E402
from edgepose.runtime.results import PoseResult  # noqa: E402
from edgepose.runtime.ros import images, messages  # noqa: E402
from edgepose.runtime.ros.frames import CameraToBase, parse_camera_to_base  # noqa: E402
from ros_image_bags import compressed_message, image_message  # noqa: E402

TS = messages.get_typestore()
RGB = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3) * 3


def raw(encoding, data, h=5, w=4, step=None, big=0):
    T = TS.types
    hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="c")
    return T["sensor_msgs/msg/Image"](header=hdr, height=h, width=w, encoding=encoding, is_bigendian=big,
                                      step=step if step is not None else data.size // h, data=data.reshape(-1))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_give_rgb(encoding):
    px = RGB[:, :, ::-1] if encoding.startswith("bgr") else RGB
    if encoding.endswith("a8"):
        px = np.concatenate([px, np.full((5, 4, 1), 200, np.uint8)], axis=2)
    out = images.decode_raw(raw(encoding, np.ascontiguousarray(px)))
    np.testing.assert_array_equal(out, RGB)


def test_mono8_and_row_padding():
    g = RGB[:, :, 0]
    padded = np.zeros((5, 8), np.uint8)
    padded[:, :4] = g  # step 8 > width 4: 4 bytes of padding per row
    out = images.decode_raw(raw("mono8", padded, step=8))
    np.testing.assert_array_equal(out, np.repeat(g[:, :, None], 3, axis=2))


def test_mono16_big_endian_full_range_matches_the_folder_reader(tmp_path):
    from edgepose.image_decode import decode_rgb8

    v = (np.arange(20, dtype=np.uint16).reshape(5, 4) * 3000)  # up to 57000: a full 16-bit range
    out = images.decode_raw(raw("mono16", np.frombuffer(v.astype(">u2").tobytes(), np.uint8), step=8, big=1))
    np.testing.assert_array_equal(out[:, :, 1], np.round(v.astype(float) * 255 / 65535).astype(np.uint8))  # by hand
    Image.fromarray(v.astype(np.uint16)).save(tmp_path / "f.png")  # the same pixels as a folder frame
    np.testing.assert_array_equal(out, decode_rgb8(tmp_path / "f.png"))


def test_mono16_of_a_12_bit_camera_keeps_its_contrast():
    v = (np.arange(20, dtype=np.uint16).reshape(5, 4) * 215)  # 0..4085: a 12-bit sensor in a 16-bit container
    out = images.decode_raw(raw("mono16", np.frombuffer(v.astype("<u2").tobytes(), np.uint8)))
    np.testing.assert_array_equal(out[:, :, 0], np.round(v.astype(float) * 255 / 4095).astype(np.uint8))
    assert out.max() >= 250  # keeping the top 8 bits gave at most 15: near black


def test_png_compressed_mono16_is_scaled_not_white():
    v = (np.arange(20, dtype=np.uint16).reshape(5, 4) * 3000)
    buf = io.BytesIO()
    Image.fromarray(v.astype(np.uint16)).save(buf, format="PNG")  # what image_transport's png plugin holds
    T = TS.types
    hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="c")
    msg = T["sensor_msgs/msg/CompressedImage"](header=hdr, format="mono16; png compressed mono16",
                                               data=np.frombuffer(buf.getvalue(), np.uint8))
    out = images.decode_compressed(msg)
    np.testing.assert_array_equal(out[:, :, 2], np.round(v.astype(float) * 255 / 65535).astype(np.uint8))


def test_depth_encoding_is_refused_unless_allowed():
    v = (np.arange(20, dtype=np.uint16).reshape(5, 4) * 100)  # millimetres
    msg = raw("16UC1", np.frombuffer(v.astype("<u2").tobytes(), np.uint8))
    with pytest.raises(images.ImageDecodeError, match="16UC1 is depth"):
        images.decode_image(msg, "sensor_msgs/msg/Image")
    out = images.decode_image(msg, "sensor_msgs/msg/Image", allow_depth=True)
    np.testing.assert_array_equal(out[:, :, 0], np.round(v.astype(float) * 255 / 4095).astype(np.uint8))  # max 1900: 12 bits


def test_unsupported_encoding_is_named():
    with pytest.raises(images.ImageDecodeError, match="'yuv422'.*supported: rgb8"):
        images.decode_raw(raw("yuv422", np.zeros(40, np.uint8), step=8))


def test_truncated_image_says_how_much():
    msg = image_message(TS, RGB, 5, truncate=True)
    with pytest.raises(images.ImageDecodeError, match=r"truncated: 30 bytes .*\(expected 60\)"):
        images.decode_raw(msg)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_png_and_jpeg(fmt):
    big = np.kron(RGB, np.ones((8, 8, 1), np.uint8))  # 40x32: jpeg needs some room
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format=fmt.upper(), quality=95)
    msg = compressed_message(TS, big, 7)
    msg.format = f"rgb8; {fmt} compressed rgb8"
    msg.data = np.frombuffer(buf.getvalue(), np.uint8)
    out = images.decode_compressed(msg)
    assert out.shape == big.shape
    tol = 0 if fmt == "png" else 12
    assert np.abs(out.astype(int) - big.astype(int)).mean() <= tol


def test_compressed_depth_and_garbage_are_refused():
    msg = compressed_message(TS, RGB, 7)
    msg.format = "16UC1; compressedDepth png"
    with pytest.raises(images.ImageDecodeError, match="compressedDepth"):
        images.decode_compressed(msg)
    msg.format, msg.data = "jpeg", np.frombuffer(b"\xff\xd8 not a jpeg", np.uint8)
    with pytest.raises(images.ImageDecodeError, match="does not decode"):
        images.decode_compressed(msg)


def _result(**kw):
    base = dict(index=3, capture_time=5.0, position=np.array([1.0, 2.0, 3.0]),
                rotation=np.array([math.cos(0.3), 0.0, 0.0, math.sin(0.3)]), sigma_position_m=0.2,
                sigma_rotation_deg=math.degrees(0.05), stamp_ns=1_700_000_000_123_456_789)
    base.update(kw)
    return PoseResult(**base)


def test_pose_message_fields_and_rosbags_round_trip():
    pm = messages.pose_message(_result(), "map")
    assert (pm.sec, pm.nanosec) == (1_700_000_000, 123_456_789)
    assert pm.orientation_xyzw == pytest.approx((0.0, 0.0, math.sin(0.3), math.cos(0.3)))  # ROS order
    assert pm.covariance[0] == pytest.approx(0.04 * math.pi / 8) and pm.covariance[35] == pytest.approx(0.0025 * math.pi / 8)
    data = TS.serialize_cdr(messages.to_rosbags(pm, TS), messages.POSE_TYPE)
    back = TS.deserialize_cdr(data, messages.POSE_TYPE)
    assert back.header.stamp.sec == 1_700_000_000 and back.header.stamp.nanosec == 123_456_789
    assert back.header.frame_id == "map"
    assert (back.pose.pose.position.x, back.pose.pose.position.z) == (1.0, 3.0)
    assert back.pose.pose.orientation.w == pytest.approx(math.cos(0.3))
    np.testing.assert_array_equal(back.pose.covariance, pm.covariance)


def test_failed_result_is_not_a_message_and_stamp_falls_back_to_capture_time():
    with pytest.raises(EdgePoseError, match="not published"):
        messages.pose_message(_result(ok=False, error="boom", position=None, rotation=None))
    pm = messages.pose_message(_result(stamp_ns=None, capture_time=12.5))
    assert (pm.sec, pm.nanosec) == (12, 500_000_000)


def test_qos_choices_map_to_rosbags():
    from rosbags.interfaces import QosDurability, QosReliability

    q = messages.to_rosbags_qos(messages.POSE_QOS)
    assert q.reliability is QosReliability.RELIABLE and q.durability is QosDurability.VOLATILE and q.depth == 10
    assert messages.to_rosbags_qos(messages.IMAGE_QOS).reliability is QosReliability.BEST_EFFORT


def test_diagnostic_values_warn_on_drops():
    from edgepose.runtime.pipeline import PipelineStats

    st = PipelineStats()
    st.add(_result(timings_ms={"latency": 4.0}))
    level, text, values = messages.diagnostic_values(st)
    assert level == 0 and dict(values)["latency_p50_ms"] == "4.00"
    st.dropped = 2
    assert messages.diagnostic_values(st)[0] == 1


def test_optical_preset_matches_rep103_axes():
    t, q = parse_camera_to_base("optical")
    R = SciRot.from_quat(q[[1, 2, 3, 0]]).as_matrix()  # body_from_optical
    np.testing.assert_allclose(R @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # optical z (forward) = body x
    np.testing.assert_allclose(R @ [1, 0, 0], [0, -1, 0], atol=1e-12)  # optical x (right) = -body y (left)
    np.testing.assert_allclose(R @ [0, 1, 0], [0, 0, -1], atol=1e-12)  # optical y (down) = -body z (up)
    # the ROS habit: optical frame = rpy (-pi/2, 0, -pi/2) from the camera link
    np.testing.assert_allclose(R, SciRot.from_euler("xyz", [-90, 0, -90], degrees=True).as_matrix(), atol=1e-12)


def test_camera_to_base_pose_and_covariance_against_scipy():
    t_bc, q_bc_xyzw = np.array([0.1, -0.05, 0.3]), SciRot.from_euler("xyz", [-90, 5, -90], degrees=True).as_quat()
    step = CameraToBase.from_option(" ".join(str(v) for v in [*t_bc, *q_bc_xyzw]))
    r = _result()
    R_wc = SciRot.from_quat(np.r_[r.rotation[1:], r.rotation[0]])
    p_wc = r.position.copy()
    out = step(r)
    R_bc = SciRot.from_quat(q_bc_xyzw)
    R_wb = R_wc * R_bc.inv()
    p_wb = p_wc + R_wc.apply(R_bc.inv().apply(-t_bc))
    np.testing.assert_allclose(out.position, p_wb, atol=1e-12)
    got = SciRot.from_quat(np.r_[out.rotation[1:], out.rotation[0]])
    assert (got.inv() * R_wb).magnitude() < 1e-9
    cov = out.pose_covariance()
    lever = np.linalg.norm(t_bc)
    v_rot = 0.0025 * math.pi / 8
    # position variance grows by v_rot * |r|^2 summed over the two axes normal to the lever arm
    assert np.trace(cov[:3, :3]) == pytest.approx(3 * 0.04 * math.pi / 8 + 2 * v_rot * lever ** 2)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


@pytest.mark.parametrize("bad", ["1 2 3", "a b c d e f g", "0 0 0 0 0 0 2"])
def test_camera_to_base_bad_text(bad):
    with pytest.raises(ConfigError, match="camera-to-base"):
        parse_camera_to_base(bad)


def test_without_rclpy_the_node_names_what_to_install():
    code = ("import sys, importlib.abc\n"
            "class B(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, n, p=None, t=None):\n"
            "        if n.split('.')[0] == 'rclpy': raise ImportError(n)\n"
            "sys.meta_path.insert(0, B())\n"
            "from edgepose.runtime.ros.node import main\n"
            "sys.exit(main([]))\n")  # no bundle named: a named one is opened first
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "rclpy" in proc.stderr and "ROS 2" in proc.stderr
