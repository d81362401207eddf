"""NeRF transforms.json (OpenGL axes), Middlebury *_par.txt and the edgepose CSV."""
import csv
import json
import math

import numpy as np
import pytest
from dataset_builders import random_poses, write_middlebury, write_nerf

from edgepose.datasets import load_dataset, visible_points
from edgepose.datasets.csv_format import write_csv
from edgepose.errors import DataFormatError
from edgepose.geometry import project_points, quat_to_matrix, rotation_error_deg


# --------------------------------------------------------------------------- NeRF
def test_opengl_camera_looking_down_minus_z_becomes_opencv(tmp_path):
    # identity OpenGL camera: looks along world -z, image up = world +y
    T1 = np.eye(4)
    T1[:3, 3] = [1, 2, 3]
    (tmp_path / "transforms.json").write_text(json.dumps(
        {"fl_x": 30, "fl_y": 31, "cx": 9.5, "cy": 4.5, "w": 20, "h": 10,
         "frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()},
                    {"file_path": "b.png", "transform_matrix": T1.tolist()}]}))
    ds = load_dataset(tmp_path, split_policy="every:2", check_images=False)
    f = ds.frames[0]
    np.testing.assert_allclose(ds.frames[1].position, [1, 2, 3])
    R = quat_to_matrix(f.rotation)
    np.testing.assert_allclose(R[:, 2], [0, 0, -1], atol=1e-12)  # OpenCV +z (forward) = world -z
    np.testing.assert_allclose(R[:, 1], [0, -1, 0], atol=1e-12)  # OpenCV +y (down) = world -y
    np.testing.assert_allclose(f.rotation, [0, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(f.K, [[30, 0, 9.5], [0, 31, 4.5], [0, 0, 1]])


@pytest.mark.parametrize("with_ext, split", [(False, False), (True, True)])
def test_nerf_round_trip(tmp_path, with_ext, split):
    P, Q = random_poses(7, seed=21)
    write_nerf(tmp_path, P, Q, size=(20, 10), angle_x=0.8, with_ext=with_ext, split=split)
    ds = load_dataset(tmp_path)
    assert ds.format == "nerf"
    assert ds.counts() == ({"train": 5, "test": 2})
    fx = 10 / math.tan(0.4)
    for i, f in enumerate(ds.frames):
        assert f.image.suffix == ".png" and f.image.is_file()
        np.testing.assert_allclose(f.position, P[i], atol=1e-12)
        assert rotation_error_deg(f.rotation, Q[i]) < 1e-4
        np.testing.assert_allclose(f.K, [[fx, 0, 10], [0, fx, 5], [0, 0, 1]])
    pts, synthetic = visible_points(ds.frames[0], max_points=40)
    assert synthetic
    uv, z, ok = project_points(pts, ds.frames[0].position, ds.frames[0].rotation, ds.frames[0].K)
    assert ok.all() and (uv >= 0).all() and (uv <= [20, 10]).all()
    # cameras on a 3-unit sphere looking at the origin: depth range 0.5x..2x of 3
    assert 1.4 < z.min() and z.max() < 6.1


def test_nerf_bad_matrix(tmp_path):
    (tmp_path / "transforms.json").write_text(json.dumps(
        {"camera_angle_x": 0.5, "w": 4, "h": 4,
         "frames": [{"file_path": "a", "transform_matrix": [[1, 0, 0], [0, 1, 0]]}]}))
    with pytest.raises(DataFormatError, match="frames\\[0\\].*4x4"):
        load_dataset(tmp_path, check_images=False)


# --------------------------------------------------------------------------- Middlebury
def test_middlebury_round_trip_box_depth_range(tmp_path):
    P, Q = random_poses(10, seed=31, radius=0.6)
    K = np.array([[30.0, 0, 8], [0, 31.0, 6], [0, 0, 1]])
    box = [[-0.05, -0.05, -0.05], [0.05, 0.05, 0.05]]
    write_middlebury(tmp_path, P, Q, K, box=box)
    ds = load_dataset(tmp_path)
    assert ds.format == "middlebury" and ds.counts() == {"train": 8, "test": 2}
    for i, f in enumerate(ds.frames):
        np.testing.assert_allclose(f.position, P[i], atol=1e-9)
        assert rotation_error_deg(f.rotation, Q[i]) < 1e-4
        np.testing.assert_allclose(f.K, K)
    f = ds.frames[0]
    pts, synthetic = visible_points(f, max_points=64)
    assert synthetic and pts.shape == (64, 3)
    _, z, _ = project_points(pts, f.position, f.rotation, f.K)
    centre_depth = (quat_to_matrix(f.rotation).T @ (0 - f.position))[2]
    assert centre_depth - 0.09 < z.min() and z.max() < centre_depth + 0.09  # within the box's depth


def test_middlebury_count_mismatch_and_short_row(tmp_path):
    P, Q = random_poses(3, seed=32)
    write_middlebury(tmp_path, P, Q, np.diag([30.0, 30.0, 1.0]))
    par = tmp_path / "obj_par.txt"
    lines = par.read_text().splitlines()
    par.write_text("\n".join(["4"] + lines[1:]) + "\n")
    with pytest.raises(DataFormatError, match="says 4 images; found 3") as e:
        load_dataset(tmp_path)
    assert e.value.line == 1
    par.write_text("\n".join(lines[:2] + [lines[2].rsplit(" ", 1)[0]] + lines[3:]) + "\n")
    with pytest.raises(DataFormatError, match="expected 22 columns") as e:
        load_dataset(tmp_path)
    assert e.value.line == 3


def test_dino_set_cameras_look_at_the_object(dino_dir):
    ds = load_dataset(dino_dir)
    assert ds.format == "middlebury" and ds.counts() == {"train": 290, "test": 73}
    assert (ds.frames[0].width, ds.frames[0].height) == (640, 480)
    box = ds.frames[0].extra["scene_box"]
    centre = box.mean(axis=0)
    P, Q = ds.positions(), ds.rotations()
    dist = np.linalg.norm(P - centre, axis=1)
    assert np.all(np.abs(dist - 0.65) < 0.03), (dist.min(), dist.max())
    axis = quat_to_matrix(Q)[:, :, 2]
    cos = np.sum(axis * (centre - P) / dist[:, None], axis=1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 5.0
    uv, z, ok = project_points(centre[None], P, Q, ds.frames[0].K)
    assert ok.all() and (uv[:, 0, 0] > 0).all() and (uv[:, 0, 0] < 640).all()
    assert (uv[:, 0, 1] > 0).all() and (uv[:, 0, 1] < 480).all()


# --------------------------------------------------------------------------- CSV
def test_csv_round_trip_and_bad_rows(tmp_path):
    P, Q = random_poses(5, seed=41)
    src = tmp_path / "src"
    write_middlebury(src, P, Q, np.array([[30.0, 0, 8], [0, 31.0, 6], [0, 0, 1]]))
    ds = load_dataset(src, split_policy="every:2")
    write_csv(src / "poses.csv", ds.frames, src)
    # one direction alone: the written file, read by Python's csv module under README's column names
    # (image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy,...), holds the poses the scene was made from
    with open(src / "poses.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["image"] for r in table] == [f"obj{i + 1:04d}.png" for i in range(5)]
    for i, r in enumerate(table):
        np.testing.assert_allclose([float(r[k]) for k in ("x", "y", "z")], P[i], atol=1e-12)
        assert rotation_error_deg([float(r[k]) for k in ("qw", "qx", "qy", "qz")], Q[i]) < 1e-4
        assert [float(r[k]) for k in ("fx", "fy", "cx", "cy")] == [30.0, 31.0, 8.0, 6.0]
    back = load_dataset(src, format="csv")
    assert back.format == "csv" and back.counts() == ds.counts()
    for a, b in zip(ds.frames, back.frames):
        np.testing.assert_array_equal(a.position, b.position)
        np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-15)
        np.testing.assert_array_equal(a.K, b.K)
        assert a.split == b.split
    text = (src / "poses.csv").read_text()
    lines = text.splitlines()
    (src / "poses.csv").write_text("\n".join(lines[:3] + [lines[3].replace(",test", ",val").replace(",train", ",val")]) + "\n")
    with pytest.raises(DataFormatError, match="split must be one of") as e:
        load_dataset(src, format="csv")
    assert e.value.line == 4
    bad_q = lines[2].split(",")
    bad_q[4:8] = ["0.5", "0.5", "0.5", "0.6"]
    (src / "poses.csv").write_text("\n".join(lines[:2] + [",".join(bad_q)]) + "\n")
    with pytest.raises(DataFormatError, match="not a unit quaternion") as e:
        load_dataset(src, format="csv")
    assert e.value.line == 3
    (src / "poses.csv").write_text("image,x,y,z\n")
    with pytest.raises(DataFormatError, match="lacks column"):
        load_dataset(src, format="csv")
