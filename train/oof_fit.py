"""Honest answers for the pose memory's fit: out-of-fold (OOF) stand-ins for every stored view.

:mod:`edgepose.train.oof` gives each stored training view a ridge answer fitted without its
fold and the memory's answer from the other folds' views. This module turns them into what
:mod:`edgepose.train.memory_fit` needs:

* :func:`oof_folds`: the folds and the ``(M, M)`` mask of views a stored view may not use;
* :func:`stand_in`: the stand-in model's answers (the ridge answer blended with the memory's
  as the model blends its regressor's), their errors (``(N, 2)`` [position units, rad]: the
  memory's :attr:`~edgepose.train.pose_memory.PoseMemory.view_error`) and sigma's signals on
  them (:func:`edgepose.train.pose_memory.sigma_signals` with the ridge answer in place of the
  regressor's, the real head's sigma, the same memory search);
* :func:`fit_weights`: sigma's signal weights per output on the validation frames (the real
  model) and the OOF views (the stand-in), each kind ranked among its own
  (:func:`edgepose.train.sigma_fit.grouped_spearman`).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional as F

from .oof import DEFAULT_FOLDS, block_folds, fold_mask, ridge_fit
from .pose_memory import SIGNAL_WEIGHTS, sigma_signals
from .sigma_fit import combine, fit_signal_weights

#: the signals sigma may combine, in the memory's order
SIGNAL_NAMES = tuple(name for name, _ in SIGNAL_WEIGHTS)
#: the signals without the difficulty head, which only a fit on fold models' errors fills
BASE_SIGNALS = tuple(name for name in SIGNAL_NAMES if name != "difficulty")


def oof_folds(sequence: np.ndarray, by_sequence: bool, k: int = DEFAULT_FOLDS) -> Tuple[np.ndarray, torch.Tensor]:
    """``(fold (M,), exclude (M, M) bool)`` of the stored views (in trajectory order, ``sequence``
    their names): whole sequences per fold when the test split is other sequences
    (``by_sequence``), else views dealt to the folds one by one (a test frame between training
    frames); a view never uses its own fold (itself included)."""
    fold = block_folds(len(sequence), k, sequence=list(sequence), by_sequence=by_sequence)
    return fold, torch.from_numpy(fold_mask(fold, fold))


def ridge_answer(feats: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor, strength: float,
                 query: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ridge map fitted on every stored view (features ``feats``, normalised ``position``,
    unit ``rotation``) answering ``query (N, dim)``: ``(position (N, 3), rotation (N, 4))``."""
    y = torch.cat([position, rotation], dim=1).double().numpy()
    pred = torch.from_numpy(ridge_fit(feats.double().numpy(), y, strength).predict(query.double().cpu().numpy()))
    return pred[:, :3].float(), F.normalize(pred[:, 3:].float(), dim=-1)


@torch.no_grad()
def stand_in(memory, h: torch.Tensor, log_sigma: torch.Tensor, ridge_p: torch.Tensor, ridge_q: torch.Tensor,
             exclude, position: torch.Tensor, rotation: torch.Tensor, blend) -> Dict[str, np.ndarray]:
    """The stand-in model on queries ``h (N, dim)``: ridge answers ``ridge_p (N, 3)``,
    ``ridge_q (N, 4)`` blended with the memory's (``blend`` [position, rotation]; ``exclude``
    the views each query may not use), against the true normalised ``position (N, 3)`` and
    ``rotation (N, 4)``. Returns ``{"errors": (N, 2) [position units, rad], signal name: (N, 2)}``."""
    s = sigma_signals(memory, h, {"position": ridge_p, "rotation": ridge_q, "log_sigma": log_sigma}, exclude)
    p = s["p_reg"] + float(blend[0]) * (s["p_mem"] - s["p_reg"])
    q = F.normalize(s["q_reg"] + float(blend[1]) * (s["q_mem"] - s["q_reg"]), dim=-1)
    cos = (q.double() * F.normalize(rotation.double(), dim=-1)).sum(-1).abs().clamp(max=1.0)
    err = torch.stack([(p.double() - position.double()).norm(dim=-1), 2.0 * torch.acos(cos)], dim=-1)
    out = {name: s[name].double().cpu().numpy() for name in SIGNAL_NAMES}
    out["errors"] = err.cpu().numpy()
    return out


def fit_weights(val: Dict[str, np.ndarray], oof: Dict[str, np.ndarray], defaults: Dict[str, float],
                names: Sequence[str] = BASE_SIGNALS):
    """Sigma's weights per output (:func:`edgepose.train.sigma_fit.fit_signal_weights` over the
    signals ``names``) on the validation frames ``val`` and the OOF views ``oof`` (each
    ``{"errors": (N, 2), signal: (N, 2)}``, the model's and the stand-in's). Returns ``(weights
    {name: [pos, rot]} over ``names``, info)``; an output whose frames cannot rank keeps ``defaults``."""
    chosen = {name: [float(defaults[name])] * 2 for name in names}
    info = {"frames": [0, 0], "spearman": [None, None], "signals": [[], []],
            "frames_by_kind": {"validation": int(len(val["errors"])), "out_of_fold": int(len(oof["errors"]))}}
    groups = np.r_[np.zeros(len(val["errors"]), np.int64), np.ones(len(oof["errors"]), np.int64)]
    for j in (0, 1):
        sig = {n: np.concatenate([val[n][:, j], oof[n][:, j]]) for n in names}
        err = np.concatenate([val["errors"][:, j], oof["errors"][:, j]])
        w, rho = fit_signal_weights(sig, err, names, groups=groups)
        info["frames"][j] = int(len(err))
        if w is not None:
            for n in names:
                chosen[n][j] = float(w.get(n, 0.0))
            info["spearman"][j] = rho
            info["signals"][j] = [n for n in names if w.get(n)]
    info["weights"] = chosen
    return chosen, info


def sigma_of(signals: Dict[str, np.ndarray], weights: Dict[str, list]) -> np.ndarray:
    """``(N, 2)`` sigma with scale 1: ``sqrt(sum_i (w_i s_i)^2)`` per output over the signals
    ``weights`` names (the graph's formula)."""
    return np.stack([combine({n: signals[n][:, j] for n in weights}, {n: weights[n][j] for n in weights})
                     for j in (0, 1)], axis=-1)
