"""The difficulty head: its closed-form fit on honest errors, and its output in the exported
graph (a real ONNX Runtime session) against numpy on the same buffers."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.train.difficulty import difficulty, fit_difficulty, log_error

torch = pytest.importorskip("torch")


def test_the_head_learns_a_log_linear_difficulty_and_its_out_of_fold_answers_rank_it():
    r = np.random.default_rng(0)
    x = r.normal(size=(300, 12))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    true_w = np.zeros((12, 2))
    true_w[0, 0], true_w[3, 1] = 4.0, -3.0
    # errors = exp(x w + 0.5) times a chi-like factor: log error linear in x plus noise
    err = np.exp(x @ true_w + 0.5) * r.uniform(0.7, 1.3, size=(300, 2))
    fold = np.arange(300) % 3
    coef, bias, oof, info = fit_difficulty(x, err, fold)
    # the fitted map points the way the true one does (cosine of the coefficients per output)
    for j in (0, 1):
        c = coef[:, j] @ true_w[:, j] / np.linalg.norm(coef[:, j]) / np.linalg.norm(true_w[:, j])
        assert c > 0.9
    # its out-of-fold answers rank the errors (numpy rank correlation, not the module's)
    for j in (0, 1):
        ra, rb = np.argsort(np.argsort(oof[:, j])), np.argsort(np.argsort(err[:, j]))
        assert np.corrcoef(ra, rb)[0, 1] > 0.8
        assert info["oof_spearman"][j] > 0.8
    np.testing.assert_allclose(difficulty(x, coef, bias), np.exp(x @ coef + bias))
    # a perfect hit is lifted to 5 % of the median before the log, not -inf
    assert np.isfinite(log_error(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))).all()


def test_the_difficulty_signal_in_the_exported_graph_equals_numpy(tmp_path):
    # sigma = sigma_scale * [position scale, 1] * g * exp(unit(h) @ coef + bias), every other
    # weight 0: ONNX Runtime against numpy on the same buffers
    onnx = pytest.importorskip("onnx")
    from test_pose_memory import _filled, _images, _model, _unit, onnx_sigma_of_one_signal

    model = _model()
    _filled(model, n=10, blend=(0.25, 0.5))
    coef = np.random.default_rng(4).normal(scale=0.8, size=(16, 2)).astype(np.float32)
    model.memory.difficulty_coef.copy_(torch.from_numpy(coef))
    model.memory.difficulty_bias.copy_(torch.tensor([-1.0, 0.5]))
    got, h, path = onnx_sigma_of_one_signal(model, "difficulty_weight", [1.5, 0.25], _images(5, seed=21), tmp_path)
    want = np.exp(_unit(h) @ coef.astype(np.float64) + np.array([-1.0, 0.5])) * np.array([1.5, 0.25]) * np.array([4.0, 3.0])
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert np.ptp(got[:, 0]) > 0.1 * got[:, 0].mean()  # the frames differ: the signal varies
    # the head lives in /post_memory (FP32 post-processing)
    exps = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Exp" and n.name.startswith("/post_memory/")]
    assert exps, "no Exp node of the difficulty head under /post_memory"
