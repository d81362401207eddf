"""Sigma calibration: the chi-3 error model's coverage and the fitted scale.

Oracle: scipy.stats (the chi distribution; Spearman is checked in tests/runtime).
"""
import numpy as np
import pytest

from edgepose.uncertainty import NOMINAL_COVERAGE, calibration, fit_sigma_scale

stats = pytest.importorskip("scipy.stats")


def test_nominal_coverage_is_the_chi3_cdf_at_multiples_of_its_mean():
    chi3 = stats.chi(3)
    for k, p in NOMINAL_COVERAGE.items():
        assert p == pytest.approx(chi3.cdf(k * chi3.mean()), abs=1e-12)
    assert NOMINAL_COVERAGE[1] == pytest.approx(0.533, abs=1e-3) and NOMINAL_COVERAGE[2] == pytest.approx(0.983, abs=1e-3)


def chi3_errors(mean, rng):
    """Norms of isotropic 3-D Gaussians whose norm has the given mean (the covariance's model)."""
    s = np.asarray(mean) / stats.chi(3).mean()
    return np.linalg.norm(rng.normal(size=(len(s), 3)) * s[:, None], axis=1)


def test_scale_fit_on_held_out_frames_brings_coverage_to_nominal():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.05, 1.0, 4000)             # what the heads say
    err = chi3_errors(2.5 * sigma, rng)              # the truth: errors 2.5x larger
    raw = calibration(np.c_[sigma, sigma], err, np.degrees(err))
    assert raw["within_1sigma_position"] < 0.2       # under-covers, as trained heads do
    c = fit_sigma_scale(err[:2000], sigma[:2000])    # fit on one half ...
    assert c == pytest.approx(2.5, rel=0.1)
    cal = calibration(np.c_[c * sigma, c * sigma][2000:], err[2000:], np.degrees(err[2000:]))  # ... check the other
    for k in (1, 2, 3):
        assert cal[f"within_{k}sigma_position"] == pytest.approx(NOMINAL_COVERAGE[k], abs=0.03)
    raw_half = calibration(np.c_[sigma, sigma][2000:], err[2000:], np.degrees(err[2000:]))
    assert cal["sigma_spearman_position"] == pytest.approx(raw_half["sigma_spearman_position"])  # a scale keeps the order


def test_scale_is_the_maxwell_maximum_likelihood_fit_of_scipy():
    """The scale is the mean of scipy's maximum-likelihood Maxwell (chi-3) fit to err / sigma,
    and on the frames it was fit on it errs on the wide side when the tail is heavier
    than the model's (a tenth of the frames 4x worse)."""
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0.1, 2.0, 300)
    err = chi3_errors(0.4 * sigma, rng) * np.where(rng.random(300) < 0.1, 4.0, 1.0)
    loc, a = stats.maxwell.fit(err / sigma, floc=0)
    assert fit_sigma_scale(err, sigma) == pytest.approx(stats.maxwell(scale=a).mean(), rel=1e-4)  # scipy fits numerically
    c = fit_sigma_scale(err, sigma)
    at_1sigma = np.quantile(err / sigma, NOMINAL_COVERAGE[1])   # the scale that matches 1 sigma alone
    assert c > 1.2 * at_1sigma                                  # the tail widens it
    assert np.mean(err <= 2 * c * sigma) > 0.9


def test_scale_fit_without_frames_is_neutral():
    assert fit_sigma_scale([], []) == 1.0
    assert fit_sigma_scale([0.3], [0.1]) == 1.0
    assert fit_sigma_scale([np.nan, 1.0], [1.0, np.nan]) == 1.0


def test_auroc_of_the_worst_frames_is_the_pairwise_probability():
    # oracle: count every (worst, other) pair by hand, ties half
    from edgepose.uncertainty import auroc_worst

    r = np.random.default_rng(5)
    err = r.exponential(size=200)
    sigma = np.round(err + r.normal(scale=0.7, size=200), 1)  # rounded: ties on purpose
    worst = np.argsort(-err)[:20]
    other = np.setdiff1d(np.arange(200), worst)
    d = sigma[worst][:, None] - sigma[other][None, :]
    want = (np.sum(d > 0) + 0.5 * np.sum(d == 0)) / d.size
    assert auroc_worst(sigma, err) == pytest.approx(want, abs=1e-12)
    assert auroc_worst(err, err) == 1.0 and auroc_worst(-err, err) == 0.0
    assert auroc_worst(np.ones(200), err) == 0.5
    assert auroc_worst([1.0, 2.0], [1.0, 2.0]) is None
    cal = calibration(np.c_[sigma, np.radians(sigma)], err, err)
    assert cal["sigma_auroc_worst10_position"] == pytest.approx(want)
    assert cal["sigma_auroc_worst10_rotation"] == pytest.approx(want)
