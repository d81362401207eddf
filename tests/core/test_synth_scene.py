"""The synthetic scene in memory: photos, geometry, ray casting and camera paths."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from edgepose.errors import ConfigError, MissingDependencyError
from edgepose.geometry import backproject, quat_to_matrix, rotation_error_deg
from edgepose.synth import Renderer, build_scene, intrinsics, plan_sequences
from edgepose.synth import textures as tx
from edgepose.synth.render import camera_rays, cast
from edgepose.synth.trajectories import orientations


@pytest.fixture(scope="module")
def scene():
    return build_scene(seed=0)


def test_every_photo_ships_with_scikit_image():
    for name in tx.COLOR_PHOTOS + tx.GRAY_PHOTOS + tx.MATERIALS:
        img = tx.load_photo(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        assert img.shape[0] >= 100 and img.shape[1] >= 100, name
        assert img.std() > 5, f"{name} is flat"


def test_missing_scikit_image_names_the_install_command(monkeypatch):
    tx.load_photo.cache_clear()
    monkeypatch.setitem(sys.modules, "skimage.data", None)  # makes the import fail
    try:
        with pytest.raises(MissingDependencyError, match="pip install scikit-image"):
            tx.load_photo("astronaut")
    finally:
        tx.load_photo.cache_clear()


def test_faces_lie_on_their_planes_and_textures_differ(scene):
    assert len(scene.faces) == 6 + 6 * len(scene.boxes)
    floor = scene.faces[4]
    assert floor.name == "floor" and floor.axis == 2 and floor.value == 0.0
    assert np.allclose(floor.normal, [0, 0, 1])
    for f in scene.faces:  # texture axes are orthonormal and lie in the face
        assert abs(f.right @ f.normal) < 1e-12 and abs(f.up @ f.normal) < 1e-12
        # right = up x normal: photos read unmirrored from the visible side
        assert np.isclose(np.linalg.det(np.stack([f.right, f.up, f.normal])), 1.0), f.name
    walls = [scene.faces[i].texture[:50, :50].astype(int) for i in range(4)]
    assert all(np.abs(walls[i] - walls[j]).mean() > 10 for i in range(4) for j in range(i + 1, 4))


def test_same_seed_same_atlas_other_seed_other_layout(scene):
    assert np.array_equal(build_scene(seed=0).atlas, scene.atlas)
    other = build_scene(seed=1)
    assert other.atlas.shape == scene.atlas.shape and not np.array_equal(other.atlas, scene.atlas)


@pytest.mark.parametrize("aa", [1, 2, 3])
def test_centre_ray_depth_matches_floor_analytically(scene, aa):
    # odd size: the centre pixel's centre is the principal point, so it sees along +z
    size = (41, 31)
    K = intrinsics(size, 60.0)
    pos = np.array([2.4, 1.6, 1.3])
    pitch = np.radians(-55.0)
    q = orientations(pos[None], np.array([0.3]), np.array([pitch]), np.array([0.0]))[0]
    rgb, depth = Renderer(scene, K, size, aa=aa).render(pos, q)
    assert rgb.shape == (31, 41, 3) and depth.shape == (31, 41)
    expected = pos[2] / np.sin(-pitch)          # distance to z = 0 along the optical axis
    assert depth[15, 20] == pytest.approx(expected, abs=1e-4)


def test_depth_backprojects_onto_the_face_hit(scene):
    size = (48, 36)
    K = intrinsics(size, 70.0)
    plans = plan_sequences(60, seed=3)
    checked = set()
    for p in plans:
        pos, q = p.positions[3], p.rotations[3]
        R = quat_to_matrix(q)
        t, face, _ = cast(scene, pos, R, K, 1, camera_rays(K, size, 1).reshape(size[1], size[0], 3).transpose(2, 0, 1))
        _, depth = Renderer(scene, K, size, aa=2).render(pos, q)
        assert np.array_equal(depth, t)   # even aa: depth comes from the centre rays
        assert (face >= 0).all(), "the room is closed: every ray hits something"
        v, u = np.mgrid[0:size[1], 0:size[0]]
        uv = np.stack([u.ravel() + 0.5, v.ravel() + 0.5], -1)
        X = backproject(uv, depth.ravel(), K, pos, q)
        axis = np.array([scene.faces[f].axis for f in face.ravel()])
        value = np.array([scene.faces[f].value for f in face.ravel()])
        assert np.abs(X[np.arange(len(X)), axis] - value).max() < 1e-4
        assert (X > scene.room_lo - 1e-4).all() and (X < scene.room_hi + 1e-4).all()
        checked.update(scene.faces[f].name for f in np.unique(face))
    assert "floor" in checked and any(n.startswith("box") for n in checked)


def test_poses_are_canonical_unit_quaternions():
    q = np.concatenate([p.rotations for p in plan_sequences(300, seed=5, random_views_count=50)])
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    assert (q[:, 0] >= 0).all()
    R = quat_to_matrix(q)
    assert (R[:, 2, 1] < -0.9).all(), "image y (down) points to world -z: the camera is upright"
    assert np.abs(R[:, 2, 2]).max() < np.sin(np.radians(20)), "looking mostly horizontally"


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_test_positions_inside_train_bounding_box(scene, seed):
    plans = plan_sequences(800, seed=seed)
    train = np.concatenate([p.positions for p in plans if p.split == "train"])
    test = np.concatenate([p.positions for p in plans if p.split == "test"])
    assert len(train) + len(test) == 800 and abs(len(train) - 2 * len(test)) <= 2
    lo, hi = train.min(0), train.max(0)
    assert ((test > lo) & (test < hi)).all()
    both = np.concatenate([train, test])
    assert scene.inside_free_space(both, margin=0.3).all(), "cameras keep 0.3 m from walls and boxes"
    assert (both[:, 2] >= 1.0 - 1e-9).all() and (both[:, 2] <= 2.0 + 1e-9).all()


def test_loops_are_smooth_and_closed():
    for p in plan_sequences(800, seed=2):
        step = np.linalg.norm(np.diff(p.positions, axis=0), axis=1)
        turn = rotation_error_deg(p.rotations[1:], p.rotations[:-1])
        assert step.max() < 0.2 and turn.max() < 10.0, p.name
        assert np.linalg.norm(p.positions[0] - p.positions[-1]) < 0.2, "a loop ends where it began"


def test_plan_rejects_too_few_frames():
    with pytest.raises(ConfigError, match="cannot fill 6 sequences"):
        plan_sequences(5, seed=0)
    with pytest.raises(ConfigError, match="random views"):
        plan_sequences(50, seed=0, random_views_count=50)


def test_random_views_form_one_more_train_sequence(scene):
    plans = plan_sequences(100, seed=4, random_views_count=40)
    assert [(p.name, p.split, p.kind) for p in plans] == [
        ("seq-01", "train", "loop"), ("seq-02", "train", "loop"), ("seq-03", "train", "loop"),
        ("seq-04", "train", "loop"), ("seq-05", "train", "random"), ("seq-06", "test", "loop"),
        ("seq-07", "test", "loop")]
    assert sum(len(p) for p in plans) == 100 and len(plans[4]) == 40
    rand = plans[4].positions
    assert scene.inside_free_space(rand, margin=0.3).all()
    step = np.linalg.norm(np.diff(rand, axis=0), axis=1)
    assert np.median(step) > 0.5, "random views jump around, unlike the loops"


def test_importing_the_synth_package_pulls_in_no_optional_dependency():
    import subprocess

    code = ("import sys, edgepose.synth, edgepose.cli.synth; "
            "print(sorted(m for m in ('skimage', 'scipy', 'torch', 'tqdm') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
