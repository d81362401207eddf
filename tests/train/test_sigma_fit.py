"""Choosing sigma's signal weights on honest frames (train/sigma_fit.py) against known mixtures."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.train.sigma_fit import MIN_RANK_FRAMES, combine, fit_signal_weights, grouped_spearman
from edgepose.uncertainty import spearman


def _signals(n=400, seed=0):
    r = np.random.default_rng(seed)
    return {"a": r.exponential(size=n), "b": 100.0 * r.exponential(size=n), "noise": r.exponential(size=n)}


def test_the_fit_finds_the_signals_the_errors_are_made_of_whatever_their_units():
    s = _signals()
    r = np.random.default_rng(1)
    # the error's scale is a * 1 + b / 100 (b in other units); "noise" has nothing to do with it
    err = np.hypot(s["a"], s["b"] / 100.0) * r.uniform(0.9, 1.1, size=400)
    w, rho = fit_signal_weights(s, err, ("a", "b", "noise"))
    assert w["noise"] == 0.0 and w["a"] > 0 and w["b"] > 0
    assert w["a"] / w["b"] == pytest.approx(100.0, rel=0.6)  # the ratio of the units, within the grid's steps
    oracle = spearman(np.hypot(s["a"], s["b"] / 100.0), err)
    assert rho == pytest.approx(spearman(combine(s, w), err)) and rho > oracle - 0.02
    assert rho > max(spearman(s["a"], err), spearman(s["b"], err)) + 0.1


def test_a_signal_outside_names_gets_zero_and_too_few_frames_choose_nothing():
    s = _signals()
    err = s["noise"]
    w, rho = fit_signal_weights(s, err, ("noise",))
    # one signal ranks alike at every weight: the smallest of the grid wins the tie
    assert w == {"a": 0.0, "b": 0.0, "noise": pytest.approx(0.5 / np.median(s["noise"]))} and rho == pytest.approx(1.0)
    few = {k: v[: MIN_RANK_FRAMES - 1] for k, v in s.items()}
    assert fit_signal_weights(few, err[: MIN_RANK_FRAMES - 1], ("a", "b")) == (None, None)


def test_frames_of_two_kinds_are_ranked_among_their_own_kind():
    # kind 1's errors are 10x kind 0's; "kind" tells the kinds apart and nothing else, "a" ranks
    # inside each kind: pooled, "kind" would look best; grouped, "a" wins and "kind" gets 0
    r = np.random.default_rng(3)
    groups = np.r_[np.zeros(200, int), np.ones(200, int)]
    a = r.exponential(size=400)
    err = (a + 0.3 * r.exponential(size=400)) * np.where(groups == 1, 10.0, 1.0)
    s = {"a": a, "kind": groups + 0.01 * r.uniform(size=400)}
    assert spearman(s["kind"], err) > spearman(a, err)
    w, rho = fit_signal_weights(s, err, ("a", "kind"), groups=groups)
    assert w["kind"] == 0.0 and w["a"] > 0
    by_hand = (spearman(a[:200], err[:200]) + spearman(a[200:], err[200:])) / 2
    assert rho == pytest.approx(by_hand) and grouped_spearman(a, err, groups) == pytest.approx(by_hand)
    assert grouped_spearman(a[:2], err[:2], groups[:2]) is None  # no group of 3 frames
