"""The Kalman pose filter on a synthetic trajectory with known truth."""
from __future__ import annotations

import numpy as np

from edgepose.geometry import quat_canonical, rotation_error_deg
from edgepose.runtime import PoseFilter, PoseResult


def _trajectory(n=200, fps=30.0, seed=0, outliers=(), yaw_rate=0.2, rot_noise=0.01):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    truth = np.stack([np.cos(0.5 * t) * 2.0, np.sin(0.5 * t) * 2.0, 0.2 * t], 1)  # metres
    sig = rng.uniform(0.05, 0.3, n)  # each frame's own expected error (m)
    meas = truth + rng.standard_normal((n, 3)) * (sig / np.sqrt(3))[:, None]
    for i in outliers:
        meas[i] += np.array([5.0, -4.0, 3.0])
    q_true = quat_canonical(np.stack([np.cos(yaw_rate / 2 * t), np.zeros(n), np.zeros(n), np.sin(yaw_rate / 2 * t)], 1))
    q_meas = quat_canonical(q_true + rng.standard_normal((n, 4)) * rot_noise)
    results = [PoseResult(index=i, capture_time=0.0, timestamp=float(t[i]), position=meas[i].copy(),
                          rotation=q_meas[i], sigma_position_m=float(sig[i]),
                          sigma_rotation_deg=float(rotation_error_deg(q_meas[i], q_true[i]) + 0.5))
               for i in range(n)]
    return truth, q_true, meas, results


def test_filter_reduces_median_position_error():
    truth, _, meas, results = _trajectory()
    f = PoseFilter()
    out = np.stack([f(r).position for r in results])
    raw = np.median(np.linalg.norm(meas - truth, axis=1))
    filt = np.median(np.linalg.norm(out - truth, axis=1))
    assert filt < 0.8 * raw
    assert all(r.filtered in ("filtered", "rejected") for r in results)


def test_outliers_are_gated_and_do_not_pull_the_track():
    truth, _, _, results = _trajectory(outliers=(100, 150))
    f = PoseFilter()
    out = [f(r) for r in results]
    assert out[100].filtered == "rejected" and out[150].filtered == "rejected"
    assert np.linalg.norm(out[100].position - truth[100]) < 0.5  # the 7 m jump was ignored
    assert f.rejected_total >= 2


def test_a_real_jump_restarts_the_filter_after_max_rejects():
    truth, _, _, results = _trajectory(n=60)
    for r in results[30:]:
        r.position = r.position + 10.0  # the camera really is elsewhere now
    f = PoseFilter(max_rejects=3)
    out = [f(r) for r in results]
    assert [r.filtered for r in out[30:34]] == ["rejected"] * 3 + ["filtered"]
    assert np.linalg.norm(out[-1].position - (truth[-1] + 10.0)) < 0.5


def test_rotation_is_smoothed_on_the_sphere():
    # a random-walk rotation model: it smooths noise when the turn rate (3 deg/s here) is small
    # against the noise; it lags on fast turns (README: tune rot_rate_deg to the platform)
    _, q_true, _, results = _trajectory(yaw_rate=0.05, rot_noise=0.02)
    raw = np.array([rotation_error_deg(r.rotation, q) for r, q in zip(results, q_true)])
    f = PoseFilter(rot_rate_deg=5.0)
    out = [f(r) for r in results]
    filt = np.array([rotation_error_deg(r.rotation, q) for r, q in zip(out, q_true)])
    assert np.allclose([np.linalg.norm(r.rotation) for r in out], 1.0) and all(r.rotation[0] >= 0 for r in out)
    assert np.median(filt[20:]) < np.median(raw[20:])


def test_failed_frames_pass_through():
    r = PoseResult(index=0, capture_time=0.0, ok=False, error="cannot decode")
    assert PoseFilter()(r) is r and r.filtered == "raw"


def test_filtered_results_carry_the_posterior_covariance():
    """The position block is the filter's own per-axis variance, below the measurement's
    (sigma² pi/8, the ROS covariance mapping), and the whole matrix is positive definite."""
    _, _, _, results = _trajectory(n=60)
    f = PoseFilter()
    out = [f(r) for r in results]
    last = out[-1]
    cov = last.pose_covariance()
    np.testing.assert_allclose(np.diag(cov)[:3], f.P[:, 0, 0])
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    assert np.all(np.diag(cov)[:3] < 0.05 ** 2 * np.pi / 8)  # tighter than the best single frame
