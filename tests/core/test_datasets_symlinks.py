"""Issue 22, family 2: symbolic links are judged by the same rules as ``../`` paths.

Each reader's image paths are resolved once to their real paths: a CSV row, a 7-Scenes colour
frame or whole sequence folder, a NeRF image that is a link to a file or folder outside DATA
leaves DATA; a test frame that is a link (or a hard link) to a training frame is a leak. Real
datasets in each format's layout, real links."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from dataset_builders import random_poses, write_csv_dataset, write_nerf, write_png, write_sevenscenes

from edgepose.datasets import load_dataset, read_dataset
from edgepose.errors import DataFormatError


def _outside(tmp_path, name="elsewhere.png"):
    p = tmp_path / "outside" / name
    write_png(p)
    return p


def _leaves(root, **kw):
    errs = read_dataset(root, **kw).errors
    assert any("leave the dataset folder" in e for e in errs), errs
    with pytest.raises(DataFormatError, match="leave the dataset folder"):
        load_dataset(root)
    return errs


def test_csv_row_linking_outside(tmp_path):
    root = tmp_path / "data"
    write_csv_dataset(root, n=6)
    (root / "frames" / "002.png").unlink()
    os.symlink(_outside(tmp_path), root / "frames" / "002.png")
    errs = _leaves(root)
    assert any("poses.csv:4" in e and "elsewhere.png" in e for e in errs), errs
    assert not any("leave" in e for e in read_dataset(root, allow_outside=True).errors)  # the flag still allows it


def test_sevenscenes_colour_frame_linking_outside(tmp_path):
    P, Q = random_poses(8)
    root = tmp_path / "data"
    write_sevenscenes(root, P, Q)
    frame = root / "seq-02" / "frame-000005.color.png"
    frame.unlink()
    os.symlink(_outside(tmp_path), frame)
    _leaves(root)


def test_sevenscenes_sequence_folder_linking_outside(tmp_path):
    P, Q = random_poses(8)
    write_sevenscenes(tmp_path / "elsewhere", P, Q)
    root = tmp_path / "data"
    write_sevenscenes(root, P, Q)
    shutil.rmtree(root / "seq-02")
    os.symlink(tmp_path / "elsewhere" / "seq-02", root / "seq-02")
    _leaves(root)


def test_nerf_image_linking_outside(tmp_path):
    P, Q = random_poses(6, seed=2)
    root = tmp_path / "data"
    write_nerf(root, P, Q, with_ext=True)
    (root / "images" / "r_3.png").unlink()
    os.symlink(_outside(tmp_path), root / "images" / "r_3.png")
    errs = _leaves(root)
    assert any("frames[3]" in e for e in errs), errs


def test_links_inside_the_dataset_are_fine(tmp_path):
    root = tmp_path / "data"
    write_csv_dataset(root, n=6)
    (root / "store").mkdir()
    os.replace(root / "frames" / "003.png", root / "store" / "003.png")
    os.symlink(root / "store" / "003.png", root / "frames" / "003.png")
    assert read_dataset(root).errors == []


@pytest.mark.parametrize("how", ["symlink", "hardlink", "symlinked-folder"])
def test_a_test_frame_linking_to_a_training_frame_is_a_leak(tmp_path, how):
    P, Q = random_poses(8)
    root = tmp_path / "data"
    write_sevenscenes(root, P, Q)
    train, test = root / "seq-01" / "frame-000001.color.png", root / "seq-02" / "frame-000006.color.png"
    if how == "symlinked-folder":
        (root / "alias").symlink_to(root / "seq-01", target_is_directory=True)
        test.unlink()
        os.symlink(root / "alias" / train.name, test)
    else:
        test.unlink()
        (os.symlink if how == "symlink" else os.link)(train, test)
    errs = read_dataset(root).errors
    assert any("both the train and the test split" in e for e in errs), errs
    with pytest.raises(DataFormatError, match="leak"):
        load_dataset(root)


def test_a_nerf_frame_listed_twice_through_a_link_is_the_same_image(tmp_path):
    P, Q = random_poses(6, seed=2)
    root = tmp_path / "data"
    write_nerf(root, P, Q, with_ext=True)
    os.symlink(root / "images" / "r_1.png", root / "images" / "alias.png")
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"][4]["file_path"] = "./images/alias.png"
    (root / "transforms.json").write_text(json.dumps(meta))
    errs = read_dataset(root).errors
    # frames 1 and 4 fall in different splits (every:5): one file with two poses, in both splits
    assert any("both the train and the test split" in e and "frames[1]" in e and "frames[4]" in e for e in errs), errs
