"""edgepose-bench beside the baselines of the training run, and the sigma reliability plot."""
import numpy as np
import pytest

from edgepose.runtime.bench import report
from edgepose.uncertainty import NOMINAL_COVERAGE

TRAINING = {"baseline.mean_pose.median_position_m": 0.58, "baseline.mean_pose.median_rotation_deg": 86.0,
            "baseline.retrieval.median_position_m": 0.088, "baseline.retrieval.median_rotation_deg": 7.9,
            "baseline.retrieval.n_frames": 73, "test.median_position_m": 0.06, "test.median_rotation_deg": 4.8,
            "test.within_1sigma_position": 0.6, "test.within_2sigma_position": 0.85,
            "test.within_3sigma_position": 0.93}


def test_baseline_rows_come_from_the_training_metrics_and_show_in_the_table():
    rows = report.baseline_rows(TRAINING)
    assert [r["label"].split(" ")[1] for r in rows] == ["mean", "retrieval", "at"]
    assert rows[1]["median_position_m"] == 0.088 and rows[1]["n_frames"] == 73
    md = report.render_markdown({"rows": [], "baselines": rows})
    assert "| baseline: retrieval (pose of the nearest training image) | baseline | - | 0.0880 | 7.900 |" in md
    assert "0.60 / 0.85 / 0.93" in md
    assert report.baseline_rows({}) == [] and report.baseline_rows(None) == []


def test_sigma_reliability_plot_from_exponential_errors(tmp_path):
    pytest.importorskip("matplotlib")
    from edgepose.runtime.bench.plots import plot_sigma_reliability

    rng = np.random.default_rng(0)
    sig = rng.uniform(0.1, 1.0, (500, 2))
    chi3_mean = 2 * np.sqrt(2 / np.pi)
    norm3 = np.linalg.norm(rng.normal(size=(500, 3)), axis=1) / chi3_mean   # mean 1
    err = {"position_m": norm3 * sig[:, 0], "rotation_deg": np.degrees(norm3 * sig[:, 1])}
    rows = [{"label": "onnxruntime/fp32", "status": "ok"}]
    path = plot_sigma_reliability(rows, {"onnxruntime/fp32": err}, {"onnxruntime/fp32": {"sigma": sig}},
                                  tmp_path / "rel.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # what the plot draws at k = 1 is the coverage the error model promises
    assert np.mean(err["position_m"] <= sig[:, 0]) == pytest.approx(NOMINAL_COVERAGE[1], abs=0.05)
    assert plot_sigma_reliability([], {}, {}, tmp_path / "none.png") is None
