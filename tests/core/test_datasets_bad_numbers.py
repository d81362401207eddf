"""Non-finite and absurd numbers in every reader (issue 14, item 3).

NaN and infinite poses, intrinsics and 3D points are refused with the file and line (or,
for binary and JSON files, the record); finite but absurd magnitudes are a problem that
``edgepose-inspect`` prints. Each fixture is written in the format's exact on-disk layout.
"""
import json
import math
import struct

import numpy as np
import pytest
from dataset_builders import (colmap_inputs, random_poses, write_cambridge, write_csv_dataset, write_middlebury,
                              write_nerf, write_sevenscenes)

from edgepose.cli import inspect as inspect_cli
from edgepose.datasets import load_dataset
from edgepose.datasets.colmap_model import write_model_bin, write_model_txt
from edgepose.errors import DataFormatError

K_MB = np.array([[20.0, 0, 8], [0, 20, 6], [0, 0, 1]])


def refused(root, needle, file_end, line=None):
    with pytest.raises(DataFormatError) as e:
        load_dataset(root, check_images=False)
    msg = str(e.value)
    assert needle in msg, msg
    assert e.value.path is not None and file_end in e.value.path, msg
    if line is not None:
        assert e.value.line == line, msg
    return msg


# --------------------------------------------------------------------------- COLMAP
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_colmap_text_translation_not_finite(tmp_path, value):
    cams, imgs, pts = colmap_inputs(tmp_path)
    imgs[1] = (imgs[1][0], imgs[1][1], np.array([0.1, float(value), 0.2]), 1, imgs[1][4])
    write_model_txt(tmp_path / "sparse", cams, imgs, pts)
    # header: 3 comment lines; image k (0-based) sits on line 4 + 2k
    refused(tmp_path, "finite", "images.txt", line=6)


def test_colmap_binary_translation_not_finite(tmp_path):
    cams, imgs, pts = colmap_inputs(tmp_path)
    imgs[2] = (imgs[2][0], imgs[2][1], np.array([np.nan, 0.0, 1.0]), 1, imgs[2][4])
    write_model_bin(tmp_path / "sparse", cams, imgs, pts)
    msg = refused(tmp_path, "NaN or inf", "images.bin")
    assert "image 3" in msg and "cam2.png" in msg


@pytest.mark.parametrize("writer, params, where", [
    (write_model_txt, [20.0, 21.0, float("nan"), 6.0], "cameras.txt"),   # cx = nan
    (write_model_txt, [float("inf"), 21.0, 8.0, 6.0], "cameras.txt"),    # fx = inf
    (write_model_bin, [float("inf"), 21.0, 8.0, 6.0], "cameras.bin"),
    (write_model_bin, [20.0, 21.0, 8.0, float("nan")], "cameras.bin"),
], ids=["txt-cx-nan", "txt-fx-inf", "bin-fx-inf", "bin-cy-nan"])
def test_colmap_intrinsics_not_finite(tmp_path, writer, params, where):
    cams, imgs, pts = colmap_inputs(tmp_path)
    cams[0] = (1, "PINHOLE", 16, 12, params)
    writer(tmp_path / "sparse", cams, imgs, pts)
    msg = refused(tmp_path, "finite", where)
    if where.endswith(".txt"):
        assert ":3:" in msg  # two comment lines, then camera 1
    else:
        assert "camera 1" in msg


@pytest.mark.parametrize("writer, where", [(write_model_txt, "points3D.txt"), (write_model_bin, "points3D.bin")])
def test_colmap_points_not_finite(tmp_path, writer, where):
    cams, imgs, pts = colmap_inputs(tmp_path)
    pts[1] = (pts[1][0], np.array([0.0, np.nan, 1.0]), pts[1][2])
    writer(tmp_path / "sparse", cams, imgs, pts)
    msg = refused(tmp_path, "finite" if where.endswith("txt") else "NaN or inf", where)
    if where.endswith(".txt"):
        assert ":4:" in msg  # 2 comment lines, point 0 on line 3, point 1 on line 4
    else:
        assert "point 101" in msg


# --------------------------------------------------------------------------- Cambridge / NVM
def nvm_lines(root):
    return (root / "reconstruction.nvm").read_text().split("\n")


def test_nvm_focal_zero(tmp_path):
    P, Q = random_poses(5, seed=1)
    write_cambridge(tmp_path, P, Q, np.zeros((3, 3)), images=False)
    lines = nvm_lines(tmp_path)
    tok = lines[3].split()       # NVM_V3, blank, count, then camera 0 on line 4
    tok[1] = "0"
    lines[3] = " ".join(tok)
    (tmp_path / "reconstruction.nvm").write_text("\n".join(lines))
    refused(tmp_path, "positive focal length", "reconstruction.nvm", line=4)


def test_nvm_point_not_finite(tmp_path):
    P, Q = random_poses(5, seed=1)
    write_cambridge(tmp_path, P, Q, np.ones((3, 3)), images=False)
    lines = nvm_lines(tmp_path)
    first_point = 3 + 5 + 2         # cameras end on line 8, blank, count on line 10
    tok = lines[first_point + 1].split()
    tok[2] = "nan"
    lines[first_point + 1] = " ".join(tok)
    (tmp_path / "reconstruction.nvm").write_text("\n".join(lines))
    refused(tmp_path, "finite", "reconstruction.nvm", line=first_point + 2)


# --------------------------------------------------------------------------- NeRF
def nerf_meta(root):
    return json.loads((root / "transforms.json").read_text())


def test_nerf_last_row_not_0001(tmp_path):
    P, Q = random_poses(4, seed=2)
    write_nerf(tmp_path, P, Q)
    meta = nerf_meta(tmp_path)
    meta["frames"][2]["transform_matrix"][3] = [0.0, 0.0, 0.5, 1.0]
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    msg = refused(tmp_path, "0 0 0 1", "transforms.json")
    assert "frames[2]" in msg


@pytest.mark.parametrize("key, value", [("cx", float("nan")), ("cy", float("inf")), ("k1", float("nan"))])
def test_nerf_intrinsics_not_finite(tmp_path, key, value):
    P, Q = random_poses(4, seed=2)
    write_nerf(tmp_path, P, Q)
    meta = nerf_meta(tmp_path)
    meta["frames"][1][key] = value  # json writes NaN / Infinity tokens, which Python's json reads back
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    msg = refused(tmp_path, "finite", "transforms.json")
    assert "frames[1]" in msg


# --------------------------------------------------------------------------- 7-Scenes, CSV
def test_sevenscenes_intrinsics_cx_nan(tmp_path):
    P, Q = random_poses(4, seed=3)
    write_sevenscenes(tmp_path, P, Q, K=np.array([[20, 0, 8], [0, 20, 6], [0, 0, 1.0]]))
    (tmp_path / "intrinsics.txt").write_text("20 0 nan\n0 20 6\n0 0 1\n")
    refused(tmp_path, "finite", "intrinsics.txt", line=1)


def test_middlebury_bounding_box_not_finite(tmp_path):
    P, Q = random_poses(4, seed=3)
    write_middlebury(tmp_path, P, Q, K_MB, box=[[-1, -1, -1], [1, 1, 1]])
    (tmp_path / "README.txt").write_text("The (tight) bounding box for the model is\n(1e999 0 0)\n(1 1 1)\n")
    refused(tmp_path, "bounding box", "README.txt")


def test_csv_timestamp_nan(tmp_path):
    header = "image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy,width,height,split,timestamp"
    write_csv_dataset(tmp_path, n=5, header=header)
    lines = (tmp_path / "poses.csv").read_text().splitlines()
    lines = [lines[0]] + [l + f",{i}.5" for i, l in enumerate(lines[1:])]
    lines[3] = lines[3].rsplit(",", 1)[0] + ",nan"
    (tmp_path / "poses.csv").write_text("\n".join(lines) + "\n")
    refused(tmp_path, "finite", "poses.csv", line=4)


# --------------------------------------------------------------------------- absurd magnitudes
def absurd_7scenes(root):
    P, Q = random_poses(6, seed=4)
    P[2] = [1e300, 0.0, 0.0]
    write_sevenscenes(root, P, Q)
    return "seq-01/frame-000002.pose.txt"


def absurd_colmap(root):
    cams, imgs, pts = colmap_inputs(root, n=5)
    R_cw = np.eye(3)
    imgs[3] = (4, np.array([1.0, 0, 0, 0]), -R_cw @ np.array([0.0, 1e300, 0.0]), 1, "cam3.png")
    write_model_txt(root / "sparse", cams, imgs, pts)
    return "images.txt:10"


def absurd_nerf(root):
    P, Q = random_poses(5, seed=5)
    P[1] = [0.0, 0.0, -1e300]
    write_nerf(root, P, Q)
    return "transforms.json frames[1]"


def absurd_middlebury(root):
    P, Q = random_poses(5, seed=6)
    P[0] = [1e300, 1e300, 0.0]
    write_middlebury(root, P, Q, K_MB)
    return "obj_par.txt:2"


def absurd_csv(root):
    write_csv_dataset(root, rows=["frames/x.png,1e300,0,0,1,0,0,0,20,20,8,6,16,12,train"])
    return "poses.csv:7"


@pytest.mark.parametrize("build", [absurd_7scenes, absurd_colmap, absurd_nerf, absurd_middlebury, absurd_csv],
                         ids=["7scenes", "colmap", "nerf", "middlebury", "csv"])
def test_absurd_position_is_a_problem_inspect_reports(tmp_path, capsys, build):
    where = build(tmp_path)
    inspect_cli.main([str(tmp_path), "--no-check-images"])
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note") and "from the origin" in line]
    assert len(notes) == 1 and "1 camera position" in notes[0], out
    assert where in notes[0], notes


def test_absurd_focal_is_a_problem(tmp_path, capsys):
    write_csv_dataset(tmp_path)
    text = (tmp_path / "poses.csv").read_text().replace(",20,20,8,6,16,12,", ",2e9,2e9,8,6,16,12,", 1)
    (tmp_path / "poses.csv").write_text(text)
    inspect_cli.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "1 frame(s) have a focal length outside" in out and "poses.csv:2" in out, out


def test_plausible_dataset_has_no_magnitude_problem(tmp_path, capsys):
    write_csv_dataset(tmp_path)
    assert inspect_cli.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "from the origin" not in out and "focal length outside" not in out, out


def test_binary_colmap_camera_params_struct_is_what_the_test_writes(tmp_path):
    """Oracle for the binary cases above: the bytes hold the NaN where the test put it."""
    cams, imgs, pts = colmap_inputs(tmp_path)
    cams[0] = (1, "PINHOLE", 16, 12, [20.0, 21.0, 8.0, float("nan")])
    write_model_bin(tmp_path / "m", cams, imgs, pts)
    raw = (tmp_path / "m" / "cameras.bin").read_bytes()
    assert math.isnan(struct.unpack_from("<d", raw, 8 + 24 + 3 * 8)[0])
