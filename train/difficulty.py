"""The difficulty head: how large a frame's error will be, learned from honest errors (numpy).

Frames differ in how hard they are, and the ranks of per-frame errors agree between models
trained with different seeds (issue 24: Spearman 0.60-0.71), so difficulty can be learned, but
only from errors of frames a model did not train on (:mod:`edgepose.train.fold_train`). The
head is a ridge map of the final model's unit FC features ``x (N, dim)`` to the log error
per output::

    D = exp(x @ coef + bias)        coef (dim, 2), bias (2,)   [position units, rad]

fitted in closed form (:func:`edgepose.train.oof.ridge_fit`), one strength per output chosen by
how well its out-of-fold answers rank the honest errors (Spearman; the folds of the fold
models, so no view's own error fits its answer). Inside the model it is one MatMul, Add and
Exp in ``/post_memory`` (FP32; :func:`edgepose.train.pose_memory.sigma_signals`).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from edgepose.uncertainty import spearman

from .oof import oof_ridge, ridge_fit

#: ridge strengths tried, relative to the mean squared (centred) feature norm
STRENGTH_GRID = (0.1, 1.0, 10.0)
#: errors below this share of their median are lifted to it before the log (an exact hit is not 100x easier)
FLOOR = 0.05


def log_error(err: np.ndarray) -> np.ndarray:
    """``log(max(err, FLOOR * median))`` per column of ``err (N, 2)``."""
    err = np.asarray(err, np.float64)
    floor = FLOOR * np.maximum(np.median(err, axis=0), 1e-12)
    return np.log(np.maximum(err, floor))


def fit_difficulty(x: np.ndarray, err: np.ndarray, fold: np.ndarray,
                   grid: Sequence[float] = STRENGTH_GRID) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict]:
    """The difficulty head on unit features ``x (N, dim)`` and honest errors ``err (N, 2)``
    [position units, rad] of the views, folds ``fold (N,)``.

    Returns ``(coef (dim, 2), bias (2,), oof (N, 2), info)``: ``oof`` the head's answers
    (``exp``, error units) for each view from a head fitted on the other folds (what sigma's
    weights are chosen on), ``info`` the strengths and their out-of-fold Spearman per output.
    """
    x = np.asarray(x, np.float64)
    y = log_error(err)
    coef = np.zeros((x.shape[1], 2))
    bias = np.zeros(2)
    oof = np.zeros_like(y)
    info: Dict[str, list] = {"strength": [], "oof_spearman": []}
    for j in (0, 1):
        best = None
        for s in grid:
            pred = oof_ridge(x, y[:, j:j + 1], fold, s)[:, 0]
            r = spearman(pred, err[:, j])
            r = -1.0 if r is None else float(r)
            if best is None or r > best[0]:
                best = (r, s, pred)
        r, s, pred = best
        ridge = ridge_fit(x, y[:, j:j + 1], s)
        coef[:, j] = ridge.coef[:, 0]
        bias[j] = float(ridge.y_mean[0] - ridge.x_mean @ ridge.coef[:, 0])
        oof[:, j] = np.exp(pred)
        info["strength"].append(float(s))
        info["oof_spearman"].append(r)
    return coef, bias, oof, info


def difficulty(x: np.ndarray, coef: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``(N, 2)``: the head's answer ``exp(x @ coef + bias)`` for unit features ``x (N, dim)``."""
    return np.exp(np.asarray(x, np.float64) @ coef + bias)
