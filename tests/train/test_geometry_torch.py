"""edgepose.train.geometry_torch against edgepose.geometry (numpy) on random inputs."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgepose import geometry as G  # noqa: E402
from edgepose.train import geometry_torch as T  # noqa: E402


def _rand_quats(rng, n):
    return rng.normal(size=(n, 4))


def test_convention_quaternion_is_wxyz_and_matches_numpy():
    rng = np.random.default_rng(0)
    q = _rand_quats(rng, 64)
    R_t = T.quat_to_matrix(torch.from_numpy(q)).numpy()
    np.testing.assert_allclose(R_t, G.quat_to_matrix(q), atol=1e-12)
    # (w, x, y, z): 90 degrees about z maps the camera x axis onto world y
    qz = torch.tensor([[np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]], dtype=torch.float64)
    np.testing.assert_allclose(T.quat_to_matrix(qz)[0] @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               [0.0, 1.0, 0.0], atol=1e-12)


def test_quat_canonical_matches_numpy_including_ties():
    rng = np.random.default_rng(1)
    q = _rand_quats(rng, 32)
    q[:4, 0] = 0.0            # w == 0 ties: broken on x
    q[4:6, :2] = 0.0          # ... then on y
    out = T.quat_canonical(torch.from_numpy(q)).numpy()
    np.testing.assert_allclose(out, G.quat_canonical(q), atol=1e-12)
    assert np.all(out[:, 0] >= 0)


@pytest.mark.parametrize("with_K", [False, True])
def test_project_points_matches_numpy(with_K):
    rng = np.random.default_rng(2)
    n, m = 5, 40
    pos = rng.normal(size=(n, 3))
    q = G.quat_canonical(_rand_quats(rng, n))
    pts = rng.normal(scale=3.0, size=(n, m, 3))
    K = np.array([[100.0, 0, 64], [0, 90.0, 48], [0, 0, 1]]) if with_K else None
    uv, depth, valid = T.project_points(torch.from_numpy(pts), torch.from_numpy(pos), torch.from_numpy(q),
                                        None if K is None else torch.from_numpy(K))
    for i in range(n):
        uv_n, d_n, v_n = G.project_points(pts[i], pos[i], q[i], K)
        np.testing.assert_array_equal(valid[i].numpy(), v_n)
        np.testing.assert_allclose(depth[i].numpy(), d_n, atol=1e-10)
        np.testing.assert_allclose(uv[i].numpy()[v_n], uv_n[v_n], rtol=1e-9, atol=1e-9)
    assert 0 < valid.sum() < n * m  # the draw has points on both sides


def test_convention_camera_axes_opencv():
    # identity camera at the origin: x right, y down, z forward
    pts = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 2.0], [0.0, 0.0, -1.0]]], dtype=torch.float64)
    uv, depth, valid = T.project_points(pts, torch.zeros(1, 3, dtype=torch.float64),
                                        torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64))
    np.testing.assert_allclose(uv[0, :2].numpy(), [[1.0, 0.0], [0.0, 0.5]])
    assert valid[0].tolist() == [True, True, False]
    assert torch.isfinite(uv).all()


def test_projection_gradient_finite_for_point_on_camera_plane():
    pts = torch.tensor([[[0.3, 0.2, 0.0], [0.1, 0.1, 1.0]]], dtype=torch.float64)
    pos = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64, requires_grad=True)
    uv, _, valid = T.project_points(pts, pos, q)
    assert valid[0].tolist() == [False, True]
    uv.sum().backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(q.grad).all()


def test_rotation_angle_matches_numpy_and_is_sign_invariant():
    rng = np.random.default_rng(3)
    a = _rand_quats(rng, 100)
    b = _rand_quats(rng, 100)
    b[:10] = a[:10] + rng.normal(scale=1e-4, size=(10, 4))   # tiny errors
    b[10:15] = -a[10:15]                                      # same rotation, other sign
    got = T.rotation_angle(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, G.rotation_error_rad(a, b), atol=1e-7)
    np.testing.assert_allclose(got[10:15], 0.0, atol=1e-7)
    # 180 degrees about x
    half = T.rotation_angle(torch.tensor([1.0, 0, 0, 0]), torch.tensor([0.0, 1, 0, 0]))
    assert float(half) == pytest.approx(np.pi, abs=1e-6)


def test_rotation_angle_gradient_finite_at_zero_error():
    q = torch.tensor([[0.9, 0.1, -0.3, 0.2]], dtype=torch.float64, requires_grad=True)
    T.rotation_angle(q, q.detach().clone()).sum().backward()
    assert torch.isfinite(q.grad).all()
