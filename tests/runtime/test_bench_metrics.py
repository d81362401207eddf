"""Bench figures: percentiles, warm-up by time, Spearman (checked against scipy), drift, calibration."""

import numpy as np
import pytest

from edgepose.errors import ConfigError, EdgePoseError
from edgepose.geometry import quat_canonical
from edgepose.runtime.bench import metrics
from edgepose.runtime.bench.timing import StageTimer, latency_stats, warm_up


def test_latency_stats_are_percentiles_not_means():
    samples = [1.0] * 98 + [50.0, 100.0]
    s = latency_stats(samples)
    assert s["p50"] == 1.0 and s["n"] == 100
    assert s["p99"] > 49.0  # the tail shows up in p99 ...
    assert s["mean"] > 2.0  # ... while a mean would hide it in a single inflated number
    assert latency_stats([])["p50"] is None


def test_warm_up_runs_until_the_clock_passes_the_time_asked_and_at_least_once():
    now = [0.0]

    def call():  # each call takes 0.25 s on this clock (exact in binary)
        now[0] += 0.25

    assert warm_up(call, 1.0, clock=lambda: now[0]) == 4  # ends at 1.0 s, not before
    now[0] = 0.0
    assert warm_up(call, 1.1, clock=lambda: now[0]) == 5  # 1.0 < 1.1: one more
    assert warm_up(lambda: None, 0.0) == 1
    assert warm_up(lambda: None, 0.0, min_calls=3) == 3
    with pytest.raises(ConfigError):
        warm_up(lambda: None, -1)


def test_stage_timer_ignores_non_numeric_runner_entries():
    t = StageTimer()
    t.add_many({"compute": 2.0, "provider": "cpu", "bad": float("nan")})
    assert list(t.stats()) == ["compute"]


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 40).astype(float)  # many ties
    y = x + rng.normal(0, 2, 40)
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).correlation, abs=1e-12)
    assert metrics.spearman(x, -x) == pytest.approx(-1.0)
    assert metrics.spearman([1, 1, 1, 1], [1, 2, 3, 4]) is None  # constant side: undefined
    assert metrics.spearman([1, 2], [1, 2]) is None


def test_rankdata_averages_ties():
    assert metrics.rankdata(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_drift_is_frame_by_frame_distance_to_reference():
    n = 20
    pos = np.zeros((n, 3))
    rot = np.tile([1.0, 0, 0, 0], (n, 1))
    shifted = pos + np.array([0.0, 0.0, 0.01]) * np.arange(n)[:, None]  # 0 .. 0.19 m
    half = np.radians(np.arange(n, dtype=float)) / 2  # rotations of 0 .. 19 degrees about z
    rot2 = np.stack([np.cos(half), 0 * half, 0 * half, np.sin(half)], 1)
    d = metrics.drift(shifted, -rot2, pos, rot)  # -q is the same rotation as q
    assert d["drift_max_m"] == pytest.approx(0.19)
    assert d["drift_p50_m"] == pytest.approx(np.percentile(np.arange(n) * 0.01, 50))
    assert d["drift_max_deg"] == pytest.approx(19.0)
    assert d["drift_p95_deg"] == pytest.approx(np.percentile(np.arange(n, dtype=float), 95))
    with pytest.raises(EdgePoseError):
        metrics.drift(pos[:3], rot[:3], pos, rot)


def test_calibration_fractions_and_units():
    pe = np.array([0.1, 0.2, 0.3, 0.4])
    re = np.array([1.0, 2.0, 3.0, 4.0])  # degrees
    sigma = np.column_stack([[0.2, 0.2, 0.2, 0.2], np.radians([2.0, 2.0, 2.0, 2.0])])
    c = metrics.calibration(sigma, pe, re)
    assert c["within_1sigma_position"] == 0.5 and c["within_2sigma_position"] == 1.0
    assert c["within_1sigma_rotation"] == 0.5  # sigma[:, 1] is radians, compared in degrees
    assert c["median_sigma_rotation_deg"] == pytest.approx(2.0)
    assert c["sigma_spearman_position"] is None  # constant sigma cannot rank frames
    good = metrics.calibration(np.column_stack([pe * 1.1, np.radians(re)]), pe, re)
    assert good["sigma_spearman_position"] == pytest.approx(1.0)
    with pytest.raises(EdgePoseError):
        metrics.calibration(sigma[:, :1], pe, re)


def test_accuracy_uses_the_geometry_conventions():
    q = quat_canonical(np.array([[1.0, 0.2, 0.0, 0.0], [1.0, 0.0, 0.3, 0.0]]))
    a = metrics.accuracy(np.zeros((2, 3)), q, np.ones((2, 3)), q)
    assert a["median_position_m"] == pytest.approx(np.sqrt(3.0))
    assert a["median_rotation_deg"] == pytest.approx(0.0, abs=1e-5)
