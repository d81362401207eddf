"""Choose how sigma combines its signals, from honest answers (numpy only).

Sigma per output is ``sqrt(sum_i (w_i * s_i)^2)`` over per-frame signals ``s_i`` that rise on
hard frames (:mod:`edgepose.train.pose_memory` computes them inside the model: the
heteroscedastic head's sigma, the regressor/memory disagreement, the spread of the nearest
views' poses, the feature distance to the nearest view). :func:`fit_signal_weights` chooses the
weights ``w_i >= 0`` that rank the errors of frames the model did not fit (Spearman), and
:func:`edgepose.uncertainty.fit_sigma_scale` then scales the result on the same frames.

Each signal is first divided by its median on those frames, so one grid of relative weights
(:data:`WEIGHT_GRID`) serves signals of any unit; the returned weights are in the signal's units.
"""
from __future__ import annotations

import itertools
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from edgepose.uncertainty import spearman

#: relative weights tried for each signal (after dividing it by its median)
WEIGHT_GRID = (0.0, 0.5, 1.0, 2.0)
#: fewer honest frames than this cannot rank sigma: the default weights stay
MIN_RANK_FRAMES = 8


def combine(signals: Dict[str, np.ndarray], weights: Dict[str, float]) -> np.ndarray:
    """``sqrt(sum_i (w_i * s_i)^2)`` over the signals named in ``weights``, ``(N,)``."""
    total = None
    for name, w in weights.items():
        term = (float(w) * np.asarray(signals[name], np.float64)) ** 2
        total = term if total is None else total + term
    return np.sqrt(total)


def grouped_spearman(x: np.ndarray, y: np.ndarray, groups: Optional[np.ndarray] = None) -> Optional[float]:
    """Spearman of ``x`` and ``y`` (``(N,)``) within each group, averaged weighted by the group's
    frames (groups of fewer than 3 frames left out): frames of different kinds (validation
    frames of the model, out-of-fold answers of a stand-in) are ranked among their own kind only,
    so a signal is not rewarded for telling the kinds apart. ``None`` when no group ranks."""
    if groups is None:
        return spearman(x, y)
    total, n = 0.0, 0
    for g in np.unique(groups):
        sel = groups == g
        r = spearman(x[sel], y[sel]) if sel.sum() >= 3 else None
        if r is not None:
            total, n = total + r * sel.sum(), n + int(sel.sum())
    return total / n if n else None


def fit_signal_weights(signals: Dict[str, np.ndarray], err: np.ndarray, names: Sequence[str],
                       grid: Sequence[float] = WEIGHT_GRID, groups: Optional[np.ndarray] = None
                       ) -> Tuple[Optional[Dict[str, float]], Optional[float]]:
    """The weights over ``names`` (others get 0) whose :func:`combine` ranks ``err (N,)`` best
    (:func:`grouped_spearman` over ``groups (N,)`` when given).

    Returns ``(weights, spearman)``; ``(None, None)`` when fewer than :data:`MIN_RANK_FRAMES`
    finite frames are given or no combination ranks at all. Among equal ranks the combination
    with fewer signals, then smaller weights, wins (what generalises from few frames).
    """
    err = np.asarray(err, np.float64).ravel()
    groups = None if groups is None else np.asarray(groups).ravel()
    ok = np.isfinite(err)
    for n in names:
        ok &= np.isfinite(np.asarray(signals[n], np.float64))
    if ok.sum() < MIN_RANK_FRAMES:
        return None, None
    med = {}
    for n in names:
        m = float(np.median(np.asarray(signals[n], np.float64)[ok]))
        med[n] = m if m > 0 else float(np.mean(np.asarray(signals[n], np.float64)[ok])) or 1.0
    best = None
    for combo in itertools.product(grid, repeat=len(names)):
        if not any(combo):
            continue
        weights = {n: w / med[n] for n, w in zip(names, combo)}
        r = grouped_spearman(combine({n: np.asarray(signals[n])[ok] for n in names}, weights), err[ok],
                             None if groups is None else groups[ok])
        if r is None:
            continue
        key = (round(r, 2), -sum(1 for w in combo if w), -sum(combo))  # 0.01: below what N frames resolve
        if best is None or key > best[0]:
            best = (key, weights, r)
    if best is None:
        return None, None
    return {n: float(best[1].get(n, 0.0)) for n in signals}, float(best[2])
