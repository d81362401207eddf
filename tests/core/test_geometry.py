"""Geometry against scipy's Rotation, hand-worked cases, and the conventions pinned."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation as SciRot

from edgepose import geometry as G
from edgepose.errors import EdgePoseError

quat = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda v: np.linalg.norm(v) > 1e-3).map(lambda v: np.array(v) / np.linalg.norm(v))


def to_scipy(q):
    return SciRot.from_quat(np.asarray(q)[..., [1, 2, 3, 0]])  # scipy is xyzw


def test_convention_quaternion_is_wxyz():
    # 90 deg about z: w = cos45, z = sin45, in (w, x, y, z) order
    q = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    R = G.quat_to_matrix(q)
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(R, SciRot.from_euler("z", 90, degrees=True).as_matrix(), atol=1e-12)


def test_convention_hamilton_product_order():
    qa = G.matrix_to_quat(SciRot.from_euler("x", 90, degrees=True).as_matrix())
    qb = G.matrix_to_quat(SciRot.from_euler("z", 90, degrees=True).as_matrix())
    # a ⊗ b rotates by b first, then by a (matrix product R_a @ R_b)
    np.testing.assert_allclose(G.quat_to_matrix(G.quat_multiply(qa, qb)),
                               G.quat_to_matrix(qa) @ G.quat_to_matrix(qb), atol=1e-12)


def test_convention_canonical_hemisphere():
    q = G.quat_canonical([-0.5, 0.5, -0.5, 0.5])
    assert q[0] > 0
    np.testing.assert_allclose(q, [0.5, -0.5, 0.5, -0.5])
    # w == 0 tie broken by x > 0
    np.testing.assert_allclose(G.quat_canonical([0, -1, 0, 0]), [0, 1, 0, 0])


def test_convention_pose_is_world_from_camera_opencv_axes():
    # camera at (1, 2, 3) looking along world +x, image "down" along world -z
    q = G.look_at([1, 2, 3], [5, 2, 3], up=(0, 0, 1))
    R = G.quat_to_matrix(q)
    np.testing.assert_allclose(R[:, 2], [1, 0, 0], atol=1e-12)   # camera z (forward)
    np.testing.assert_allclose(R[:, 1], [0, 0, -1], atol=1e-12)  # camera y (down)
    np.testing.assert_allclose(R[:, 0], [0, -1, 0], atol=1e-12)  # camera x (right)
    uv, depth, valid = G.project_points(np.array([[5.0, 2, 3], [0.0, 2, 3]]), np.array([1.0, 2, 3]), q)
    np.testing.assert_allclose(uv[0], [0, 0], atol=1e-12)
    assert depth[0] == pytest.approx(4.0) and valid.tolist() == [True, False]


@settings(max_examples=200, deadline=None)
@given(quat)
def test_quat_to_matrix_matches_scipy(q):
    np.testing.assert_allclose(G.quat_to_matrix(q), to_scipy(q).as_matrix(), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(quat, quat)
def test_multiply_and_error_match_scipy(a, b):
    np.testing.assert_allclose(G.quat_to_matrix(G.quat_multiply(a, b)),
                               (to_scipy(a) * to_scipy(b)).as_matrix(), atol=1e-12)
    expect = np.degrees((to_scipy(a).inv() * to_scipy(b)).magnitude())
    assert G.rotation_error_deg(a, b) == pytest.approx(expect, abs=1e-5)


@settings(max_examples=200, deadline=None)
@given(quat)
def test_matrix_roundtrip_canonical(q):
    back = G.matrix_to_quat(to_scipy(q).as_matrix())
    assert back[0] >= 0
    assert G.rotation_error_deg(back, q) < 1e-5


def test_matrix_to_quat_near_180_degrees():
    for axis in np.eye(3).tolist() + [[1, 1, 0], [1, -2, 3]]:
        axis = np.array(axis, float) / np.linalg.norm(axis)
        for ang in (np.pi, np.pi - 1e-7, np.pi - 1e-3):
            R = SciRot.from_rotvec(axis * ang).as_matrix()
            q = G.matrix_to_quat(R)
            assert abs(np.linalg.norm(q) - 1) < 1e-12
            np.testing.assert_allclose(G.quat_to_matrix(q), R, atol=1e-9)


def test_q_and_minus_q_have_zero_error():
    q = np.array([0.3, -0.5, 0.7, 0.4]) / np.linalg.norm([0.3, -0.5, 0.7, 0.4])
    assert G.rotation_error_deg(q, -q) == pytest.approx(0.0, abs=1e-6)


def test_slerp_endpoints_midpoint_and_short_arc():
    a = G.matrix_to_quat(np.eye(3))
    b = G.matrix_to_quat(SciRot.from_euler("y", 90, degrees=True).as_matrix())
    np.testing.assert_allclose(G.quat_slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(G.quat_slerp(a, b, 1.0), b, atol=1e-12)
    mid = G.quat_slerp(a, b, 0.5)
    assert G.rotation_error_deg(mid, a) == pytest.approx(45.0)
    # -b is the same rotation: slerp still takes the 90-degree arc
    assert G.rotation_error_deg(G.quat_slerp(a, -b, 0.5), a) == pytest.approx(45.0)


def test_canonical_rejects_bad_quaternions():
    with pytest.raises(EdgePoseError):
        G.quat_canonical([0, 0, 0, 0])
    with pytest.raises(EdgePoseError):
        G.quat_canonical([np.nan, 0, 0, 1])
    ok = G.validate_quaternions(np.array([[1, 0, 0, 0], [2, 0, 0, 0], [np.nan, 0, 0, 1]]))
    assert ok.tolist() == [True, False, False]


def test_world_to_camera_roundtrip_and_centre():
    rng = np.random.default_rng(0)
    R = SciRot.random(20, random_state=1).as_matrix()
    t = rng.normal(size=(20, 3))
    pos, q = G.pose_from_world_to_camera(R, t)
    np.testing.assert_allclose(pos, -np.einsum("nji,nj->ni", R, t), atol=1e-12)
    np.testing.assert_allclose(G.camera_center(R, t), pos)
    R2, t2 = G.world_to_camera(pos, q)
    np.testing.assert_allclose(R2, R, atol=1e-9)
    np.testing.assert_allclose(t2, t, atol=1e-9)


def test_compose_invert_matrix_roundtrip():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(10, 3))
    q = G.quat_canonical(rng.normal(size=(10, 4)))
    pi, qi = G.invert_pose(p, q)
    pc, qc = G.compose_poses(p, q, pi, qi)
    np.testing.assert_allclose(pc, 0, atol=1e-12)
    assert np.all(G.rotation_error_deg(qc, [1, 0, 0, 0]) < 1e-5)
    T = G.pose_to_matrix(p, q)
    np.testing.assert_allclose(T[1] @ np.linalg.inv(T[1]), np.eye(4), atol=1e-12)
    p2, q2 = G.matrix_to_pose(T)
    np.testing.assert_allclose(p2, p)
    assert np.all(G.rotation_error_deg(q2, q) < 1e-5)


def test_projection_with_K_and_backprojection():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    p = np.array([0.5, -1.0, 2.0])
    q = G.quat_canonical([0.9, 0.1, -0.2, 0.3])
    uv = np.array([[10.0, 20.0], [320.0, 240.0], [600.0, 400.0]])
    d = np.array([1.0, 2.5, 7.0])
    X = G.backproject(uv, d, K, p, q)
    uv2, d2, valid = G.project_points(X, p, q, K)
    np.testing.assert_allclose(uv2, uv, atol=1e-9)
    np.testing.assert_allclose(d2, d, atol=1e-12)
    assert valid.all()
    # batched poses (N, 3) against shared points (M, 3)
    uvb, _, _ = G.project_points(X, np.stack([p, p]), np.stack([q, q]), K)
    assert uvb.shape == (2, 3, 2)


def test_points_behind_camera_are_masked_and_finite():
    uv, depth, valid = G.project_points(np.array([[0, 0, -1.0], [0, 0, 0.0], [0, 0, 1.0]]),
                                        np.zeros(3), np.array([1.0, 0, 0, 0]))
    assert valid.tolist() == [False, False, True]
    assert np.isfinite(uv).all()
