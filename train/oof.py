"""Out-of-fold (OOF) answers for every training view, without retraining the network.

Sigma has to learn how hard a frame is from errors the model made on frames it did not fit;
the validation split has only a few dozen of those. After training, :func:`oof_answers` gives
every stored training view an honest answer, cheaply:

1. the views are split into ``K`` folds of contiguous blocks (:func:`block_folds`): whole
   sequences when the test split is other sequences (a held-out view's trajectory neighbours
   are held out with it, as a test frame's are), else blocks of ``block`` frames dealt to the
   folds in turn (``block`` 1: each held-out view sits between kept ones, as a test frame
   taken every n-th frame does);
2. per fold, a closed-form ridge head (:func:`ridge_fit`: FC features -> normalised position
   and canonical quaternion) is fitted on the other folds and predicts the held-out views: a
   stand-in for the regressor on frames it did not fit (the backbone did see them, so these
   errors are smaller than the regressor's test errors; their ranking is what sigma uses);
3. the pose memory answers each view from the other folds' views only (the caller's
   ``exclude`` mask, :func:`fold_mask`).

Plain numpy (the dual form: ``N`` views <= a few thousand, ``N x N`` solves), float64.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

#: folds of the training views
DEFAULT_FOLDS = 5
#: ridge strengths tried, relative to the mean squared feature norm (chosen on the OOF error)
RIDGE_GRID = (0.01, 0.1, 1.0)


def block_folds(n: int, k: int = DEFAULT_FOLDS, sequence: Optional[Sequence[str]] = None,
                block: int = 1, by_sequence: bool = False) -> np.ndarray:
    """Fold id ``(n,)`` int in ``0..k-1`` of ``n`` views in trajectory order.

    ``by_sequence``: each named sequence is one block (sequences dealt to the folds in turn;
    with fewer sequences than ``k``, fewer folds); else consecutive runs of ``block`` views
    within each sequence are dealt to the folds in turn, continuing across sequences.
    ``k`` is clipped to ``n``.
    """
    k = max(1, min(int(k), int(n)))
    seq = np.asarray(sequence if sequence is not None else [""] * n, dtype=object)
    if seq.shape != (n,):
        raise ValueError(f"block_folds: {seq.size} sequence names for {n} views")
    names = list(dict.fromkeys(seq.tolist()))  # first-seen order
    fold = np.zeros(n, np.int64)
    if by_sequence and len(names) >= 2:
        for j, s in enumerate(names):
            fold[seq == s] = j % k
        return fold
    b = max(1, int(block))
    start = 0
    for s in names:
        rows = np.flatnonzero(seq == s)
        fold[rows] = (start + np.arange(rows.size) // b) % k
        start += -(-rows.size // b)
    return fold


def fold_mask(fold_query: np.ndarray, fold_db: np.ndarray) -> np.ndarray:
    """``(Nq, M)`` bool: the stored views a query may not use (those of its own fold)."""
    return np.asarray(fold_query)[:, None] == np.asarray(fold_db)[None, :]


class Ridge:
    """A fitted ridge map ``y = (x - x_mean) @ coef + y_mean`` (``coef (D, T)``)."""

    def __init__(self, x_mean: np.ndarray, coef: np.ndarray, y_mean: np.ndarray):
        self.x_mean, self.coef, self.y_mean = x_mean, coef, y_mean

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(N, T)`` for features ``x (N, D)``."""
        return (np.asarray(x, np.float64) - self.x_mean) @ self.coef + self.y_mean


def ridge_fit(x: np.ndarray, y: np.ndarray, strength: float) -> Ridge:
    """Ridge regression of ``y (N, T)`` on ``x (N, D)`` with an intercept, in the dual form
    (``coef = X^T (X X^T + lam I)^-1 Y`` on centred data; the same as the primal for any N, D).
    ``lam = strength * mean squared norm of the centred rows``, so one grid fits any feature scale."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    gram = xc @ xc.T
    lam = float(strength) * max(float(np.trace(gram)) / max(len(x), 1), 1e-12)
    alpha = np.linalg.solve(gram + lam * np.eye(len(x)), y - ym)
    return Ridge(xm, xc.T @ alpha, ym)


def oof_ridge(x: np.ndarray, y: np.ndarray, fold: np.ndarray, strength: float) -> np.ndarray:
    """``(N, T)``: each view's prediction by a ridge fitted on the views of the other folds."""
    out = np.zeros(np.asarray(y).shape, np.float64)
    for f in np.unique(fold):
        held = fold == f
        if held.all():
            raise ValueError("oof_ridge: one fold holds every view (nothing to fit on)")
        out[held] = ridge_fit(x[~held], y[~held], strength).predict(x[held])
    return out


def canonical(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(N, 4)`` wxyz with ``w >= 0``."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


def pose_errors(p: np.ndarray, q: np.ndarray, p_true: np.ndarray, q_true: np.ndarray) -> np.ndarray:
    """``(N, 2)``: position distance (the units of ``p``) and rotation angle (rad) per view."""
    cos = np.abs(np.sum(canonical(q) * canonical(q_true), axis=-1))
    return np.stack([np.linalg.norm(np.asarray(p) - np.asarray(p_true), axis=-1),
                     2.0 * np.arccos(np.clip(cos, 0.0, 1.0))], axis=-1)


def ridge_pose_oof(features: np.ndarray, position: np.ndarray, rotation: np.ndarray, fold: np.ndarray,
                   grid: Sequence[float] = RIDGE_GRID) -> Dict[str, object]:
    """OOF ridge answers (step 2 of the module doc) with the strength whose OOF errors are
    smallest (median position over its median spread + median rotation rad; chosen on the
    training views themselves, never on test frames).

    Returns ``{"position": (N, 3), "rotation": (N, 4) canonical, "errors": (N, 2), "strength": float}``.
    """
    pos = np.asarray(position, np.float64)
    rot = canonical(rotation)
    spread = float(np.median(np.linalg.norm(pos - pos.mean(0), axis=1))) or 1.0
    y = np.concatenate([pos, rot], axis=1)
    best = None
    for s in grid:
        pred = oof_ridge(features, y, fold, s)
        err = pose_errors(pred[:, :3], pred[:, 3:], pos, rot)
        score = float(np.median(err[:, 0])) / spread + float(np.median(err[:, 1]))
        if best is None or score < best[0]:
            best = (score, s, pred, err)
    _, s, pred, err = best
    return {"position": pred[:, :3], "rotation": canonical(pred[:, 3:]), "errors": err, "strength": float(s)}
