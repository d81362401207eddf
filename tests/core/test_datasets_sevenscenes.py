"""7-Scenes layout: camera-to-world poses, split files, intrinsics, depth back-projection."""
import numpy as np
import pytest
from dataset_builders import random_poses, write_sevenscenes

from edgepose.datasets import load_dataset, visible_points
from edgepose.errors import ConfigError, DataFormatError
from edgepose.geometry import project_points

W, H = 16, 12


def depth_map():
    d = np.full((H, W), 2000, np.uint16)
    d[:, :8] = 1500
    d[0, :] = 65535  # invalid
    d[:, 0] = 0      # invalid
    return d


def test_poses_splits_and_default_intrinsics(tmp_path):
    P, Q = random_poses(6, seed=3)
    write_sevenscenes(tmp_path, P, Q, size=(W, H))
    ds = load_dataset(tmp_path)
    assert ds.format == "7scenes"
    assert ds.counts() == {"train": 3, "test": 3}
    assert {f.sequence for f in ds.split("test")} == {"seq-02"}
    for i, f in enumerate(sorted(ds.frames, key=lambda f: f.image.name)):
        np.testing.assert_allclose(f.position, P[i], atol=1e-8)
        np.testing.assert_allclose(f.rotation, Q[i], atol=1e-8)  # camera-to-world, read as is
    # no intrinsics.txt: f = 525 at 640x480, scaled to 16x12, principal point at the centre
    np.testing.assert_allclose(ds.frames[0].K, [[525 * W / 640, 0, W / 2], [0, 525 * H / 480, H / 2], [0, 0, 1]])
    assert any("intrinsics.txt" in p for p in ds.problems)


def test_intrinsics_txt_and_registered_depth_round_trip(tmp_path):
    P, Q = random_poses(4, seed=4)
    K = np.array([[20.0, 0, 8.5], [0, 19.0, 6.0], [0, 0, 1]])
    write_sevenscenes(tmp_path, P, Q, size=(W, H), K=K, depth=depth_map())
    ds = load_dataset(tmp_path)
    f = ds.frames[0]
    np.testing.assert_allclose(f.K, K)
    pts, synthetic = visible_points(f, max_points=50, seed=7)
    assert not synthetic and pts.shape == (50, 3)
    uv, z, ok = project_points(pts, f.position, f.rotation, f.K)
    assert ok.all()
    # every point re-projects to a pixel centre whose depth it carries; invalid pixels never used
    col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    np.testing.assert_allclose(uv - np.floor(uv), 0.5, atol=1e-6)
    np.testing.assert_allclose(z, depth_map()[row, col] / 1000.0, atol=1e-9)
    assert (row > 0).all() and (col > 0).all()
    again, _ = visible_points(f, max_points=50, seed=7)
    np.testing.assert_array_equal(pts, again)
    other, _ = visible_points(f, max_points=50, seed=8)
    assert not np.array_equal(pts, other)


def test_no_split_files_uses_every_k_then_sequence_policy(tmp_path):
    P, Q = random_poses(10, seed=5)
    write_sevenscenes(tmp_path, P, Q, size=(W, H), splits=False)
    ds = load_dataset(tmp_path)
    assert ds.counts() == {"train": 8, "test": 2}  # frames 0 and 5 (sorted by path) are test
    assert sorted(f.image.name for f in ds.split("test")) == ["frame-000000.color.png", "frame-000005.color.png"]
    ds = load_dataset(tmp_path, split_policy="sequence:seq-01")
    assert {f.sequence for f in ds.split("test")} == {"seq-01"} and ds.counts()["train"] == 5
    with pytest.raises(ConfigError, match="seq-01"):
        load_dataset(tmp_path, split_policy="sequence:seq-09")


def test_bad_pose_file_rejected_with_line(tmp_path):
    P, Q = random_poses(4, seed=6)
    write_sevenscenes(tmp_path, P, Q, size=(W, H))
    bad = tmp_path / "seq-01" / "frame-000001.pose.txt"
    bad.write_text("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")  # scaled, not a rotation
    with pytest.raises(DataFormatError, match="not a rotation") as e:
        load_dataset(tmp_path)
    assert e.value.path == str(bad) and e.value.line == 1
    bad.write_text("1 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(DataFormatError, match="expected 4 numbers") as e:
        load_dataset(tmp_path)
    assert e.value.line == 1
