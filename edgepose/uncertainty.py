"""Per-frame uncertainty: how well sigma predicts the error, and its calibration (numpy only).

``sigma (N, 2)`` is a frame's expected position error (m) and rotation error (rad): the
uncertainty heads are trained with a Laplace negative log-likelihood on the error norms,
whose minimiser is the expected error.

**Error model.** The same as the ROS covariance's (:mod:`edgepose.covariance`): each error is
the norm of an isotropic 3-D Gaussian (position error vector, rotation vector), so it follows
the chi distribution with 3 degrees of freedom whose *mean* is sigma. Its nominal coverage is
``P(err <= k sigma)`` = 53.3 % at 1 sigma, 98.3 % at 2 sigma, 99.996 % at 3 sigma
(:data:`NOMINAL_COVERAGE`; the chi-3 CDF at ``k`` times its mean ``2 sqrt(2/pi)``).

**Calibration.** Heads trained on the training frames see their small training errors, so
raw sigma under-covers new frames. :func:`fit_sigma_scale` fits one scale per output on
held-out frames (the validation frames of a run): the maximum-likelihood scale of the error
model; it is applied to sigma as FP32 post-processing inside the model graph. A scale leaves
the ranking (Spearman) unchanged.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from .errors import EdgePoseError

#: mean of the chi distribution with 3 degrees of freedom (unit scale)
CHI3_MEAN = 2.0 * math.sqrt(2.0 / math.pi)
#: ``E[X^2]`` of that distribution scaled to mean 1 (``3 / CHI3_MEAN^2 = 3 pi / 8``)
CHI3_SECOND_MOMENT = 3.0 / CHI3_MEAN ** 2


def chi3_coverage(k: float) -> float:
    """``P(err <= k * E[err])`` for a chi-3 distributed error (the norm of an isotropic 3-D Gaussian)."""
    x = k * CHI3_MEAN
    return math.erf(x / math.sqrt(2.0)) - math.sqrt(2.0 / math.pi) * x * math.exp(-0.5 * x * x)


#: ``k -> P(err <= k sigma)`` of the error model
NOMINAL_COVERAGE: Dict[int, float] = {k: chi3_coverage(k) for k in (1, 2, 3)}


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks ``1..N`` of ``x (N,)``; tied values share the mean of their ranks.

    >>> rankdata(np.array([10.0, 30.0, 20.0, 20.0])).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    x = np.asarray(x, np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.size, np.float64)
    # boundaries of runs of equal values in the sorted array
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], x.size]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = 0.5 * (s + 1 + e)  # mean of ranks s+1 .. e
    return ranks


def _finite_pairs(x, y, where: str):
    """``x``, ``y`` as float64 ``(N,)`` with the frames where either is not finite dropped."""
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise EdgePoseError(f"{where}: lengths differ ({x.size} vs {y.size})")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def spearman(x, y) -> Optional[float]:
    """Spearman rank correlation of ``x (N,)`` and ``y (N,)`` (Pearson on average ranks).

    ``None`` when it is undefined: fewer than 3 frames, or one side is constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 45])
    1.0
    """
    x, y = _finite_pairs(x, y, "spearman")
    if x.size < 3:
        return None
    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
    if den == 0.0:
        return None
    return float(np.clip(np.sum(rx * ry) / den, -1.0, 1.0))


#: the share of frames called "worst" when sigma is scored as a flag (:func:`auroc_worst`)
WORST_FRACTION = 0.1


def auroc_worst(sigma, err, fraction: float = WORST_FRACTION) -> Optional[float]:
    """How well ``sigma (N,)`` flags the worst ``fraction`` of frames by ``err (N,)``: the area
    under the ROC curve, the probability that a worst frame's sigma exceeds another frame's
    (ties count half; 0.5 = chance, 1 = every worst frame above every other).

    The worst frames are those whose error is at least the ``1 - fraction`` quantile (at least
    one). ``None`` when it is undefined: fewer than 3 finite frames, or no frame outside the worst.

    >>> auroc_worst([0.1, 0.2, 0.3, 0.9], [1.0, 2.0, 3.0, 9.0], fraction=0.25)
    1.0
    """
    s, e = _finite_pairs(sigma, err, "auroc_worst")
    if s.size < 3:
        return None
    n_pos = max(1, int(round(fraction * s.size)))
    worst = np.zeros(s.size, bool)
    worst[np.argsort(-e, kind="mergesort")[:n_pos]] = True
    n_neg = s.size - n_pos
    if n_neg == 0:
        return None
    r = rankdata(s)  # Mann-Whitney U of the worst frames' sigma ranks
    return float((r[worst].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def fit_sigma_scale(err: np.ndarray, sigma: np.ndarray) -> float:
    """One scale ``c`` so that ``c * sigma`` is the error model's mean error on these frames.

    The maximum-likelihood scale of the error model: if ``err / (c sigma)`` is chi-3 with mean
    1 (the norm of an isotropic 3-D Gaussian, Maxwell distributed), the likelihood is largest at
    ``c = sqrt(mean((err / sigma)^2) / E[X^2])`` with ``E[X^2] = 3 / CHI3_MEAN^2 = 3 pi / 8``.
    It weighs every frame's ratio, the largest ones most, so errors with a heavier tail than
    the model's widen sigma (coverage at 2 sigma holds before coverage at 1 sigma is matched):
    the side to err on for a filter that fuses it. Measured on our test splits it covered
    better than matching the coverage at 1 and 2 sigma on the few validation frames
    (``benchmarks/results/sigma_calibration.md``). Returns 1.0 when fewer than 2 finite frames
    are given (nothing to fit on).
    """
    err = np.asarray(err, np.float64).ravel()
    sigma = np.asarray(sigma, np.float64).ravel()
    if err.shape != sigma.shape:
        raise EdgePoseError(f"fit_sigma_scale: {err.size} errors but {sigma.size} sigmas")
    ok = np.isfinite(err) & np.isfinite(sigma) & (sigma > 0)
    if ok.sum() < 2:
        return 1.0
    r = err[ok] / sigma[ok]
    c = float(np.sqrt(np.mean(r * r) / CHI3_SECOND_MOMENT))
    return c if math.isfinite(c) and c > 0 else 1.0


def calibration(sigma: np.ndarray, pos_err_m: np.ndarray, rot_err_deg: np.ndarray) -> Dict[str, Optional[float]]:
    """How well ``sigma (N, 2)`` ([m, rad]) predicts the actual per-frame errors.

    Keys: ``sigma_spearman_position``, ``sigma_spearman_rotation`` (rank correlation of sigma
    with the error; 1 = sigma orders the frames perfectly), ``within_{1,2,3}sigma_position``,
    ``within_{1,2,3}sigma_rotation`` (fraction of frames whose error is at most k times its
    sigma; nominal: :data:`NOMINAL_COVERAGE`), ``sigma_auroc_worst10_position``,
    ``sigma_auroc_worst10_rotation`` (:func:`auroc_worst`: sigma as a flag for the worst 10 %),
    and the medians ``median_sigma_position_m``, ``median_sigma_rotation_deg``.
    """
    sigma = np.asarray(sigma, np.float64)
    pe = np.asarray(pos_err_m, np.float64)
    re = np.asarray(rot_err_deg, np.float64)
    if sigma.ndim != 2 or sigma.shape[1] != 2 or sigma.shape[0] != pe.size or pe.size != re.size:
        raise EdgePoseError(f"sigma must be (N, 2) with N = {pe.size} frames; got {sigma.shape}")
    s_pos = sigma[:, 0]
    s_rot = np.degrees(sigma[:, 1])
    return {
        "sigma_spearman_position": spearman(s_pos, pe),
        "sigma_spearman_rotation": spearman(s_rot, re),
        "within_1sigma_position": float(np.mean(pe <= s_pos)),
        "within_2sigma_position": float(np.mean(pe <= 2 * s_pos)),
        "within_3sigma_position": float(np.mean(pe <= 3 * s_pos)),
        "within_1sigma_rotation": float(np.mean(re <= s_rot)),
        "within_2sigma_rotation": float(np.mean(re <= 2 * s_rot)),
        "within_3sigma_rotation": float(np.mean(re <= 3 * s_rot)),
        "sigma_auroc_worst10_position": auroc_worst(s_pos, pe),
        "sigma_auroc_worst10_rotation": auroc_worst(s_rot, re),
        "median_sigma_position_m": float(np.median(s_pos)),
        "median_sigma_rotation_deg": float(np.median(s_rot)),
    }
