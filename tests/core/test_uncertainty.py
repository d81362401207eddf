"""Sigma calibration: the exponential error model's coverage and the fitted scale.

Oracle: scipy.stats (the exponential CDF; Spearman is checked in tests/runtime).
"""
import numpy as np
import pytest

from edgepose.uncertainty import NOMINAL_COVERAGE, calibration, fit_sigma_scale

stats = pytest.importorskip("scipy.stats")


def test_nominal_coverage_is_the_exponential_cdf():
    for k, p in NOMINAL_COVERAGE.items():
        assert p == pytest.approx(stats.expon.cdf(k))


def test_scale_fit_on_held_out_frames_brings_coverage_to_nominal():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.05, 1.0, 4000)             # what the heads say
    err = rng.exponential(2.5 * sigma)               # the truth: errors 2.5x larger
    raw = calibration(np.c_[sigma, sigma], err, np.degrees(err))
    assert raw["within_1sigma_position"] < 0.4       # under-covers, as trained heads do
    c = fit_sigma_scale(err[:2000], sigma[:2000])    # fit on one half ...
    assert c == pytest.approx(2.5, rel=0.1)
    cal = calibration(np.c_[c * sigma, c * sigma][2000:], err[2000:], np.degrees(err[2000:]))  # ... check the other
    for k in (1, 2, 3):
        assert cal[f"within_{k}sigma_position"] == pytest.approx(NOMINAL_COVERAGE[k], abs=0.03)
    raw_half = calibration(np.c_[sigma, sigma][2000:], err[2000:], np.degrees(err[2000:]))
    assert cal["sigma_spearman_position"] == pytest.approx(raw_half["sigma_spearman_position"])  # a scale keeps the order


def test_scale_fit_without_frames_is_neutral():
    assert fit_sigma_scale([], []) == 1.0
    assert fit_sigma_scale([0.3], [0.1]) == 1.0
    assert fit_sigma_scale([np.nan, 1.0], [1.0, np.nan]) == 1.0
