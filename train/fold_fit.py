"""The pose memory and sigma fitted on the fold models' honest answers (issue 24).

:func:`edgepose.train.memory_fit.fit_memory` chooses the memory's settings and sigma's weights
on a ridge stand-in whose backbone saw every view. With the fold models of
:mod:`edgepose.train.fold_train`, :func:`fit_memory_on_folds` chooses them on what each fold
model would have answered on the views it never trained on (:func:`fold_pool`): its regressor,
its own memory of the other folds' views (its features, so the neighbours it finds are the ones
it would find), blended as the final model blends, and sigma's signals from them:

1. ``k`` and the temperature: the fold memories' answers alone, smallest median error;
2. the blend [position, rotation] (:data:`~edgepose.train.memory_fit.BLEND_GRID`): smallest
   median error of the blended answers, so the model leans on its memory where the honest
   answers say the memory is better (on tiny sets: retrieval);
3. the stored views' errors (``view_error``, the neighbour-error signal) are these honest
   errors, and the difficulty head (:mod:`edgepose.train.difficulty`) is fitted on them;
4. sigma's weights over every signal, the difficulty head included (its out-of-fold answers in
   the pool), on the validation frames (the final model) and the fold answers, each ranked among
   its own kind (:func:`edgepose.train.oof_fit.fit_weights`);
5. the scale pools (returned for :func:`edgepose.train.finish.calibrate_sigma`): validation frames
   and fold answers together, the chi-3 maximum likelihood of the same rule as before (fixed
   before any test figure was seen).

Validation frames are stored with their final-model errors scaled to the fold answers' median
(the fold models are trained on less, so their errors are larger; the neighbour-error signal
compares stored errors with each other only).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional as F

from .data import FrameCache
from .difficulty import fit_difficulty
from .fold_train import FoldAnswers
from .memory_fit import (DEFAULT_SIGNAL_WEIGHTS, DEFAULT_SIZE, _blend_errors, best_neighbours, choose_blend,
                         _database, _empty, _excluded, _model_signals, fc_features, fit_memory, store_weights,
                         val_summary)
from .oof_fit import SIGNAL_NAMES, fit_weights, sigma_of, stand_in
from .pose_memory import PoseMemory


def fold_pool(folds: FoldAnswers, rows: np.ndarray, pos: torch.Tensor, rot: torch.Tensor, k: int, t: float,
              blend: Sequence[float], view_error: Optional[np.ndarray] = None,
              difficulty: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Each stored view (fit frames ``rows``, normalised ``pos (M, 3)``, unit ``rot (M, 4)``)
    answered by the fold model that never trained on it, with a memory of the other folds' views
    in that model's features (``k``, ``t``, ``blend``; their errors ``view_error (M, 2)``, zeros
    when not given). Returns ``{"errors": (M, 2) [position units, rad], signal: (M, 2)}``;
    ``difficulty (M, 2)`` replaces the difficulty signal (the head's out-of-fold answers)."""
    fold = folds.fold[rows]
    idx = torch.from_numpy(np.asarray(rows, np.int64))
    ve = torch.zeros(len(rows), 2) if view_error is None else torch.from_numpy(np.asarray(view_error)).float()
    res = {name: np.zeros((len(rows), 2)) for name in SIGNAL_NAMES + ("errors",)}
    for f in np.unique(fold):
        held = torch.from_numpy(fold == f)
        feats = folds.features[f].index_select(0, idx)
        heads = {n: v.index_select(0, idx) for n, v in folds.heads[f].items()}
        memory = PoseMemory(0, feats.shape[1])
        memory.store(feats[~held], pos[~held], rot[~held], k, ve[~held])
        memory.temperature.fill_(float(t))
        got = stand_in(memory, feats[held], heads["log_sigma"][held], heads["position"][held],
                       heads["rotation"][held], None, pos[held], rot[held], blend)
        for name in res:
            res[name][held.numpy()] = got[name]
    if difficulty is not None:
        res["difficulty"] = np.asarray(difficulty, np.float64)
    return res


def _median_score(err: np.ndarray) -> float:
    """Median position error plus median rotation error (position units + rad)."""
    return float(np.median(err[:, 0]) + np.median(err[:, 1]))


def choose_settings(folds: FoldAnswers, rows: np.ndarray, pos: torch.Tensor, rot: torch.Tensor
                    ) -> Tuple[int, float, Tuple[float, float], Dict[str, float]]:
    """``(k, temperature, blend, scores)`` on :func:`fold_pool`: steps 1-2 of the module doc."""
    fold = folds.fold[rows]
    usable = min(int((fold != f).sum()) for f in np.unique(fold))
    k, t, score = best_neighbours(lambda k, t: _median_score(fold_pool(folds, rows, pos, rot, k, t, (1.0, 1.0))["errors"]),
                                  usable)
    (a, b), grid = choose_blend(lambda bl: fold_pool(folds, rows, pos, rot, k, t, bl)["errors"])
    scores = {"neighbours": score, "regressor_median": grid[0.0], "memory_median": grid[1.0],
              "blend": {str(v): sc for v, sc in grid.items()}}
    return k, t, (float(a), float(b)), scores


@torch.no_grad()
def fit_memory_on_folds(model, fit: FrameCache, val: Optional[FrameCache], device: torch.device, folds: FoldAnswers,
                        size: int = DEFAULT_SIZE, same_sequence_out: bool = False):
    """:func:`~edgepose.train.memory_fit.fit_memory` with every choice on the fold models'
    honest answers (module doc); the same ``(info, pools)``. Without validation frames or with
    ``size`` 0 it is ``fit_memory`` itself (the memory stays off)."""
    if size <= 0 or val is None or len(val) < 2:
        return fit_memory(model, fit, val, device, size=size, same_sequence_out=same_sequence_out)
    memory = model.memory
    _empty(model)
    model.sigma_scale.fill_(1.0)
    feats, pos, rot, rows = _database(model, [fit], device, size)
    feats = feats.to(memory.features.device)
    fit_seq = np.asarray(fit.sequence if fit.sequence is not None else [""] * len(fit), dtype=object)[rows]
    val_seq = val.sequence if val.sequence is not None else [""] * len(val)
    k, t, blend, scores = choose_settings(folds, rows, pos, rot)
    view_err = fold_pool(folds, rows, pos, rot, k, t, blend)["errors"]
    coef, bias, diff_oof, diff_info = fit_difficulty(F.normalize(feats.double(), dim=-1).cpu().numpy(), view_err,
                                                     folds.fold[rows])
    memory.store(feats, pos, rot, k, torch.from_numpy(view_err).float())
    memory.temperature.fill_(t)
    memory.blend.copy_(torch.tensor(blend, dtype=torch.float32))
    memory.difficulty_coef.copy_(torch.from_numpy(coef).float())
    memory.difficulty_bias.copy_(torch.from_numpy(bias).float())
    pool = fold_pool(folds, rows, pos, rot, k, t, blend, view_err, diff_oof)
    h = fc_features(model, val.images, device).to(memory.features.device)
    out = model.heads(h)
    exclude = _excluded(val_seq, fit_seq, same_sequence_out).to(h.device)
    weights, sigma_info = fit_weights(_model_signals(model, h, out, exclude, val), pool, DEFAULT_SIGNAL_WEIGHTS,
                                      names=SIGNAL_NAMES)
    store_weights(memory, weights)
    reg = _blend_errors(model, h, out, exclude, val, (0.0, 0.0))
    mem = _blend_errors(model, h, out, exclude, val, (1.0, 1.0))
    e_p, e_q, sig = _blend_errors(model, h, out, exclude, val, blend)  # last: leaves the chosen blend
    scale_m = float(model.position_scale.max())
    pool_sigma = sigma_of(pool, weights)
    pools = []
    for j, e in enumerate((e_p, e_q)):
        to_world = scale_m if j == 0 else 1.0
        pools.append((np.concatenate([e, pool["errors"][:, j] * to_world]),
                      np.concatenate([sig[:, j], pool_sigma[:, j] * to_world])))
    val_err = np.stack([e_p / scale_m, e_q], axis=-1)
    val_err = val_err * (np.median(view_err, axis=0) / np.maximum(np.median(val_err, axis=0), 1e-12))
    view_error = np.zeros((len(fit), 2))
    view_error[:] = np.median(view_err, axis=0)  # views left out of a capped memory
    view_error[rows] = view_err
    model.config.update(memory_size=memory.size, memory_k=memory.k)
    info = {"size": memory.size, "k": int(k), "temperature": float(t), "blend": [blend[0], blend[1]],
            "blend_scores": scores["blend"], "blend_chosen_on": "the fold models' answers on views they never saw",
            "disagreement": weights["disagreement"], "sigma": sigma_info, "out_of_fold_score": scores["neighbours"],
            "validation_excludes_own_sequence": bool(same_sequence_out),
            "folds": {"models": int(folds.fold.max()) + 1, "steps": int(folds.steps), "seconds": float(folds.seconds),
                      "by_sequence": bool(same_sequence_out),
                      "regressor_median_position_m": scores["regressor_median"][0] * scale_m,
                      "regressor_median_rotation_deg": float(np.degrees(scores["regressor_median"][1])),
                      "memory_median_position_m": scores["memory_median"][0] * scale_m,
                      "memory_median_rotation_deg": float(np.degrees(scores["memory_median"][1])),
                      "median_position_m": float(np.median(view_err[:, 0])) * scale_m,
                      "median_rotation_deg": float(np.degrees(np.median(view_err[:, 1]))),
                      "difficulty_strength": diff_info["strength"],
                      "difficulty_oof_spearman": diff_info["oof_spearman"]},
            "view_error": {"fit": view_error, "val": val_err},
            "method": "k, temperature, blend: the fold models' answers on the views they never trained on, each "
                      "with a memory of the other folds' views; sigma's weights: validation frames and those "
                      "answers (each ranked among its own kind); stored views carry those honest errors; the "
                      "difficulty head is fitted on them",
            "val": val_summary(reg, mem, (e_p, e_q))}
    return info, pools
