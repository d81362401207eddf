"""Inputs that raised tracebacks (or hung) in the readers (issue 14, item 6): each must be a
DataFormatError naming the file (and line where the format has lines), within seconds."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from dataset_builders import (colmap_inputs, random_poses, write_cambridge, write_csv_dataset, write_middlebury,
                              write_nerf, write_png, write_sevenscenes)

from edgepose.datasets import load_dataset
from edgepose.datasets.colmap_model import write_model_bin, write_model_txt
from edgepose.errors import DataFormatError

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")


def refused(root, needle, file_end):
    with pytest.raises(DataFormatError) as e:
        load_dataset(root, check_images=False)
    assert needle in str(e.value), str(e.value)
    assert e.value.path is not None and file_end in e.value.path, str(e.value)
    return e.value


# --------------------------------------------------------------------------- NeRF
def nerf_with(root, change):
    P, Q = random_poses(4, seed=1)
    write_nerf(root, P, Q)
    meta = json.loads((root / "transforms.json").read_text())
    change(meta)
    (root / "transforms.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("angle", [0, -0.5, 3.5, "wide", None])
def test_nerf_camera_angle_out_of_range(tmp_path, angle):
    nerf_with(tmp_path, lambda m: m.update(camera_angle_x=angle))
    refused(tmp_path, "camera_angle_x" if isinstance(angle, (int, float)) else "number", "transforms.json")


@pytest.mark.parametrize("w, h", [("abc", 10), (20, 0), (-20, 10), (20.5, 10), (True, 10), ([20], 10)])
def test_nerf_bad_image_size(tmp_path, w, h):
    nerf_with(tmp_path, lambda m: m.update(w=w, h=h))
    refused(tmp_path, "'w' and 'h'", "transforms.json")


def test_nerf_binary_transforms_json(tmp_path):
    P, Q = random_poses(4, seed=1)
    write_nerf(tmp_path, P, Q)
    (tmp_path / "transforms.json").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    refused(tmp_path, "not a UTF-8 text file", "transforms.json")


def test_nerf_non_string_file_path(tmp_path):
    nerf_with(tmp_path, lambda m: m["frames"][1].update(file_path=["a", "b"]))
    assert "frames[1]" in str(refused(tmp_path, "file_path", "transforms.json"))


# --------------------------------------------------------------------------- COLMAP
@pytest.mark.parametrize("w, h", [(16, 0), (0, 12)])
def test_colmap_binary_camera_size_zero(tmp_path, w, h):
    cams, imgs, pts = colmap_inputs(tmp_path)
    cams[0] = (1, "PINHOLE", w, h, cams[0][4])
    write_model_bin(tmp_path / "sparse", cams, imgs, pts)
    with pytest.raises(DataFormatError, match="positive integer") as e:
        load_dataset(tmp_path)  # with the images: the aspect-ratio check divided by the height
    assert "cameras.bin" in e.value.path


def test_colmap_text_camera_size_negative(tmp_path):
    cams, imgs, pts = colmap_inputs(tmp_path)
    cams[0] = (1, "PINHOLE", -16, 12, cams[0][4])
    write_model_txt(tmp_path / "sparse", cams, imgs, pts)
    assert refused(tmp_path, "positive integer width", "cameras.txt").line == 3


@pytest.mark.parametrize("column, value", [(0, "p7"), (8, "one")], ids=["POINT3D_ID", "track IMAGE_ID"])
def test_colmap_points_non_numeric_ids(tmp_path, column, value):
    cams, imgs, pts = colmap_inputs(tmp_path)
    write_model_txt(tmp_path / "sparse", cams, imgs, pts)
    p = tmp_path / "sparse" / "points3D.txt"
    lines = p.read_text().splitlines()
    tok = lines[3].split()
    tok[column] = value
    lines[3] = " ".join(tok)
    p.write_text("\n".join(lines) + "\n")
    assert refused(tmp_path, "expected an integer", "points3D.txt").line == 4


def test_colmap_huge_declared_point_count_is_refused_before_allocating(tmp_path):
    cams, imgs, pts = colmap_inputs(tmp_path)
    write_model_bin(tmp_path / "sparse", cams, imgs, pts)
    p = tmp_path / "sparse" / "points3D.bin"
    raw = bytearray(p.read_bytes())
    raw[:8] = struct.pack("<Q", 1 << 40)  # (2^40, 3) float64 would be 24 TiB
    p.write_bytes(bytes(raw))
    e = refused(tmp_path, f"declares {1 << 40} points", "points3D.bin")
    assert "at most" in str(e)


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin"])
def test_colmap_huge_declared_counts_elsewhere(tmp_path, name):
    cams, imgs, pts = colmap_inputs(tmp_path)
    write_model_bin(tmp_path / "sparse", cams, imgs, pts)
    p = tmp_path / "sparse" / name
    p.write_bytes(struct.pack("<Q", (1 << 64) - 1) + p.read_bytes()[8:])
    refused(tmp_path, "declares", name)


def test_nvm_huge_declared_point_count(tmp_path):
    P, Q = random_poses(5, seed=2)
    write_cambridge(tmp_path, P, Q, np.ones((2, 3)), images=False)
    p = tmp_path / "reconstruction.nvm"
    lines = p.read_text().split("\n")
    at = lines.index("2")  # the point count
    lines[at] = str(10 ** 13)
    p.write_text("\n".join(lines))
    assert refused(tmp_path, f"declares {10 ** 13} points", "reconstruction.nvm").line == at + 1


# --------------------------------------------------------------------------- FIFOs named like data files
def run_inspect(root, timeout=60):
    """edgepose-inspect in a subprocess with a timeout: a reader that opens a FIFO blocks forever."""
    code = "import sys; from edgepose.cli.inspect import main; sys.exit(main(sys.argv[1:]))"
    try:
        return subprocess.run([sys.executable, "-c", code, str(root), "--no-check-images"],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"edgepose-inspect {root} blocked for {timeout} s (it opened a FIFO)")


@needs_fifo
def test_fifo_pose_file_in_a_sevenscenes_layout(tmp_path):
    P, Q = random_poses(6, seed=3)
    write_sevenscenes(tmp_path, P, Q)
    pose = tmp_path / "seq-02" / "frame-000004.pose.txt"
    pose.unlink()
    os.mkfifo(pose)
    r = run_inspect(tmp_path)
    assert r.returncode == 1 and "FIFO" in r.stderr and "frame-000004.pose.txt" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@needs_fifo
def test_fifo_par_file_in_a_middlebury_layout(tmp_path):
    os.mkfifo(tmp_path / "obj_par.txt")
    r = run_inspect(tmp_path)
    assert r.returncode == 1 and "FIFO" in r.stderr and "obj_par.txt" in r.stderr, r.stderr


@needs_fifo
def test_fifo_beside_a_real_csv_and_as_the_only_csv(tmp_path):
    write_csv_dataset(tmp_path / "a")
    os.mkfifo(tmp_path / "a" / "extra.csv")   # poses.csv is found first
    r = run_inspect(tmp_path / "a")
    assert r.returncode == 0, r.stdout + r.stderr
    os.mkfifo(tmp_path / "only.csv")          # the only *.csv is a FIFO: not a dataset
    r = run_inspect(tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr


@needs_fifo
def test_fifo_image_is_an_error_not_a_hang(tmp_path):
    write_png(tmp_path / "ok.png", (8, 6))
    os.mkfifo(tmp_path / "pipe.png")
    code = ("from edgepose.preprocess import load_image; from edgepose.errors import EdgePoseError\n"
            f"try:\n    load_image({str(tmp_path / 'pipe.png')!r})\nexcept EdgePoseError as e:\n    print(e)")
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("load_image blocked on a FIFO")
    assert "FIFO" in r.stdout and r.returncode == 0, r.stdout + r.stderr


def test_middlebury_count_line_is_not_a_number(tmp_path):
    P, Q = random_poses(4, seed=4)
    write_middlebury(tmp_path, P, Q, np.array([[20.0, 0, 8], [0, 20, 6], [0, 0, 1]]))
    p = tmp_path / "obj_par.txt"
    p.write_text("four\n" + p.read_text().split("\n", 1)[1])
    assert refused(tmp_path, "number of images", "obj_par.txt").line == 1


@pytest.mark.parametrize("name", ["images.bin", "points3D.bin"])
def test_colmap_declared_count_too_small_hides_nothing(tmp_path, name):
    """A count one less than the records on disk used to drop the last image (or point) silently."""
    cams, imgs, pts = colmap_inputs(tmp_path)
    write_model_bin(tmp_path / "sparse", cams, imgs, pts)
    p = tmp_path / "sparse" / name
    raw = p.read_bytes()
    (n,) = struct.unpack_from("<Q", raw)
    p.write_bytes(struct.pack("<Q", n - 1) + raw[8:])
    refused(tmp_path, "bytes follow the records", name)
