"""COLMAP text and binary models: world-to-camera conversion, camera models, tracks."""
import struct

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


# --------------------------------------------------------------------------- COLMAP's own layout
# A model written here field by field from COLMAP's documentation (doc/format.rst for the text
# files; the binary layout of src/colmap/scene/reconstruction_io.cc, which
# scripts/python/read_write_model.py reads the same way), not with edgepose's writers, whose
# model-id table is the reader's own. Camera models 0 (SIMPLE_PINHOLE) and 3 (RADIAL) are ids the
# round trip above never writes. Hand-worked poses: image 3 has R_cw = I, t = (0, 0, -2), so its
# centre is -R^T t = (0, 0, 2); image 5 turns 90 deg about z, q_cw = (c, 0, 0, c) with c = cos 45,
# t = (1, 0, 0): the centre is -Rz(-90) (1, 0, 0) = (0, 1, 0) and camera-to-world is (c, 0, 0, -c).
C45 = float(np.sqrt(0.5))
HAND_CAMERAS = [(7, "SIMPLE_PINHOLE", 0, [20.0, 8.0, 6.0]), (9, "RADIAL", 3, [18.0, 7.5, 6.5, 0.01, 0.0])]
HAND_IMAGES = [(3, (1.0, 0.0, 0.0, 0.0), (0.0, 0.0, -2.0), 7, "a.png", [(1.0, 2.0, 42)]),
               (5, (C45, 0.0, 0.0, C45), (1.0, 0.0, 0.0), 9, "b.png", [(1.0, 2.0, 42), (3.0, 4.0, 43)])]
HAND_POINTS = [(42, (0.1, 0.2, 0.3), [(3, 0), (5, 0)]), (43, (0.0, 0.0, 0.0), [(5, 1)])]


def _write_colmap_bin(folder):
    folder.mkdir(parents=True)
    le = struct.Struct  # every field little-endian
    cams = le("<Q").pack(len(HAND_CAMERAS))
    for cid, _, model_id, params in HAND_CAMERAS:  # uint32 id, int32 model id, uint64 width, height, doubles
        cams += le("<I").pack(cid) + le("<i").pack(model_id) + le("<Q").pack(16) + le("<Q").pack(12)
        cams += b"".join(le("<d").pack(p) for p in params)
    imgs = le("<Q").pack(len(HAND_IMAGES))
    for iid, q, t, cid, name, points2d in HAND_IMAGES:  # id, qvec (w x y z), tvec, camera id, name NUL
        imgs += le("<I").pack(iid) + b"".join(le("<d").pack(v) for v in (*q, *t)) + le("<I").pack(cid)
        imgs += name.encode("utf-8") + b"\0" + le("<Q").pack(len(points2d))
        imgs += b"".join(le("<d").pack(x) + le("<d").pack(y) + le("<q").pack(pid) for x, y, pid in points2d)
    pts = le("<Q").pack(len(HAND_POINTS))
    for pid, xyz, track in HAND_POINTS:  # uint64 id, xyz, rgb bytes, double error, uint64 track length
        pts += le("<Q").pack(pid) + b"".join(le("<d").pack(v) for v in xyz) + bytes([200, 100, 50])
        pts += le("<d").pack(0.7) + le("<Q").pack(len(track))
        pts += b"".join(le("<I").pack(iid) + le("<I").pack(idx) for iid, idx in track)
    (folder / "cameras.bin").write_bytes(cams)
    (folder / "images.bin").write_bytes(imgs)
    (folder / "points3D.bin").write_bytes(pts)


def _write_colmap_txt(folder):
    folder.mkdir(parents=True)
    (folder / "cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        "7 SIMPLE_PINHOLE 16 12 20 8 6\n9 RADIAL 16 12 18 7.5 6.5 0.01 0\n")
    (folder / "images.txt").write_text(
        "# Image list with two lines of data per image:\n"
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
        f"3 1 0 0 0 0 0 -2 7 a.png\n1 2 42\n5 {C45!r} 0 0 {C45!r} 1 0 0 9 b.png\n1 2 42 3 4 43\n")
    (folder / "points3D.txt").write_text(
        "# 3D point list with one line of data per point:\n"
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
        "42 0.1 0.2 0.3 200 100 50 0.7 3 0 5 0\n43 0 0 0 200 100 50 0.7 5 1\n")


@pytest.mark.parametrize("writer", [_write_colmap_txt, _write_colmap_bin], ids=["text", "binary"])
def test_a_model_in_colmaps_documented_layout_reads_as_worked_by_hand(tmp_path, writer):
    writer(tmp_path / "sparse" / "0")
    for name in ("a.png", "b.png"):
        write_png(tmp_path / "images" / name, (16, 12))
    frames = {f.image.name: f for f in load_dataset(tmp_path, split_policy="every:2").frames}
    a, b = frames["a.png"], frames["b.png"]
    np.testing.assert_allclose(a.position, [0.0, 0.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(a.rotation, [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(b.position, [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(b.rotation, [C45, 0.0, 0.0, -C45], atol=1e-12)
    np.testing.assert_allclose(a.K, [[20, 0, 8], [0, 20, 6], [0, 0, 1]])      # SIMPLE_PINHOLE f, cx, cy
    np.testing.assert_allclose(b.K, [[18, 0, 7.5], [0, 18, 6.5], [0, 0, 1]])  # RADIAL f, cx, cy, k1, k2
    np.testing.assert_allclose(a.points, [[0.1, 0.2, 0.3]])                   # tracks: a sees 42, b both
    np.testing.assert_allclose(sorted(map(tuple, b.points)), [(0.0, 0.0, 0.0), (0.1, 0.2, 0.3)])
