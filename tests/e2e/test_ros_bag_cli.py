"""The issue's end-to-end check: a real MCAP of 100 camera frames (98 sensor_msgs/Image, one
CompressedImage, one corrupt) through `edgepose-run` as a subprocess, the output bag read back
with rosbags. The oracle for the poses is the same frames run from a folder of PNG files."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("rosbags", reason="the ROS tests need rosbags: pip install 'edgepose[ros]'")

TOPIC = "/camera/image_raw"
N, COMPRESSED, CORRUPT = 100, 37, 64


def run(*args, ok=(0,)):
    exe = Path(sys.executable).with_name("edgepose-run")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose", "run"]
    proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert proc.returncode in ok, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from ros_image_bags import frame_stamps, gradient_frames, write_image_bag
    from synthetic_bundles import make_synthetic_bundle

    root = tmp_path_factory.mktemp("rosbag_e2e")
    make_synthetic_bundle(root / "bundle", size=(32, 24), precisions=("fp32",))
    imgs = gradient_frames(N, size=(48, 36))
    stamps = frame_stamps(N)
    bag = write_image_bag(root / "flight.mcap", imgs, TOPIC, stamps, compressed=[COMPRESSED], corrupt=[CORRUPT])
    folder = root / "frames"
    folder.mkdir()
    for i, img in enumerate(imgs):
        if i == CORRUPT:
            (folder / f"frame{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        else:
            Image.fromarray(img).save(folder / f"frame{i}.png")
    return {"root": root, "bundle": root / "bundle", "bag": bag, "stamps": stamps, "folder": folder}


def test_bag_in_bag_out_with_stamps_quaternions_and_covariance(setup):
    from rosbags.highlevel import AnyReader

    root, out = setup["root"], setup["root"] / "poses.mcap"
    proc = run(setup["bundle"], "--source", setup["bag"], "--topic", TOPIC, "--out", out, "--copy-images",
               "--precision", "fp32", "--quiet")
    assert "ok 99, failed 1" in proc.stderr and "ros2 bag play" in proc.stderr
    ref = root / "ref.jsonl"
    run(setup["bundle"], "--source", setup["folder"], "--out", ref, "--precision", "fp32", "--quiet")
    expect = [json.loads(line) for line in ref.read_text().splitlines()]

    with AnyReader([out]) as reader:
        counts = {}
        for c in reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        poses = [reader.deserialize(raw, c.msgtype) for c, _, raw in
                 reader.messages(connections=[c for c in reader.connections if c.topic == "/edgepose/pose"])]
    assert counts == {TOPIC: N, "/edgepose/pose": N - 1}  # 100 input messages copied through, one pose per good frame
    good = [i for i in range(N) if i != CORRUPT]
    assert [p.header.stamp.sec * 10**9 + p.header.stamp.nanosec for p in poses] == [setup["stamps"][i] for i in good]
    for i, p in zip(good, poses):
        assert p.header.frame_id == "map"
        o = p.pose.pose.orientation
        q = np.array([o.w, o.x, o.y, o.z])
        assert abs(np.linalg.norm(q) - 1.0) < 1e-6
        cov = np.asarray(p.pose.covariance).reshape(6, 6)
        assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
        pos = p.pose.pose.position
        np.testing.assert_allclose([pos.x, pos.y, pos.z], expect[i]["position_m"], atol=2e-6)
        np.testing.assert_allclose(q, expect[i]["rotation_wxyz"], atol=2e-6)
        assert cov[0, 0] == pytest.approx(expect[i]["sigma_position_m"] ** 2 * np.pi / 8, rel=1e-4)
    assert not expect[CORRUPT]["ok"]
    summary = json.loads((root / "poses.mcap.summary.json").read_text())
    assert summary["poses"] == N - 1 and summary["failed_frames_not_published"] == 1


def test_existing_output_is_refused_and_topic_listing_stops(setup):
    out = setup["root"] / "poses.mcap"
    if not out.exists():
        out.write_bytes(b"x")
    proc = run(setup["bundle"], "--source", setup["bag"], "--topic", TOPIC, "--out", out, ok=(2,))
    assert "exists" in proc.stderr and "--overwrite" in proc.stderr
    proc = run(setup["bundle"], "--source", setup["bag"])  # listing is what was asked: stdout, exit 0
    assert "error" not in proc.stderr and f"--topic TOPIC" in proc.stdout
    assert f"{TOPIC} (sensor_msgs/msg/CompressedImage, sensor_msgs/msg/Image, {N} messages)" in proc.stdout \
        or f"{TOPIC} (sensor_msgs/msg/Image, sensor_msgs/msg/CompressedImage, {N} messages)" in proc.stdout
