"""Cambridge Landmarks lists + NVM: conventions, visible points, bad input."""
import numpy as np
import pytest
from dataset_builders import CAMBRIDGE_HEADER, random_poses, scipy_R, write_cambridge

from edgepose.datasets import load_dataset
from edgepose.datasets.cambridge import read_list
from edgepose.errors import DataFormatError
from edgepose.geometry import project_points, rotation_error_deg


@pytest.fixture()
def scene(tmp_path):
    P, Q = random_poses(5, seed=1)
    X = np.random.default_rng(2).uniform(-0.5, 0.5, size=(6, 3))
    names = write_cambridge(tmp_path, P, Q, X)
    return tmp_path, P, Q, X, names


def test_hand_worked_row_wpqr_is_world_to_camera(tmp_path):
    # camera at (1, 2, 3) turned 90 deg about world z; WPQR holds the inverse (world-to-camera)
    p = tmp_path / "dataset_train.txt"
    s = np.sqrt(0.5)
    p.write_text(CAMBRIDGE_HEADER + f"seq1/frame00001.png 1 2 3 {s} 0 0 {-s}\n")
    (ln, name, pos, rot), = read_list(p)
    assert ln == 4 and name == "seq1/frame00001.png"
    np.testing.assert_allclose(pos, [1, 2, 3])
    np.testing.assert_allclose(rot, [s, 0, 0, s], atol=1e-12)  # camera-to-world = conjugate


def test_round_trip_poses_intrinsics_and_splits(scene):
    root, P, Q, X, names = scene
    ds = load_dataset(root)
    assert ds.format == "cambridge"
    assert ds.counts() == {"train": 3, "test": 2}
    by = {f.image.relative_to(root).as_posix(): f for f in ds.frames}
    for i, n in enumerate(names):
        f = by[n]
        np.testing.assert_allclose(f.position, P[i], atol=1e-7)
        assert rotation_error_deg(f.rotation, Q[i]) < 1e-4
        assert f.rotation[0] >= 0
        # images are 32x18: the NVM focal (1920x1080 pixels) and the centre scale down
        np.testing.assert_allclose(f.K, [[1600 / 60, 0, 16], [0, 1600 / 60, 9], [0, 0, 1]])
        assert (f.width, f.height) == (32, 18) and f.sequence == n.split("/")[0]


def test_nvm_points_are_the_measured_ones_and_project_like_scipy(scene):
    root, P, Q, X, names = scene
    ds = load_dataset(root)
    f = next(f for f in ds.frames if f.image.name == "frame00000.png")
    np.testing.assert_allclose(f.points, X[[0, 2, 4]], atol=1e-8)  # camera 0 sees points with k even
    uv, depth, _ = project_points(f.points, f.position, f.rotation, f.K)
    Xc = (scipy_R(Q[0]).T @ (X[[0, 2, 4]] - P[0]).T).T
    np.testing.assert_allclose(uv, (f.K[:2, :2] @ (Xc[:, :2] / Xc[:, 2:]).T + f.K[:2, 2:]).T, atol=1e-5)
    assert np.all(depth > 0)


@pytest.mark.parametrize("row, needle", [
    ("seq1/frame00009.png 1 2 3 1 0 0", "expected 8 columns"),
    ("seq1/frame00009.png 1 2 x 1 0 0 0", "expected numbers"),
    ("seq1/frame00009.png 1 2 3 0 0 0 0", "not a unit quaternion"),
    ("seq1/frame00009.png 1 2 3 nan 0 0 0", "expected finite numbers"),
    ("seq1/frame00009.png 1 2 3 2 0 0 0", "not a unit quaternion"),
])
def test_malformed_rows_name_file_and_line(scene, row, needle):
    root = scene[0]
    txt = (root / "dataset_train.txt").read_text().rstrip("\n") + "\n" + row + "\n"
    (root / "dataset_train.txt").write_text(txt)
    with pytest.raises(DataFormatError) as e:
        load_dataset(root)
    assert needle in str(e.value)
    assert e.value.line == 7 and e.value.path.endswith("dataset_train.txt")
    assert "dataset_train.txt:7:" in str(e.value)


def test_missing_images_listed_with_count(scene):
    root, *_ , names = scene
    for n in names[:4]:
        (root / n).unlink()
    with pytest.raises(DataFormatError) as e:
        load_dataset(root)
    assert "4 image(s)" in str(e.value) and names[0] in str(e.value)
    assert load_dataset(root, check_images=False).counts() == {"train": 3, "test": 2}


def test_outlier_rows_dropped_with_a_note(scene):
    root = scene[0]
    txt = (root / "dataset_test.txt").read_text() + "seq1/frame00001.png 1e6 0 0 1 0 0 0\n"
    (root / "dataset_test.txt").write_text(txt)
    ds = load_dataset(root)
    assert ds.counts()["test"] == 2
    assert any("dataset_test.txt:6" in p for p in ds.problems)


def test_empty_test_split_is_an_error(scene):
    root = scene[0]
    (root / "dataset_test.txt").write_text(CAMBRIDGE_HEADER)
    with pytest.raises(DataFormatError, match="test split is empty"):
        load_dataset(root)
