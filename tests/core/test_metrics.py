"""The one error/drift vocabulary (``edgepose.metrics``): hand-worked summaries, and the same keys
in training, export and bench."""
import numpy as np
import pytest

from edgepose import metrics as M
from edgepose.errors import EdgePoseError


def test_summarize_errors_hand_worked():
    s = M.summarize_errors([0.1, 0.2, 0.3, 1.0], [1.0, 3.0, 6.0, 20.0])
    assert s["median_position_m"] == pytest.approx(0.25)
    assert s["mean_position_m"] == pytest.approx(0.4)
    assert s["median_rotation_deg"] == pytest.approx(4.5)
    assert s["within_0.25m_2deg"] == pytest.approx(0.25)
    assert s["within_0.5m_5deg"] == pytest.approx(0.5)
    assert s["within_5m_10deg"] == pytest.approx(0.75)
    assert s["n_frames"] == 4
    with pytest.raises(EdgePoseError):
        M.summarize_errors([], [])


def test_summarize_drift_hand_worked():
    s = M.summarize_drift([0.0, 0.01, 0.02, 0.1], [0.0, 1.0, 2.0, 10.0])
    assert set(s) == {"n_frames", *M.DRIFT_KEYS} and s["n_frames"] == 4
    assert s["drift_p50_m"] == pytest.approx(0.015) and s["drift_max_m"] == pytest.approx(0.1)
    assert s["drift_p95_m"] == pytest.approx(0.02 + 0.85 * 0.08)
    assert s["drift_p50_deg"] == pytest.approx(1.5) and s["drift_max_deg"] == pytest.approx(10.0)
    with pytest.raises(EdgePoseError):
        M.summarize_drift([], [])


def test_drift_summary_of_poses_hand_worked():
    s45 = np.sqrt(0.5)
    pos = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    ref = np.array([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0]])  # 5 m and 0 m apart
    rot = np.array([[1.0, 0.0, 0.0, 0.0], [s45, 0.0, 0.0, s45]])
    rot_ref = np.array([[s45, 0.0, 0.0, s45], [-s45, 0.0, 0.0, -s45]])  # 90 deg, and -q (0 deg)
    s = M.drift_summary(pos, rot, ref, rot_ref)
    assert s["drift_max_m"] == pytest.approx(5.0) and s["drift_p50_m"] == pytest.approx(2.5)
    assert s["drift_max_deg"] == pytest.approx(90.0) and s["drift_p50_deg"] == pytest.approx(45.0)
    e = M.error_summary(pos, rot, ref, rot_ref)
    assert e["median_position_m"] == pytest.approx(2.5) and e["median_rotation_deg"] == pytest.approx(45.0)
    with pytest.raises(EdgePoseError, match=r"\(N, 3\) and \(N, 4\)"):
        M.pose_errors(pos, rot, ref[:1], rot_ref[:1])


def test_within_bounds_on_each_statistic():
    s = M.summarize_drift([0.0, 0.01, 0.02, 0.1], [0.0, 1.0, 2.0, 10.0])
    assert M.within_bounds(s) and M.within_bounds(s, 0.015, 1.5)
    assert not M.within_bounds(s, 0.014) and not M.within_bounds(s, max_drift_deg=1.4)
    assert M.within_bounds(s, 0.1, 10.0, stat="max") and not M.within_bounds(s, 0.09, stat="max")


def test_training_export_and_bench_speak_the_same_keys():
    """A precision's drift row in the manifest (export) and in report.json (bench) carry the
    same keys for the same figures, and accuracy keys are those of training's metrics."""
    pytest.importorskip("onnxruntime")
    from edgepose.export.drift import drift_row
    from edgepose.runtime.bench import metrics as bench

    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 4))
    a = {"position": rng.normal(size=(6, 3)), "rotation": q}
    b = {"position": a["position"] + 0.01 * rng.normal(size=(6, 3)), "rotation": q + 0.01 * rng.normal(size=(6, 4))}
    truth = (rng.normal(size=(6, 3)), rng.normal(size=(6, 4)))
    row = drift_row(b, a, *truth)
    bench_drift = bench.drift(b["position"], b["rotation"], a["position"], a["rotation"])
    assert set(bench_drift) == set(M.DRIFT_KEYS) <= set(row)
    for k in M.DRIFT_KEYS:
        assert row[k] == pytest.approx(bench_drift[k])
    acc = bench.accuracy(b["position"], b["rotation"], *truth)
    for k in ("median_position_m", "median_rotation_deg", "mean_position_m", "mean_rotation_deg"):
        assert row[k] == pytest.approx(acc[k])
