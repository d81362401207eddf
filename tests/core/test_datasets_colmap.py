"""COLMAP text and binary models: world-to-camera conversion, camera models, tracks."""
import numpy as np
import pytest
from dataset_builders import random_poses, scipy_R, wxyz_of, write_png

from edgepose.datasets import load_dataset
from edgepose.datasets.colmap_model import write_model_bin, write_model_txt
from edgepose.errors import DataFormatError
from edgepose.geometry import project_points, rotation_error_deg

CAMERAS = [(1, "PINHOLE", 16, 12, [20.0, 21.0, 8.0, 6.0]),
           (2, "SIMPLE_RADIAL", 16, 12, [18.0, 7.5, 6.5, 0.01]),
           (3, "OPENCV", 16, 12, [19.0, 19.5, 8.2, 5.9, 0.1, -0.02, 0.001, 0.0])]
EXPECTED_K = {1: [[20, 0, 8], [0, 21, 6]], 2: [[18, 0, 7.5], [0, 18, 6.5]], 3: [[19, 0, 8.2], [0, 19.5, 5.9]]}


def build(root, writer, n=6):
    P, Q = random_poses(n, seed=11)
    X = np.random.default_rng(12).uniform(-0.5, 0.5, size=(5, 3))
    images = []
    for i, (p, q) in enumerate(zip(P, Q)):
        R_cw = scipy_R(q).T
        images.append((i + 1, wxyz_of(R_cw), -R_cw @ p, 1 + i % 3, f"cam{i}.png"))
        write_png(root / "images" / f"cam{i}.png", (16, 12))
    points = [(100 + k, X[k], [i + 1 for i in range(n) if (i + k) % 3 == 0]) for k in range(5)]
    writer(root / "sparse" / "0", CAMERAS, images, points)
    return P, Q, X


@pytest.mark.parametrize("writer", [write_model_txt, write_model_bin], ids=["text", "binary"])
def test_model_round_trip(tmp_path, writer):
    P, Q, X = build(tmp_path, writer)
    ds = load_dataset(tmp_path)
    assert ds.format == "colmap" and ds.counts() == {"train": 4, "test": 2}  # every:5 default
    for i, f in enumerate(ds.frames):
        np.testing.assert_allclose(f.position, P[i], atol=1e-9)
        assert rotation_error_deg(f.rotation, Q[i]) < 1e-4
        np.testing.assert_allclose(f.K[:2], EXPECTED_K[1 + i % 3])
        seen = [k for k in range(5) if (i + k) % 3 == 0]
        np.testing.assert_allclose(f.points, X[seen])
        _, depth, ok = project_points(f.points, f.position, f.rotation, f.K)
        np.testing.assert_allclose(depth, (scipy_R(Q[i]).T @ (X[seen] - P[i]).T)[2])
    assert ds.frames[2].extra["distortion"]["k1"] == 0.1
    assert any("distortion" in p for p in ds.problems)


def test_text_and_binary_agree(tmp_path):
    build(tmp_path / "a", write_model_txt)
    build(tmp_path / "b", write_model_bin)
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa.position, fb.position)
        np.testing.assert_array_equal(fa.rotation, fb.rotation)
        np.testing.assert_array_equal(fa.K, fb.K)


def test_unsupported_camera_model_and_bad_row(tmp_path):
    build(tmp_path, write_model_txt)
    cams = tmp_path / "sparse" / "0" / "cameras.txt"
    text = cams.read_text()
    cams.write_text(text.replace("3 OPENCV 16 12", "3 OPENCV_FISHEYE 16 12"))
    with pytest.raises(DataFormatError, match="OPENCV_FISHEYE model; expected one of"):
        load_dataset(tmp_path)
    cams.write_text(text.replace("1 PINHOLE 16 12 20.0", "1 PINHOLE 16 12"))
    with pytest.raises(DataFormatError, match="expected 8 columns") as e:
        load_dataset(tmp_path)
    assert e.value.line == 3
    cams.write_text(text)
    imgs = tmp_path / "sparse" / "0" / "images.txt"
    lines = imgs.read_text().splitlines()
    lines[3] = "1 0 0 0 0 0 0 0 1 cam0.png"  # zero quaternion
    imgs.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="not a unit quaternion") as e:
        load_dataset(tmp_path)
    assert e.value.line == 4


def test_truncated_binary_is_reported(tmp_path):
    build(tmp_path, write_model_bin)
    f = tmp_path / "sparse" / "0" / "points3D.bin"
    f.write_bytes(f.read_bytes()[:-6])
    with pytest.raises(DataFormatError, match="ends"):
        load_dataset(tmp_path)
