"""Datasets that leak or escape (issue 14, item 5): the same frame in train and test,
an image listed twice, a duplicate COLMAP IMAGE_ID, image paths that leave the dataset
folder. Fixtures are written in each format's own layout."""
import json
import struct

import numpy as np
import pytest
from dataset_builders import (colmap_inputs, random_poses, write_cambridge, write_csv_dataset, write_middlebury,
                              write_nerf, write_png)

from edgepose.cli import inspect as inspect_cli
from edgepose.datasets import load_dataset, read_dataset
from edgepose.datasets.colmap_model import write_model_bin, write_model_txt
from edgepose.errors import DataFormatError

K_MB = np.array([[20.0, 0, 8], [0, 20, 6], [0, 0, 1]])


def errors_of(root, **kw):
    return read_dataset(root, **kw).errors


# --------------------------------------------------------------------------- train/test leaks
def test_cambridge_same_frame_in_train_and_test(tmp_path, capsys):
    P, Q = random_poses(6, seed=1)
    write_cambridge(tmp_path, P, Q, np.ones((2, 3)))
    train = (tmp_path / "dataset_train.txt").read_text().splitlines()
    test = (tmp_path / "dataset_test.txt").read_text().rstrip("\n")
    (tmp_path / "dataset_test.txt").write_text(test + "\n" + train[3] + "\n")  # train's first row, again in test
    errs = errors_of(tmp_path)
    assert len(errs) == 1 and "both the train and the test split" in errs[0], errs
    assert "dataset_train.txt:4" in errs[0] and "dataset_test.txt:7" in errs[0]
    with pytest.raises(DataFormatError, match="leak"):
        load_dataset(tmp_path)
    assert inspect_cli.main([str(tmp_path)]) == 1
    assert "ERROR        1 image(s) are in both the train and the test split" in capsys.readouterr().out


def test_csv_same_frame_in_train_and_test(tmp_path):
    first = write_csv_dataset(tmp_path, n=6)
    rows = (tmp_path / "poses.csv").read_text().splitlines()
    leak = rows[2].replace(",train", ",test")  # frame 001 (train) again as a test row
    write_csv_dataset(tmp_path, n=6, rows=[leak])
    errs = errors_of(tmp_path)
    assert len(errs) == 1 and "both the train and the test split" in errs[0], errs
    assert "poses.csv:3" in errs[0] and f"poses.csv:{first}" in errs[0]


# --------------------------------------------------------------------------- duplicate names
def test_nerf_duplicate_image(tmp_path):
    P, Q = random_poses(6, seed=2)
    write_nerf(tmp_path, P, Q, with_ext=True)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][4]["file_path"] = meta["frames"][1]["file_path"]
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    errs = errors_of(tmp_path)
    assert any("r_1.png" in e and "frames[1]" in e and "frames[4]" in e for e in errs), errs
    with pytest.raises(DataFormatError):
        load_dataset(tmp_path)


def test_middlebury_duplicate_image(tmp_path):
    P, Q = random_poses(6, seed=3)
    write_middlebury(tmp_path, P, Q, K_MB)
    lines = (tmp_path / "obj_par.txt").read_text().splitlines()
    lines[5] = "obj0002.png " + lines[5].split(" ", 1)[1]  # row 5 names row 2's image
    (tmp_path / "obj_par.txt").write_text("\n".join(lines) + "\n")
    errs = errors_of(tmp_path)
    found = [e for e in errs if "obj0002.png" in e]
    assert len(found) == 1 and "obj_par.txt:3" in found[0] and "obj_par.txt:6" in found[0], errs


@pytest.mark.parametrize("writer", [write_model_txt, write_model_bin], ids=["text", "binary"])
def test_colmap_duplicate_image_name(tmp_path, writer):
    cams, imgs, pts = colmap_inputs(tmp_path, n=5)
    imgs[3] = (*imgs[3][:4], imgs[0][4])  # image 4 names image 1's file
    writer(tmp_path / "sparse", cams, imgs, pts)
    errs = errors_of(tmp_path)
    assert any("cam0.png" in e and ("more than once" in e or "both the train" in e) for e in errs), errs


def test_colmap_duplicate_image_id_text(tmp_path):
    cams, imgs, pts = colmap_inputs(tmp_path, n=5)
    imgs[3] = (2, *imgs[3][1:])  # IMAGE_ID 2 twice: the second used to replace the first silently
    write_model_txt(tmp_path / "sparse", cams, imgs, pts)
    with pytest.raises(DataFormatError, match="IMAGE_ID 2 is used twice") as e:
        load_dataset(tmp_path)
    assert e.value.line == 10 and "images.txt:6" in str(e.value) and "cam3.png" in str(e.value)


def test_colmap_duplicate_image_id_binary(tmp_path):
    cams, imgs, pts = colmap_inputs(tmp_path, n=5)
    imgs[4] = (1, *imgs[4][1:])
    write_model_bin(tmp_path / "sparse", cams, imgs, pts)
    raw = (tmp_path / "sparse" / "images.bin").read_bytes()
    assert struct.unpack_from("<Q", raw)[0] == 5  # five records on disk, two with id 1
    with pytest.raises(DataFormatError, match="IMAGE_ID 1 is used twice"):
        load_dataset(tmp_path)


# --------------------------------------------------------------------------- paths that leave the folder
def outside_cambridge(root, bad):
    P, Q = random_poses(6, seed=4)
    write_cambridge(root, P, Q, np.ones((2, 3)))
    for name in ("dataset_test.txt", "reconstruction.nvm"):
        p = root / name
        p.write_text(p.read_text().replace("seq2/frame00005.png", bad).replace("seq2/frame00005.jpg",
                                                                              bad[:-4] + ".jpg"))
    return "dataset_test.txt:6"


def outside_colmap(root, bad):
    cams, imgs, pts = colmap_inputs(root, n=5)
    imgs[2] = (*imgs[2][:4], "../" + bad if bad.startswith("..") else bad)  # names are relative to DATA/images
    write_model_txt(root / "sparse", cams, imgs, pts)
    return "images.txt:8"


def outside_nerf(root, bad):
    P, Q = random_poses(5, seed=5)
    write_nerf(root, P, Q, with_ext=True)
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"][3]["file_path"] = bad
    (root / "transforms.json").write_text(json.dumps(meta))
    return "frames[3]"


def outside_middlebury(root, bad):
    P, Q = random_poses(5, seed=6)
    write_middlebury(root, P, Q, K_MB)
    p = root / "obj_par.txt"
    p.write_text(p.read_text().replace("obj0003.png", bad))
    return "obj_par.txt:4"


def outside_csv(root, bad):
    write_csv_dataset(root, n=5)
    p = root / "poses.csv"
    p.write_text(p.read_text().replace("frames/002.png", bad))
    return "poses.csv:4"


BUILDERS = [outside_cambridge, outside_colmap, outside_nerf, outside_middlebury, outside_csv]


@pytest.fixture(params=["relative", "absolute"])
def outside_image(request, tmp_path):
    """An image that exists, outside the dataset folder; its path as a dataset would spell it."""
    target = tmp_path / "outside" / "x.png"
    write_png(target, (16, 12))
    return "../../outside/x.png" if request.param == "relative" else str(target)


@pytest.mark.parametrize("build", BUILDERS, ids=["cambridge", "colmap", "nerf", "middlebury", "csv"])
def test_image_outside_the_dataset_needs_a_flag(tmp_path, outside_image, build):
    root = tmp_path / "data" / "scene"
    where = build(root, outside_image)
    errs = errors_of(root)
    found = [e for e in errs if "leave the dataset folder" in e]
    assert len(found) == 1 and where in found[0] and "--allow-outside-images" in found[0], errs
    with pytest.raises(DataFormatError, match="leave the dataset folder"):
        load_dataset(root)
    report = read_dataset(root, allow_outside=True)
    assert not any("leave the dataset folder" in e for e in report.errors), report.errors
    assert any("leave the dataset folder" in p and "allowed" in p for p in report.dataset.problems)
    assert any(str(f.image).endswith("outside/x.png") for f in report.dataset.frames)


def test_inspect_flag_allows_outside_images(tmp_path, capsys):
    root = tmp_path / "scene"
    write_png(tmp_path / "outside" / "x.png", (16, 12))
    outside_csv(root, "../outside/x.png")
    assert inspect_cli.main([str(root)]) == 1
    assert "leave the dataset folder" in capsys.readouterr().out
    assert inspect_cli.main([str(root), "--allow-outside-images"]) == 0
    out = capsys.readouterr().out
    assert "note" in out and "allowed by --allow-outside-images" in out
    assert "--allow-outside-images --out" in out  # the next command carries the flag


def test_inside_paths_with_dot_dot_are_fine(tmp_path):
    write_csv_dataset(tmp_path, n=5)
    p = tmp_path / "poses.csv"
    p.write_text(p.read_text().replace("frames/002.png", "frames/../frames/002.png"))
    assert read_dataset(tmp_path).errors == []


def test_training_refuses_a_leaking_dataset(tmp_path, capsys):
    pytest.importorskip("torch")
    from edgepose.train.cli import main as train_main

    first = write_csv_dataset(tmp_path / "data", n=6)
    rows = (tmp_path / "data" / "poses.csv").read_text().splitlines()
    write_csv_dataset(tmp_path / "data", n=6, rows=[rows[2].replace(",train", ",test")])
    rc = train_main([str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--stage1-epochs", "1",
                     "--stage2-epochs", "0", "--pretrained", "none", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "both the train and the test split" in err and f"poses.csv:{first}" in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()
