"""The output bag's timeline, frames and messages (issue 20, items 2, 7-9), through the real
`edgepose-run` CLI on bags written by rosbags; outputs read back with the official mcap reader."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("rosbags", reason="the ROS tests need rosbags: pip install 'edgepose[ros]'")

from ros_image_bags import frame_stamps, gradient_frames, write_image_bag  # noqa: E402
from ros_cli import edgepose_run  # noqa: E402

BAGS = Path(__file__).parent / "bags"
TOPIC = "/camera/image_raw"
RECORDED_NS = 1_780_000_000_000_000_000  # log times of a recording made in 2026


def log_times(path: Path, topic: str):
    from mcap.reader import make_reader

    with open(path, "rb") as fh:
        return [m.log_time for _, ch, m in make_reader(fh).iter_messages() if ch.topic == topic]


@pytest.mark.parametrize("kind", ["late_log", "sim_time"])
def test_poses_are_logged_at_their_images_log_time_and_every_image_is_copied(kind, bundle, tmp_path):
    n = 12
    if kind == "late_log":  # a normal recording: the recorder logs each image 5 ms after its stamp
        stamps = frame_stamps(n)
        logs = [s + 5_000_000 for s in stamps]
    else:  # sim time: stamps ~932 s, log times on the wall clock of 2026
        stamps = [932_000_000_000 + i * 50_000_000 for i in range(n)]
        logs = [RECORDED_NS + i * 50_000_000 for i in range(n)]
    bag = write_image_bag(tmp_path / "in.mcap", gradient_frames(n), TOPIC, stamps, log_times=logs)
    out = tmp_path / "poses.mcap"
    edgepose_run(bundle[0], "--source", bag, "--topic", TOPIC, "--out", out, "--copy-images", "--precision", "fp32", "--quiet")
    assert log_times(out, "/edgepose/pose") == logs  # main logged them at the stamps (1970 for sim time)
    assert log_times(out, TOPIC) == logs  # main copied 11 of 12 (late_log) and 0 of 12 (sim_time)
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(out, "rb") as fh:
        got = [m for _, ch, _, m in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages()
               if ch.topic == "/edgepose/pose"]
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got] == stamps  # header.stamp kept


def test_zero_stamps_warn_and_optical_pose_is_named(bundle, tmp_path):
    bag = write_image_bag(tmp_path / "in.mcap", gradient_frames(3), TOPIC, [0, 0, 0],
                          log_times=[RECORDED_NS + i for i in range(3)])
    out = tmp_path / "poses.mcap"
    proc = edgepose_run(bundle[0], "--source", bag, "--topic", TOPIC, "--out", out, "--precision", "fp32", "--quiet")
    assert "header.stamp 0" in proc.stderr
    assert "OPTICAL frame's pose" in proc.stderr and "--camera-to-base" in proc.stderr  # item 9: not silent
    assert log_times(out, "/edgepose/pose") == [RECORDED_NS + i for i in range(3)]  # not all at t = 0
    summary = json.loads((tmp_path / "poses.mcap.summary.json").read_text())
    assert summary["pose_of"] == "camera_optical_frame" and summary["camera_frame_id"] == "camera_optical_frame"
    assert summary["zero_stamps"] == 3 and summary["log_time"] == "image message log time"


def test_unreadable_bags_name_the_fix_of_their_own_format(bundle, tmp_path):
    ros1 = tmp_path / "unclosed.bag"
    data = (BAGS / "turtlesim_ros1_bz2.bag").read_bytes()
    ros1.write_bytes(data[: len(data) // 2])  # a recording whose rosbag record was killed: no index
    proc = edgepose_run(bundle[0], "--source", ros1, "--topic", TOPIC, ok=(2,))
    assert "rosbag reindex" in proc.stderr and "ros2 bag" not in proc.stderr

    split = tmp_path / "split"
    shutil.copytree(BAGS / "split_no_metadata_mcap", split)
    part = split / "multiple_files_1.mcap"
    part.write_bytes(part.read_bytes()[:20000])  # one of its files cut short as well
    proc = edgepose_run(bundle[0], "--source", split, "--topic", TOPIC, ok=(2,))
    assert f"ros2 bag reindex {split}" in proc.stderr and "rosbag reindex" not in proc.stderr
    assert len(proc.stderr) < 1500  # the reader's message, not a dump of schemas


def test_depth_topic_is_listed_apart_and_refused(bundle, tmp_path):
    bag = write_image_bag(tmp_path / "in.mcap", gradient_frames(2), "/camera/depth/image_rect_raw")
    proc = edgepose_run(bundle[0], "--source", bag)
    assert "it has no image topics" in proc.stdout and "depth topics" in proc.stdout
    proc = edgepose_run(bundle[0], "--source", bag, "--topic", "/camera/depth/image_rect_raw", ok=(2,))
    assert "depth image topic" in proc.stderr and "--allow-depth" in proc.stderr
    edgepose_run(bundle[0], "--source", bag, "--topic", "/camera/depth/image_rect_raw", "--allow-depth",
        "--out", tmp_path / "p.jsonl", "--quiet")
