"""sigma -> ROS pose covariance: hand-worked cases, scipy's chi distribution, and a Monte Carlo
check of the lever-arm propagation with scipy's Rotation."""
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.transform import Rotation as SciRot

from edgepose import covariance as C
from edgepose.errors import EdgePoseError


def test_chi3_mean_matches_scipy():
    assert C.CHI3_MEAN == pytest.approx(stats.chi(3).mean(), rel=1e-12)


def test_hand_worked_sigma_to_covariance():
    # sigma = 0.2 m, 0.05 rad: variances 0.04*pi/8 = 0.015707963 m², 0.0025*pi/8 = 9.8174770e-4 rad²
    cov = C.sigma_to_covariance(0.2, 0.05)
    expect = np.diag([0.015707963267948967] * 3 + [0.0009817477042468104] * 3)
    np.testing.assert_allclose(cov, expect, rtol=1e-12, atol=0)
    arr = C.to_ros_array(cov)
    assert arr.shape == (36,) and arr.dtype == np.float64
    # row-major: diagonal entries at 0, 7, 14, 21, 28, 35
    assert [i for i in range(36) if arr[i] != 0] == [0, 7, 14, 21, 28, 35]
    assert arr[21] == pytest.approx(0.0025 * math.pi / 8)


def test_mean_norm_of_sampled_errors_is_sigma():
    """Draw errors from the covariance: their mean norm is sigma again (the definition of sigma)."""
    rng = np.random.default_rng(0)
    cov = C.sigma_to_covariance(0.3, 0.1)
    e = rng.multivariate_normal(np.zeros(6), cov, size=200_000)
    assert np.linalg.norm(e[:, :3], axis=1).mean() == pytest.approx(0.3, rel=5e-3)
    angle = SciRot.from_rotvec(e[:, 3:]).magnitude()
    assert angle.mean() == pytest.approx(0.1, rel=5e-3)


def test_zero_sigma_is_zero_and_bad_sigma_is_refused():
    assert not C.sigma_to_covariance(0.0, 0.0).any()
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(EdgePoseError, match="sigma"):
            C.sigma_to_covariance(bad, 0.1)


def test_lever_arm_hand_worked():
    # camera at identity, body origin 1 m along the camera's x: rotation error about y, z moves
    # the body point by 1 m x angle along z, y; about x it does not move it.
    v = 0.01
    cov = np.diag([0.0, 0.0, 0.0, v, v, v])
    out = C.transform_covariance(cov, [1, 0, 0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(np.diag(out)[:3], [0.0, v, v], atol=1e-15)
    # cross terms: dp = w x r, r = e_x: dp_y = w_z, dp_z = -w_y
    assert out[1, 5] == pytest.approx(v) and out[2, 4] == pytest.approx(-v)
    np.testing.assert_allclose(out[3:, 3:], cov[3:, 3:])


def test_lever_arm_matches_monte_carlo_with_scipy():
    rng = np.random.default_rng(1)
    q_wa = np.array([0.9, 0.1, -0.3, 0.2])
    q_wa /= np.linalg.norm(q_wa)
    R_wa = SciRot.from_quat(q_wa[[1, 2, 3, 0]])
    lever = np.array([0.3, -0.2, 0.5])
    p_a = np.array([1.0, 2.0, 3.0])
    cov = C.sigma_to_covariance(0.05, 0.08)
    n = 100_000
    e = rng.multivariate_normal(np.zeros(6), cov, size=n)
    R_true = SciRot.from_rotvec(e[:, 3:]) * R_wa  # fixed-axes (world, left) perturbation
    p_b = (p_a + e[:, :3]) + R_true.apply(lever)
    p_b0 = p_a + R_wa.apply(lever)
    w_b = (R_true * R_wa.inv()).as_rotvec()  # B's rotation error = A's, in world axes
    sample = np.cov(np.hstack([p_b - p_b0, w_b]).T)
    predicted = C.transform_covariance(cov, q_wa, lever)
    np.testing.assert_allclose(predicted, sample, atol=2e-4)
    assert np.all(np.linalg.eigvalsh(predicted) > 0)
