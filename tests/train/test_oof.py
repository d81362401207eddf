"""Out-of-fold answers for the training views (train/oof.py, train/oof_fit.py): block folds,
the ridge head against closed forms and a brute-force leave-one-out, and the memory's
out-of-fold answers against a numpy oracle that only sees the other folds."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.train.oof import block_folds, fold_mask, oof_ridge, pose_errors, ridge_fit, ridge_pose_oof


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_sequence_folds_hold_out_whole_sequences_and_block_folds_hold_out_runs_of_neighbours():
    seq = ["a"] * 7 + ["b"] * 5 + ["c"] * 6 + ["d"] * 4
    fold = block_folds(len(seq), 3, sequence=seq, by_sequence=True)
    for s in "abcd":
        assert len(set(fold[np.array(seq) == s])) == 1  # a held-out view's trajectory goes with it
    assert sorted(set(fold)) == [0, 1, 2]
    assert fold[0] != fold[7] != fold[12]  # neighbouring sequences land in different folds
    fold = block_folds(22, 4, sequence=seq, block=3)
    for s in "abcd":
        rows = np.flatnonzero(np.array(seq) == s)
        for start in range(0, rows.size, 3):
            assert len(set(fold[rows[start:start + 3]])) == 1  # a run of 3 neighbours is held out together
        for start in range(0, rows.size - 3, 3):
            assert fold[rows[start]] != fold[rows[start + 3]]  # the next run belongs to another fold
    # one view per block, no sequences: dealt in turn, as test frames taken every n-th
    assert block_folds(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert block_folds(2, 5).tolist() == [0, 1]  # k clipped to the views
    mask = fold_mask(np.array([0, 1, 0]), np.array([0, 1, 0]))
    assert mask.tolist() == [[True, False, True], [False, True, False], [True, False, True]]


def test_ridge_recovers_a_linear_map_and_its_dual_form_equals_the_primal():
    r = _rng(1)
    x = r.normal(size=(60, 8))
    w = r.normal(size=(8, 3))
    y = x @ w + np.array([1.0, -2.0, 0.5])
    fit = ridge_fit(x, y, 1e-9)
    np.testing.assert_allclose(fit.coef, w, atol=1e-5)
    xq = r.normal(size=(5, 8))
    np.testing.assert_allclose(fit.predict(xq), xq @ w + np.array([1.0, -2.0, 0.5]), atol=1e-5)
    # more features than views (the FC features): the primal (X'X + lam I)^-1 X'Y on centred data
    x = r.normal(size=(12, 30))
    y = r.normal(size=(12, 2))
    fit = ridge_fit(x, y, 0.3)
    xc, yc = x - x.mean(0), y - y.mean(0)
    lam = 0.3 * np.trace(xc @ xc.T) / 12
    primal = np.linalg.solve(xc.T @ xc + lam * np.eye(30), xc.T @ yc)
    np.testing.assert_allclose(fit.coef, primal, atol=1e-10)


def test_out_of_fold_answers_never_use_the_view_itself_against_a_brute_force_leave_one_out():
    r = _rng(2)
    x = r.normal(size=(15, 6))
    y = r.normal(size=(15, 2))
    loo = oof_ridge(x, y, np.arange(15), 0.2)  # one view per fold: leave-one-out
    for i in range(15):
        others = np.arange(15) != i
        xc = x[others] - x[others].mean(0)
        lam = 0.2 * np.trace(xc @ xc.T) / 14
        coef = np.linalg.solve(xc.T @ xc + lam * np.eye(6), xc.T @ (y[others] - y[others].mean(0)))
        np.testing.assert_allclose(loo[i], (x[i] - x[others].mean(0)) @ coef + y[others].mean(0), atol=1e-10)
    # block folds: moving a held-out view's target changes no answer of its own fold
    fold = block_folds(15, 3, block=2)
    y2 = y.copy()
    y2[fold == 1] += 100.0
    a, b = oof_ridge(x, y, fold, 0.2), oof_ridge(x, y2, fold, 0.2)
    np.testing.assert_allclose(a[fold == 1], b[fold == 1], atol=1e-9)
    assert np.abs(a[fold != 1] - b[fold != 1]).min() > 1.0  # the others did learn from it
    with pytest.raises(ValueError):
        oof_ridge(x, y, np.zeros(15, int), 0.2)


def test_pose_oof_chooses_its_strength_on_training_views_and_reports_errors_in_position_units_and_rad():
    r = _rng(3)
    x = r.normal(size=(40, 5))
    pos = x[:, :3] * 2.0
    ang = 0.3 * x[:, 3]
    rot = np.stack([np.cos(ang / 2), np.sin(ang / 2), 0 * ang, 0 * ang], axis=1)
    res = ridge_pose_oof(x, pos, rot, block_folds(40, 5), grid=(1e-6, 10.0))
    assert res["strength"] == 1e-6  # a linear scene: the weak ridge wins on the OOF error
    assert np.median(res["errors"][:, 0]) < 1e-3 and res["errors"].shape == (40, 2)
    np.testing.assert_allclose(np.linalg.norm(res["rotation"], axis=1), 1.0, atol=1e-12)
    e = pose_errors(np.zeros((1, 3)), np.array([[1.0, 0, 0, 0]]), np.array([[3.0, 4.0, 0]]),
                    np.array([[np.cos(0.25), 0, np.sin(0.25), 0]]))
    np.testing.assert_allclose(e, [[5.0, 0.5]], atol=1e-12)


def test_the_memory_answers_each_view_from_the_other_folds_only():
    torch = pytest.importorskip("torch")
    from edgepose.train.oof_fit import oof_folds, stand_in
    from edgepose.train.pose_memory import PoseMemory

    r = _rng(4)
    n, dim = 12, 5
    feats = r.normal(size=(n, dim)).astype(np.float32)
    pos = r.normal(size=(n, 3)).astype(np.float32)
    rot = r.normal(size=(n, 4)).astype(np.float32)
    rot /= np.linalg.norm(rot, axis=1, keepdims=True)
    m = PoseMemory(0, dim)
    m.store(torch.from_numpy(feats), torch.from_numpy(pos), torch.from_numpy(rot), k=2,
            view_error=torch.from_numpy(r.uniform(size=(n, 2)).astype(np.float32)))
    m.temperature.fill_(0.05)
    fold, exclude = oof_folds(np.array([""] * n, dtype=object), by_sequence=False, k=3)
    t = torch.from_numpy
    got = stand_in(m.eval(), t(feats), torch.zeros(n, 2), t(pos), t(rot), exclude, t(pos), t(rot), (1.0, 0.0))
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    ve = m.view_error.numpy()
    for i in range(n):
        allowed = np.flatnonzero(fold != fold[i])
        sim = f[allowed] @ f[i]
        near = allowed[np.argsort(-sim, kind="stable")[:2]]
        w = np.exp((f[near] @ f[i] - (f[near] @ f[i])[0]) / 0.05)
        w /= w.sum()
        np.testing.assert_allclose(got["errors"][i, 0], np.linalg.norm(w @ pos[near] - pos[i]), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["neighbour_error"][i], w @ ve[near], rtol=1e-4, atol=1e-6)
    assert (got["errors"][:, 1] < 1e-3).all()  # rotation blend 0: the stand-in's own (true) rotation
