"""One driver behind edgepose-run, PoseEstimator.stream and the ROS 2 node, shown by behaviour:
the same bundle and the same stamped frames (a real MCAP bag; the node gets the same messages
pushed into its live MessageSource, no rclpy needed) give the same poses through all three,
with the Kalman filter (which depends on every earlier frame and its stamp) and with the
camera-to-base transform. The oracle for "a step was applied" is the plain runner's poses."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the shared frames travel as a ROS bag: pip install 'edgepose[ros]'")

from edgepose.preprocess import resize_crop  # noqa: E402
from edgepose.runtime import PoseEstimator, open_runner  # noqa: E402
from edgepose.runtime.driver import StreamConfig, drive, stopped_exit  # noqa: E402
from edgepose.runtime.ros.live import MessageSource  # noqa: E402
from edgepose.runtime.ros.messages import get_typestore  # noqa: E402
from edgepose.runtime.ros.node import node_stream, parse_args, stream_config  # noqa: E402
from edgepose.runtime.sources import ArraySource  # noqa: E402
from ros_image_bags import frame_stamps, gradient_frames, image_message, write_image_bag  # noqa: E402

N = 10
TOPIC = "/camera/image_raw"
LEVER = "0.1 0 0.05 -0.5 0.5 -0.5 0.5"
SIZE = (32, 24)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    images, stamps = gradient_frames(N), frame_stamps(N)
    bag = write_image_bag(tmp_path_factory.mktemp("drv") / "cam.mcap", images, topic=TOPIC, stamps=stamps)
    return bag, images, stamps


def _edgepose_run(bundle, bag, out: Path, *extra) -> dict:
    exe = Path(sys.executable).with_name("edgepose-run")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose", "run"]
    p = subprocess.run(cmd + [str(bundle), "--source", str(bag), "--topic", TOPIC, "--out", str(out), "--backend",
                              "onnxruntime", "--precision", "fp32", "--quiet", *extra],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return {x["stamp_ns"]: (np.array(x["position_m"]), np.array(x["rotation_wxyz"])) for x in lines if x["ok"]}


def _node(bundle, images, stamps, *flags):
    """The node's stream (node_stream, what _serve runs under rclpy) fed one message per result."""
    ts = get_typestore()
    msgs = [image_message(ts, img, s) for img, s in zip(images, stamps)]
    cfg = vars(parse_args([str(bundle), "--backend", "onnxruntime", "--precision", "fp32", *flags])[0])
    source = MessageSource("camera/image_raw")
    got, warned = {}, []

    def on_pose(r):
        got[r.stamp_ns] = (r.position.copy(), r.rotation.copy())
        if len(got) < len(msgs):
            source.push(msgs[len(got)])  # the next frame once this one is out: none is dropped
        else:
            source.close()

    source.push(msgs[0])
    outcome = node_stream(cfg, source, on_pose, warned.append)
    assert not warned and source.dropped == 0 and outcome.stats.dropped == 0
    assert stopped_exit("edgepose-ros2", outcome) is None
    return got


def _same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_allclose(a[k][0], b[k][0], atol=2e-6)  # JSON keeps 6 decimals
        np.testing.assert_allclose(a[k][1], b[k][1], atol=2e-8)


def test_run_estimator_and_node_give_the_same_filtered_poses(tmp_path, bundle, shared, clean_threads):
    bag, images, stamps = shared
    via_run = _edgepose_run(bundle[0], bag, tmp_path / "k.jsonl", "--filter", "kalman")
    with PoseEstimator.from_bundle(bundle[0], "onnxruntime", "fp32") as est:
        via_estimator = {r.stamp_ns: (r.position, r.rotation) for r in est.stream(str(bag), filter="kalman",
                                                                                   topic=TOPIC)}
    via_node = _node(bundle[0], images, stamps, "--filter", "kalman")
    assert len(via_run) == N
    _same(via_run, via_estimator)
    _same(via_run, via_node)
    with open_runner(bundle[0], "onnxruntime", "fp32") as r:  # oracle: the filter changed the poses
        raw = [r.infer(resize_crop(im, SIZE)[None]).position[0] for im in images]
    moved = [np.linalg.norm(via_run[s][0] - raw[i]) for i, s in enumerate(stamps)]
    assert moved[0] < 1e-5 and max(moved) > 1e-4


def test_run_and_node_apply_the_same_camera_to_base(tmp_path, bundle, shared):
    bag, images, stamps = shared
    plain = _edgepose_run(bundle[0], bag, tmp_path / "p.jsonl")
    via_run = _edgepose_run(bundle[0], bag, tmp_path / "b.jsonl", "--camera-to-base", LEVER)
    via_node = _node(bundle[0], images, stamps, "--camera-to-base", LEVER)
    _same(via_run, via_node)
    lever = np.array([0.1, 0.0, 0.05])
    for s in stamps:  # the base sits |lever| from the camera centre: the transform was applied
        assert abs(np.linalg.norm(via_run[s][0] - plain[s][0]) - np.linalg.norm(lever)) < 1e-5


def test_node_settings_reach_the_driver():
    args, _ = parse_args(["b", "--camera-graph", "off", "--threads", "2", "--cuda-graph", "--strict"])
    cfg = stream_config(vars(args))
    assert cfg == StreamConfig(bundle="b", threads=2, cuda_graph=True, strict=True, policy="latest", filter="none",
                               camera_graphs=False)
    cfg = stream_config({**vars(args), "precision": "", "camera_to_base": "", "camera_graph": ""})  # ROS "unset"
    assert cfg.precision is None and cfg.camera_to_base is None and cfg.camera_graphs is True


def test_a_signal_ends_the_loop_with_128_plus_n_and_the_count(bundle, capsys):
    from edgepose.interrupts import Interrupt

    seen = []

    def on_result(r):
        seen.append(r.index)
        if len(seen) == 3:
            raise Interrupt(15)  # what Signals raises on SIGTERM, in the consumer's thread

    src = ArraySource([np.full((24, 32, 3), i, np.uint8) for i in range(20)])
    outcome = drive(StreamConfig(bundle=str(bundle[0]), backend="onnxruntime", precision="fp32"), src, on_result)
    assert outcome.written == 2 and seen == [0, 1, 2]  # the interrupted result is not counted
    assert stopped_exit("edgepose-run", outcome) == 128 + 15
    assert "interrupted (SIGTERM); the 2 results so far are written" in capsys.readouterr().err
