"""Bag source and sink on REAL bags written by rosbags (MCAP file, rosbag2 sqlite3 folder, ROS 1),
the live message source of the ROS 2 node, and the bad inputs of the issue."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the ROS tests need rosbags: pip install 'edgepose[ros]'")

from edgepose.errors import ConfigError, EdgePoseError  # noqa: E402
from edgepose.runtime.ros.bag_sink import BagSink, summary_path  # noqa: E402
from edgepose.runtime.ros.bag_source import BagSource  # noqa: E402
from ros_image_bags import frame_stamps, gradient_frames, write_image_bag  # noqa: E402
from edgepose.runtime.endpoints import open_source  # noqa: E402
from ros_cli import edgepose_run_command  # noqa: E402

TOPIC = "/camera/image_raw"


def _read(path, topic=None):
    from rosbags.highlevel import AnyReader

    with AnyReader([Path(path)]) as r:
        conns = [c for c in r.connections if topic is None or c.topic == topic]
        return [(c.topic, c.msgtype, t, r.deserialize(raw, c.msgtype)) for c, t, raw in r.messages(connections=conns)]


@pytest.mark.parametrize("name", ["flight.mcap", "flight_db3", "flight.bag"])
def test_source_reads_every_storage_with_header_stamps(tmp_path, name):
    imgs = gradient_frames(6)
    stamps = frame_stamps(6)
    path = write_image_bag(tmp_path / name, imgs, TOPIC, compressed=[2], corrupt=[4],
                           storage="sqlite3" if name.endswith("db3") else "mcap")
    src = open_source(path, topic=TOPIC)
    assert isinstance(src, BagSource) and len(src) == 6 and not src.live
    frames = list(src)
    assert [f.stamp_ns for f in frames] == stamps  # exact nanoseconds, from header.stamp
    assert [f.timestamp for f in frames] == pytest.approx([s / 1e9 for s in stamps])
    for i, f in enumerate(frames):
        if i == 4:
            assert f.image is None and "truncated" in f.error
        else:
            assert f.error is None
            np.testing.assert_array_equal(f.image, imgs[i])  # compressed frame 2 is PNG: lossless


def test_without_topic_lists_image_topics_with_counts(tmp_path):
    path = write_image_bag(tmp_path / "b.mcap", gradient_frames(3), TOPIC, extra_topics=["/chatter"])
    with pytest.raises(ConfigError) as e:
        BagSource(path)
    msg = str(e.value)
    assert f"{TOPIC} (sensor_msgs/msg/Image, 3 messages)" in msg and "/chatter" not in msg
    assert f"--topic {TOPIC}" in msg


def test_missing_topic_lists_what_exists_and_non_image_topic_is_refused(tmp_path):
    path = write_image_bag(tmp_path / "b.mcap", gradient_frames(3), TOPIC, extra_topics=["/chatter"])
    with pytest.raises(ConfigError, match=r"no topic '/cam'.*/camera/image_raw .*3 messages.*/chatter \(std_msgs"):
        BagSource(path, topic="/cam")
    with pytest.raises(ConfigError, match="carries std_msgs/msg/String, not images"):
        BagSource(path, topic="/chatter")


def test_bag_cut_mid_message_keeps_frames_before_the_break(tmp_path, bundle):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(12)]  # ~5 per 1 MiB chunk
    full = write_image_bag(tmp_path / "full.mcap", imgs, TOPIC)
    data = full.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    src = BagSource(cut, topic=TOPIC)
    assert src.incomplete is None  # known only once read
    with pytest.warns(UserWarning) as caught:
        frames = list(src)
    said = " ".join(str(w.message) for w in caught)
    assert "no MCAP footer" in said and "results so far are kept" in said
    assert src.incomplete.startswith(f"bag {cut} ends mid-message after")
    good = [f for f in frames if f.error is None]
    assert len(good) >= 5 and len(good) < 12
    for i, f in enumerate(good):
        np.testing.assert_array_equal(f.image, imgs[i])
    assert "ends mid-message after" in frames[-1].error and frames[-1].image is None
    # a killed `ros2 bag record`: the rosbag2 folder has its .mcap cut and no metadata.yaml yet
    folder = tmp_path / "rosbag2_killed"
    folder.mkdir()
    (folder / "rosbag2_killed_0.mcap").write_bytes(data[: int(len(data) * 0.8)])
    with pytest.warns(UserWarning):
        again = list(open_source(folder, topic=TOPIC))
    assert [f.stamp_ns for f in again] == [f.stamp_ns for f in frames[:-1]] + [again[-1].stamp_ns]
    assert again[-1].error and again[-1].error.startswith("bag ")
    # edgepose-run writes what was read, says why the bag ended early, and exits 1 (as for a cut video)
    out = tmp_path / "p.jsonl"
    proc = subprocess.run(edgepose_run_command() + [str(bundle[0]), "--source", str(cut), "--topic", TOPIC,
                                                    "--out", str(out), "--backend", "onnxruntime", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert f"incomplete source (exit 1): bag {cut} ends mid-message after {len(good)} frames" in proc.stderr
    assert sum(json.loads(x)["ok"] for x in out.read_text().splitlines()) == len(good)
    whole = subprocess.run(edgepose_run_command() + [str(bundle[0]), "--source", str(full), "--topic", TOPIC,
                                                     "--out", str(tmp_path / "w.jsonl"), "--backend", "onnxruntime",
                                                     "--quiet"], capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0 and "incomplete" not in whole.stderr, whole.stderr
    (tmp_path / "head.mcap").write_bytes(data[:2000])  # cut before any complete chunk
    with pytest.raises(EdgePoseError, match="nothing can be read"):
        BagSource(tmp_path / "head.mcap", topic=TOPIC)


def _results(n, fail=()):
    from edgepose.runtime.results import PoseResult

    out = []
    for i, s in enumerate(frame_stamps(n)):
        ok = i not in fail
        out.append(PoseResult(index=i, capture_time=0.0, ok=ok, error=None if ok else "bad",
                              position=np.array([i, 0.0, 1.0]) if ok else None,
                              rotation=np.array([1.0, 0, 0, 0]) if ok else None,
                              sigma_position_m=0.1, sigma_rotation_deg=2.0, stamp_ns=s))
    return out


def test_sink_refuses_existing_output_unless_overwrite_and_leaves_nothing_partial(tmp_path):
    out = tmp_path / "poses.mcap"
    out.write_bytes(b"user data")
    with pytest.raises(ConfigError, match="(?s)exists.*--overwrite"):
        BagSink(out)
    assert out.read_bytes() == b"user data"
    with BagSink(out, overwrite=True, frame_id="world") as sink:
        for r in _results(5, fail=(1,)):
            sink.write(r)
    msgs = _read(out)
    assert len(msgs) == 4 and all(m[3].header.frame_id == "world" for m in msgs)
    assert json.loads(summary_path(out).read_text())["failed_frames_not_published"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.mcap", "poses.mcap.summary.json"]


def test_sink_writes_a_rosbag2_folder(tmp_path):
    folder = tmp_path / "poses_bag"
    with BagSink(str(folder) + "/", topic="/robot/pose") as sink:
        for r in _results(3):
            sink.write(r)
    assert (folder / "metadata.yaml").is_file() and (folder / "poses_bag.mcap").is_file()
    msgs = _read(folder)
    assert [m[0] for m in msgs] == ["/robot/pose"] * 3
    assert [m[2] for m in msgs] == frame_stamps(3)  # log time = header stamp
    with pytest.raises(ConfigError, match="exists"):
        BagSink(str(folder) + "/")
    (tmp_path / "notabag").mkdir()
    with pytest.raises(ConfigError, match="not a rosbag2 bag"):
        BagSink(str(tmp_path / "notabag") + "/", overwrite=True)


def test_ctrl_c_finalises_the_output_bag(tmp_path, bundle):
    path = write_image_bag(tmp_path / "long.mcap", gradient_frames(4000, size=(32, 24)), TOPIC)
    out = tmp_path / "poses.mcap"
    proc = subprocess.Popen(edgepose_run_command() + [str(bundle[0]), "--source", str(path), "--topic", TOPIC,
                                               "--out", str(out), "--precision", "fp32", "--threads", "1"],
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # the status line comes every 0.5 s once frames flow
        seen.append(line)
        if line.startswith("frames "):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, "".join(seen) + rest
    msgs = _read(out)
    assert 0 < len(msgs) < 4000
    assert json.loads(summary_path(out).read_text())["poses"] == len(msgs)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_live_message_source_feeds_the_pipeline(bundle):
    """What the ROS 2 node runs, minus rclpy: messages pushed from another thread, latest policy."""
    from edgepose.runtime import open_runner
    from edgepose.runtime.pipeline import Pipeline
    from edgepose.runtime.ros.live import MessageSource
    from edgepose.runtime.ros.messages import get_typestore
    from ros_image_bags import image_message

    ts = get_typestore()
    stamps = frame_stamps(20)
    src = MessageSource("/cam")
    results = []
    with open_runner(bundle[0], "onnxruntime", "fp32") as runner:
        pipe = Pipeline(runner, src, policy="latest")

        def feed():
            for i, img in enumerate(gradient_frames(20)):
                src.push(image_message(ts, img, stamps[i], truncate=(i == 7)))
                time.sleep(0.01)
            time.sleep(0.5)
            src.close()

        t = threading.Thread(target=feed)
        t.start()
        results = list(pipe)
        t.join()
    assert src.received == 20
    assert len(results) + src.dropped + pipe.stats.dropped == 20
    assert all(r.stamp_ns in stamps for r in results)
    assert [r.stamp_ns for r in results] == sorted(r.stamp_ns for r in results)
    assert all((r.error is None) == r.ok for r in results)


BLOCKED = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("rosbags", "torch", "rclpy"):
                raise ImportError("blocked for this test: " + name)
    sys.meta_path.insert(0, Block())
    import edgepose.runtime.ros.options, edgepose.runtime.ros.node, edgepose.runtime.ros.live
    from edgepose.runtime.cli import main
    rc = main(sys.argv[1:])
    assert not any(m.split(".")[0] in ("torch", "rosbags") for m in sys.modules)
    sys.exit(rc)
""")


def test_without_rosbags_the_error_names_the_install_command(tmp_path, bundle):
    path = write_image_bag(tmp_path / "b.mcap", gradient_frames(2), TOPIC)
    proc = subprocess.run([sys.executable, "-c", BLOCKED, str(bundle[0]), "--source", str(path), "--topic", TOPIC],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "needs the Python package 'rosbags'" in proc.stderr and "pip install 'edgepose[ros]'" in proc.stderr


def test_python_api_of_the_readme(tmp_path, bundle):
    from edgepose.runtime import PoseEstimator

    logs = [s + 7_000_000 for s in frame_stamps(8)]  # the recorder logged each image 7 ms after its stamp
    path = write_image_bag(tmp_path / "flight.mcap", gradient_frames(8), TOPIC, corrupt=[3], log_times=logs)
    out = tmp_path / "poses.mcap"
    src = BagSource(path, topic=TOPIC)
    with PoseEstimator.from_bundle(bundle[0], backend="onnxruntime", precision="fp32") as est, \
            BagSink(out, frame_id="map", source=src) as sink:
        results = list(est.stream(src, policy="every"))
        for r in results:
            sink.write(r)
    assert [r.stamp_ns for r in results] == frame_stamps(8)
    assert all(r.latency_ms > 0 for r in results) and results[3].pose_covariance() is None
    msgs = _read(out)
    assert [m[2] for m in msgs] == [t for i, t in enumerate(logs) if i != 3]  # logged at the images' log times
    assert [m[3].header.stamp.sec * 10**9 + m[3].header.stamp.nanosec for m in msgs] == \
        [s for i, s in enumerate(frame_stamps(8)) if i != 3]
