"""edgepose-run over bags that real ROS tooling wrote (tests/runtime/bags, see SOURCE.md there):
rosbag2's own test bags (metadata v4, v7, v8; sqlite3 and MCAP from `mcap go`, libmcap 0.8
and 1.1; zstd and uncompressed; a split folder without metadata.yaml; a bag with service-event
topics) and a ROS 1 bag recorded by ros_comm's rosbag (bz2 chunks). Each is copied with image
messages added (rosbags' own writers, the recording's structure kept) and run through the
`edgepose-run` CLI as a subprocess. The outputs are checked with ROS 2 Humble's decoding rules
(humble_rosbag2_rules.py, from rosbag2's humble sources), read back with the official `mcap`
reader + `mcap-ros2-support` and with rosbags."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the ROS tests need rosbags: pip install 'edgepose[ros]'")

from humble_rosbag2_rules import HumbleDecodeError, check_bag, decode_metadata  # noqa: E402
from ros_cli import edgepose_run  # noqa: E402

BAGS = Path(__file__).parent / "bags"
TOPIC = "/camera/image_raw"
REAL = ["talker_mcap_v4", "talker_sqlite3_v4", "cdr_test_mcap_v7", "service_events_mcap_v8",
        "split_no_metadata_mcap", "turtlesim_ros1_bz2.bag"]
N = 6
SIM_T0 = 932_000_000_000  # header stamps on a simulation clock (~932 s), far from the recordings' log times


def mcap_files(out: Path):
    return sorted(out.glob("*.mcap")) if out.is_dir() else [out]


def official_read(out: Path):
    """``{topic: [(log_time, decoded message)]}`` by the official mcap reader + mcap-ros2-support."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    got = {}
    for f in mcap_files(out):
        with open(f, "rb") as fh:
            for _, channel, message, msg in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
                got.setdefault(channel.topic, []).append((message.log_time, msg))
    return got


def test_humble_rules_accept_rosbag2s_own_metadata_and_refuse_version_9(tmp_path):
    for name in ("talker_mcap_v4", "talker_sqlite3_v4", "cdr_test_mcap_v7", "service_events_mcap_v8"):
        qos = decode_metadata((BAGS / name / "metadata.yaml").read_text(), name)
        assert all(p and p[0]["reliability"] == 1 for p in qos.values())  # 1 = reliable, written by rosbag2
    from rosbags.rosbag2 import StoragePlugin, Writer

    from edgepose.runtime.ros.messages import POSE_QOS, POSE_TYPE, get_typestore, to_rosbags_qos

    with Writer(tmp_path / "v9", version=9, storage_plugin=StoragePlugin.MCAP) as w:  # what main wrote
        w.add_connection("/p", POSE_TYPE, typestore=get_typestore(), offered_qos_profiles=[to_rosbags_qos(POSE_QOS)])
    with pytest.raises(HumbleDecodeError, match="expected a scalar"):  # metadata.yaml: a sequence, not a string
        decode_metadata((tmp_path / "v9" / "metadata.yaml").read_text())
    with pytest.raises(HumbleDecodeError, match="expected an integer, found 'keep_last'"):  # MCAP channel
        check_bag(next((tmp_path / "v9").glob("*.mcap")))


@pytest.mark.parametrize("name", REAL)
def test_originals_list_their_topics_and_exit_0(name, bundle):
    """The recordings as they are (no images): listing works, exit 0 (also with a service-event
    schema rosbags cannot parse, and without metadata.yaml)."""
    proc = edgepose_run(bundle[0], "--source", BAGS / name)
    assert "it has no image topics" in proc.stdout and "error" not in proc.stderr


@pytest.mark.parametrize("name", REAL)
def test_edgepose_run_over_each_real_bag_with_images(name, bundle, tmp_path):
    from rosbags.highlevel import AnyReader

    from ros_image_bags import copy_with_images, gradient_frames

    src = tmp_path / name
    stamps = [SIM_T0 + i * 33_333_333 for i in range(N)]
    logs = copy_with_images(BAGS / name, src, gradient_frames(N, size=(40, 30)), TOPIC, stamps=stamps)
    out = str(tmp_path / "poses.mcap") if name.endswith(("v4", ".bag")) else f"{tmp_path / 'poses_bag'}/"
    proc = edgepose_run(bundle[0], "--source", src, "--topic", TOPIC, "--out", out, "--copy-images",
                        "--camera-to-base", "optical", "--precision", "fp32", "--quiet")
    assert f"ok {N}, failed 0" in proc.stderr
    out = Path(out.rstrip("/"))

    qos = check_bag(out)  # Humble decodes metadata.yaml and every channel's QoS
    assert qos["/edgepose/pose"][0]["reliability"] == 1
    if name.endswith(".bag"):
        assert qos[TOPIC] == []  # ROS 1 records no QoS: Humble's player then uses its default (reliable)
    else:
        assert qos[TOPIC][0]["reliability"] == 1 and qos[TOPIC][0]["depth"] == 5  # the recorded publisher's

    got = official_read(out)
    poses = got["/edgepose/pose"]
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in poses] == stamps  # image stamps
    assert [t for t, _ in poses] == logs  # logged at each image's log time: the recording's clock
    assert [t for t, _ in got[TOPIC]] == logs  # every image copied, none lost to a clock comparison
    for _, m in poses:
        cov = np.asarray(m.pose.covariance).reshape(6, 6)
        assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
    with AnyReader([out]) as r:
        counts = {c.topic: c.msgcount for c in r.connections}
    assert counts == {"/edgepose/pose": N, TOPIC: N}
    summary = json.loads(out.with_name(out.name + ".summary.json").read_text())
    assert summary["camera_frame_id"] == "camera_optical_frame" and summary["pose_of"].startswith("base")
    assert summary["rosbag2_metadata_version"] == 8 and summary["images_copied"] == N
