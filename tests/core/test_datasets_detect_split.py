"""Format detection, the split policy, and the frustum fallback's flags."""
import numpy as np
import pytest
from dataset_builders import random_poses, write_middlebury, write_nerf, write_sevenscenes

from edgepose.datasets import detect_format, load_dataset, parse_split_policy, visible_points
from edgepose.datasets.scene import default_depth_range, optical_axes_centre
from edgepose.errors import ConfigError, DataFormatError


def test_detects_each_layout_and_refuses_ambiguity(tmp_path):
    P, Q = random_poses(4, seed=1)
    write_sevenscenes(tmp_path / "s", P, Q)
    write_nerf(tmp_path / "n", P, Q)
    write_middlebury(tmp_path / "m", P, Q, np.diag([20.0, 20.0, 1.0]))
    assert [detect_format(tmp_path / d) for d in "snm"] == ["7scenes", "nerf", "middlebury"]
    write_nerf(tmp_path / "m", P, Q)  # now both a par file and transforms.json
    with pytest.raises(DataFormatError, match="several formats: nerf, middlebury") as e:
        detect_format(tmp_path / "m")
    assert "--format" in str(e.value)
    assert load_dataset(tmp_path / "m", format="middlebury").format == "middlebury"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no known dataset layout"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(ConfigError, match="unknown dataset format"):
        load_dataset(tmp_path / "m", format="kitti")


def test_split_policy_parsing():
    assert str(parse_split_policy("every:7")) == "every:7"
    assert parse_split_policy("sequence: a, b").sequences == ("a", "b")
    assert parse_split_policy("given").kind == "given"
    for bad in ("every:1", "every:x", "sequence:", "random:3"):
        with pytest.raises(ConfigError):
            parse_split_policy(bad)


def test_every_k_is_by_sorted_name_not_file_order(tmp_path):
    P, Q = random_poses(11, seed=2)
    write_middlebury(tmp_path, P, Q, np.diag([20.0, 20.0, 1.0]))
    par = tmp_path / "obj_par.txt"
    lines = par.read_text().splitlines()
    par.write_text("\n".join([lines[0]] + lines[1:][::-1]) + "\n")  # reversed rows
    ds = load_dataset(tmp_path, split_policy="every:4")
    test = sorted(f.image.name for f in ds.split("test"))
    assert test == ["obj0001.png", "obj0005.png", "obj0009.png"]
    with pytest.raises(ConfigError, match="no split of its own"):
        load_dataset(tmp_path, split_policy="given")


def test_depth_range_rule_converging_and_parallel_cameras():
    P, Q = random_poses(20, seed=3, radius=2.0)
    c = optical_axes_centre(P, Q)
    assert c is not None and np.linalg.norm(c) < 0.3
    near, far, converged = default_depth_range(P, Q)
    assert converged and 0.9 < near < 1.1 and 3.6 < far < 4.4
    # a forward-moving rig: all axes parallel -> no centre, spread-based range, flagged
    P2 = np.stack([np.zeros(10), np.zeros(10), np.linspace(0, 9, 10)], 1)
    Q2 = np.tile([1.0, 0, 0, 0], (10, 1))
    assert optical_axes_centre(P2, Q2) is None
    near, far, converged = default_depth_range(P2, Q2)
    assert not converged and near == pytest.approx(1.25) and far == pytest.approx(5.0)


def test_frames_without_3d_data_get_flagged_synthetic_points(tmp_path):
    P, Q = random_poses(6, seed=4)
    write_sevenscenes(tmp_path, P, Q)  # no depth maps
    ds = load_dataset(tmp_path)
    assert any("synthetic frustum points" in p for p in ds.problems)
    f = ds.frames[0]
    pts, synthetic = visible_points(f, max_points=16)
    assert synthetic and pts.shape == (16, 3) and "depth_range" in f.extra


def test_own_points_subsampled_deterministically():
    from edgepose.records import FrameRecord
    X = np.random.default_rng(5).normal(size=(1000, 3))
    f = FrameRecord(image="a/b.png", position=np.zeros(3), rotation=np.array([1.0, 0, 0, 0]),
                    K=np.eye(3), width=4, height=4, points=X)
    a, syn = visible_points(f, max_points=256, seed=1)
    b, _ = visible_points(f, max_points=256, seed=1)
    assert not syn and a.shape == (256, 3) and np.array_equal(a, b)
    assert len({tuple(r) for r in a} & {tuple(r) for r in X}) == 256  # a subset, no duplicates


def test_malformed_nvm_point_names_the_line(tmp_path):
    from dataset_builders import write_cambridge
    P, Q = random_poses(4, seed=6)
    write_cambridge(tmp_path, P, Q, np.zeros((2, 3)))
    nvm = tmp_path / "reconstruction.nvm"
    lines = nvm.read_text().splitlines()
    lines[-3] = lines[-3].replace(" 2 ", " 3 ", 1) if " 2 " in lines[-3] else lines[-3] + " 9 0 1.0 2.0"
    nvm.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as e:
        load_dataset(tmp_path)
    assert e.value.path.endswith("reconstruction.nvm") and e.value.line == len(lines) - 2
