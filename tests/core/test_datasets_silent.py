"""Issue 22, family 4 for dataset readers: values that used to be accepted silently.

A CSV header naming a column twice (the second ``x`` held NaN, the first was read), a quote that
never closes (it swallowed every later row), a NeRF matrix of booleans (``true`` read as 1.0)
or of numeric strings: each is an error at the file (and line) with the reason."""
from __future__ import annotations

import json

import pytest
from dataset_builders import CSV_HEADER, random_poses, write_csv_dataset, write_nerf

from edgepose.datasets import load_dataset
from edgepose.errors import DataFormatError


def test_a_csv_column_named_twice_is_refused(tmp_path):
    write_csv_dataset(tmp_path, n=4, header=CSV_HEADER + ",x")
    text = (tmp_path / "poses.csv").read_text().splitlines()
    (tmp_path / "poses.csv").write_text("\n".join([text[0]] + [row + ",nan" for row in text[1:]]) + "\n")
    with pytest.raises(DataFormatError, match=r"poses.csv:1: column\(s\) x appear more than once"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("bad", ['frames/009.png,"0.1,0.2', '"frames/009.png"x,0,0,0,1,0,0,0,20,20,8,6,train'])
def test_a_csv_quote_that_does_not_close_is_refused_at_its_line(tmp_path, bad):
    first_extra = write_csv_dataset(tmp_path, n=6, rows=[bad, "frames/001.png,0,0,0,1,0,0,0,20,20,8,6,test"])
    with pytest.raises(DataFormatError, match=rf"poses.csv:{first_extra}: not a CSV row"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("entry", [True, "1.0", None])
def test_a_nerf_matrix_entry_that_is_not_a_number_is_refused(tmp_path, entry):
    P, Q = random_poses(6, seed=2)
    write_nerf(tmp_path, P, Q, with_ext=True)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][2]["transform_matrix"][0][0] = entry
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match=r"transforms.json: frames\[2\]: expected transform_matrix"):
        load_dataset(tmp_path)


def test_a_nerf_matrix_of_booleans_is_refused(tmp_path):
    P, Q = random_poses(6, seed=2)
    write_nerf(tmp_path, P, Q, with_ext=True)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][0]["transform_matrix"] = [[True, False, False, False], [False, True, False, False],
                                             [False, False, True, False], [False, False, False, True]]
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match=r"frames\[0\]: expected transform_matrix"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("name", [".", "..", "./", "seq/.."])
def test_an_nvm_camera_named_like_a_folder_is_a_message(tmp_path, name):
    """Issue 22, family 3: Path('.').with_suffix('.png') raised ValueError (a traceback)."""
    import numpy as np
    from dataset_builders import write_cambridge

    P, Q = random_poses(6)
    write_cambridge(tmp_path, P, Q, np.ones((2, 3)))
    nvm = tmp_path / "reconstruction.nvm"
    lines = nvm.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.split() and line.split()[0].lower().endswith((".jpg", ".png")))
    lines[i] = " ".join([name] + lines[i].split()[1:])
    nvm.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"reconstruction.nvm:{i + 1}: expected an image file name"):
        load_dataset(tmp_path)
