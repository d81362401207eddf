"""Fill a finished model's pose memory and choose how it blends with the regressor.

:mod:`edgepose.train.pose_memory` describes what the memory computes. After training,
:func:`fit_memory`

1. stores the fit frames' FC features and poses, and splits them into out-of-fold (OOF) folds
   (:func:`edgepose.train.oof_fit.oof_folds`: whole sequences when the test split is other
   sequences, :func:`sequence_disjoint`, 7-Scenes; else views dealt one by one);
2. chooses ``k`` and the softmax temperature on the memory's OOF answers (each fit frame
   answered by the other folds' views; when the test split is other sequences, never from its
   own sequence: its sequence neighbours are near-copies that test frames never have);
3. gives every stored view an honest answer without retraining (:mod:`edgepose.train.oof`: a
   ridge head fitted on the other folds' FC features, blended with the memory's OOF answer)
   and stores its error with the view (``view_error``: sigma's neighbour-error signal);
4. chooses the blend weights (position and rotation separately, :data:`BLEND_GRID`, median
   error) on the validation frames, or on the OOF answers when validation has fewer than
   :data:`MIN_RANK_FRAMES` frames; when the test split is other sequences the memory's weight is
   at least :data:`SEQUENCE_SPLIT_MIN_BLEND` (see :func:`_choose_blend`);
5. chooses how sigma combines its signals (head, regressor/memory disagreement, neighbours'
   spread, feature distance, neighbour error; :mod:`edgepose.train.sigma_fit`) per output on
   the validation frames and the OOF answers together, each kind ranked among its own; with
   fewer than :data:`MIN_RANK_FRAMES` validation frames the defaults stay
   (:data:`DEFAULT_SIGNAL_WEIGHTS`).

Sigma is then calibrated on the same honest answers (:func:`edgepose.train.finish.calibrate_sigma`,
with the memory of the fit frames only, so no frame finds itself), and
:func:`extend_memory` adds the validation frames to the memory: at test time the database is
every training frame, as for the retrieval baseline.

Without validation frames there is nothing honest to choose a blend on: the memory stays empty.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from edgepose.frame_choice import spread_indices

from .data import FrameCache
from .evaluate import eval_batches
from .geometry_torch import rotation_angle
from .oof import ridge_pose_oof
from .oof_fit import SIGNAL_NAMES, fit_weights, oof_folds, ridge_answer, sigma_of, stand_in
from .pose_memory import SIGNAL_WEIGHTS, UNIFORM_TEMPERATURE, blend_with_memory, neighbour_pose, sigma_signals
from .sigma_fit import MIN_RANK_FRAMES

#: candidates, chosen on the fit frames' out-of-fold answers
K_GRID = (1, 2, 3, 5, 8)
#: (0.01 was dropped: a softmax that sharp turns the backbone's FP32 differences between PyTorch
#: and ONNX Runtime, ~1e-6 in cosine, into pose differences above the export's parity bound
#: (0.0014 deg with k 2 on the e2e model), and is nearly k = 1, which the grid has exactly)
TEMPERATURE_GRID = (0.03, UNIFORM_TEMPERATURE)
#: weight of the memory's estimate, chosen on the validation frames (0: regressor only)
BLEND_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: the memory's least weight when the test split is other sequences: validation frames and the
#: out-of-fold stand-in both flatter the regressor there (benchmarks/results/sigma_blend.md)
SEQUENCE_SPLIT_MIN_BLEND = 0.5
#: sigma's signal weights before (or without) a fit on enough honest frames
DEFAULT_SIGNAL_WEIGHTS = {"head": 1.0, "disagreement": 1.0, "spread": 0.0, "distance": 0.0, "neighbour_error": 0.0,
                          "difficulty": 0.0}
#: the default cap on stored views (``--memory-size``); more training frames are subsampled evenly
DEFAULT_SIZE = 4096


def fc_features(model, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """The FC features ``(N, hidden)`` of ``images (N, H, W, 3)`` uint8, in eval mode."""
    return torch.cat(eval_batches(model, images, device,
                                  lambda x: model.forward_features(model.normalize_input(x)).float().cpu(), batch_size))


def _database(model, caches: Sequence[Optional[FrameCache]], device, cap: int):
    """Features, poses (the caches' own normalised positions and canonical rotations) and the
    kept rows of ``caches``, at most ``cap`` rows spread evenly."""
    caches = [c for c in caches if c is not None and len(c)]
    feats = torch.cat([fc_features(model, c.images, device) for c in caches])
    pos = torch.cat([c.position for c in caches])
    rot = torch.cat([c.rotation for c in caches])
    rows = torch.from_numpy(spread_indices(len(feats), cap))
    return feats[rows], pos[rows], rot[rows], rows.numpy()


def sequence_disjoint(fit: FrameCache, test: Optional[FrameCache]) -> bool:
    """Whether the test frames come from sequences no fit frame belongs to (7-Scenes' split by
    sequence): then a validation frame, a neighbour of fit frames in its own sequence, must not
    be answered from that sequence, or validation flatters the memory and sigma."""
    if test is None or fit.sequence is None or test.sequence is None:
        return False
    test_seqs = {s for s in test.sequence if s}
    return bool(test_seqs) and not test_seqs & {s for s in fit.sequence}


def _excluded(query_seq, db_seq, same_sequence: bool, diagonal: bool = False) -> torch.Tensor:
    """``(Nq, M)`` bool: the views each query may not use."""
    nq, m = len(query_seq), len(db_seq)
    mask = torch.zeros(nq, m, dtype=torch.bool)
    if same_sequence:
        q = np.asarray(query_seq, dtype=object)[:, None]
        d = np.asarray(db_seq, dtype=object)[None, :]
        mask |= torch.from_numpy((q == d) & (q != ""))
    if diagonal:
        mask |= torch.eye(nq, m, dtype=torch.bool)
    return mask


def _choose_neighbours(feats, pos, rot, exclude):
    """``(k, temperature, score)`` of the best leave-one-out answers over the stored views."""
    f = torch.nn.functional.normalize(feats, dim=-1)
    sim = (f @ f.t()).masked_fill(exclude, -3.0)  # a view never answers itself (cosine >= -1)
    usable = int((~exclude).sum(1).min()) if len(f) else 0

    def score(k, t):
        p, q, _ = neighbour_pose(sim, pos, rot, k, torch.tensor([t]))
        return float((p - pos).norm(dim=-1).median() + rotation_angle(q, rot).median())

    return best_neighbours(score, usable)


def best_neighbours(score, usable: int):
    """``(k, temperature, score)`` from :data:`K_GRID` (at most ``usable``) x :data:`TEMPERATURE_GRID`
    with the smallest ``score(k, t)``."""
    best = None
    for k in K_GRID:
        if k > usable:
            break
        for t in TEMPERATURE_GRID:
            if k == 1 and t != TEMPERATURE_GRID[0]:
                continue  # one neighbour: the temperature does not matter
            value = score(k, t)
            if best is None or value < best[2]:
                best = (k, t, value)
    return best if best is not None else (1, TEMPERATURE_GRID[0], float("nan"))


def _empty(model) -> None:
    memory = model.memory
    memory.store(torch.zeros(0, memory.features.shape[1]), torch.zeros(0, 3), torch.zeros(0, 4), 1)
    for name, buf in SIGNAL_WEIGHTS:
        getattr(memory, buf).fill_(DEFAULT_SIGNAL_WEIGHTS[name])
    memory.difficulty_coef.zero_()
    memory.difficulty_bias.zero_()


def store_weights(memory, weights: Dict[str, list]) -> None:
    """Sigma's chosen weights into the memory's buffers; ``weights`` then holds what the model
    holds (FP32). Signals ``weights`` does not name keep their buffers."""
    for name, buf in SIGNAL_WEIGHTS:
        if name in weights:
            getattr(memory, buf).copy_(torch.tensor(weights[name], dtype=torch.float32))
            weights[name] = getattr(memory, buf).tolist()


def _blend_errors(model, h, out, exclude, val, blend):
    """``(position error m (N,), rotation error rad (N,), sigma (N, 2))`` of the model on the
    validation frames (FC features ``h``, heads' ``out``) with the memory's blend set to ``blend``."""
    memory = model.memory
    memory.blend.copy_(torch.tensor(blend, dtype=torch.float32))
    p, q, sig = model.to_world(blend_with_memory(memory, h, out, exclude))
    e_p = (p.double().cpu() - torch.from_numpy(val.position_m)).norm(dim=-1).numpy()
    e_q = rotation_angle(q.double().cpu(), torch.from_numpy(val.rotation_q)).numpy()
    return e_p, e_q, sig.double().cpu().numpy()


def choose_blend(errors_at: Callable[[Tuple[float, float]], np.ndarray]
                 ) -> Tuple[Tuple[float, float], Dict[float, List[float]]]:
    """Per output, the blend of :data:`BLEND_GRID` with the smallest median error:
    ``errors_at((v, v)) -> errors (N, 2)`` [position, rotation] scores both outputs at once
    (position and rotation do not mix). Returns ``((position, rotation), {v: [median position
    error, median rotation error]})``."""
    scores = {}
    for v in BLEND_GRID:
        e = np.asarray(errors_at((v, v)))
        scores[v] = [float(np.median(e[:, 0])), float(np.median(e[:, 1]))]
    a, b = (min(BLEND_GRID, key=lambda v: scores[v][j]) for j in (0, 1))
    return (a, b), scores


def _choose_blend(model, h, out, exclude, val, oof_answers, same_sequence_out: bool):
    """Blend weights [position, rotation] from :data:`BLEND_GRID` with the smallest median error:
    on the validation frames (the model itself), or, with fewer than :data:`MIN_RANK_FRAMES` of
    them, on the stored views' OOF stand-in answers (``oof_answers(blend) -> errors (M, 2)``).

    ``same_sequence_out`` (the test split is other sequences): the choice is a lower bound,
    raised to :data:`SEQUENCE_SPLIT_MIN_BLEND`. The validation block sits in a training
    sequence whose neighbouring frames the regressor trained on, while the memory may not use
    that sequence at all; the OOF stand-in is a ridge head on features fine-tuned on every
    view. Both lower the memory's weight (in position, the test optimum lay beyond the choice,
    toward the memory, on 7 of 9 synthetic runs choosing on validation, at it on an eighth, and
    on 5 of 6 tiny ones, at it on the sixth; each floor was checked on fresh scenes:
    benchmarks/results/sigma_blend.md).

    Returns ``((position, rotation), what it was chosen on, {blend: [median position error,
    median rotation error]})``: the scores the choice was made on (validation: m and rad;
    out-of-fold: normalised position units and rad)."""
    on_val = len(val) >= MIN_RANK_FRAMES
    if on_val:
        (a, b), scores = choose_blend(lambda bl: np.stack(_blend_errors(model, h, out, exclude, val, bl)[:2], axis=1))
    else:
        (a, b), scores = choose_blend(oof_answers)
    on = "validation frames" if on_val else ("out-of-fold answers of the stored views (fewer validation frames "
                                             "than %d)" % MIN_RANK_FRAMES)
    if same_sequence_out:
        floor = SEQUENCE_SPLIT_MIN_BLEND
        return (max(a, floor), max(b, floor)), "%s, at least %g (the test split is other sequences)" % (on, floor), scores
    return (a, b), on, scores


def _model_signals(model, h, out, exclude, val) -> Dict[str, np.ndarray]:
    """Sigma's signals (``(N, 2)`` each) and ``errors (N, 2)`` [position units, rad] of the model
    on the validation frames, with the memory as it is."""
    sig = sigma_signals(model.memory, h, out, exclude)
    e_p, e_q, _ = _blend_errors(model, h, out, exclude, val, model.memory.blend.tolist())
    res = {name: sig[name].double().cpu().numpy() for name in SIGNAL_NAMES}
    res["errors"] = np.stack([e_p / float(model.position_scale.max()), e_q], axis=-1)
    return res


@torch.no_grad()
def fit_memory(model, fit: FrameCache, val: Optional[FrameCache], device: torch.device,
               size: int = DEFAULT_SIZE, same_sequence_out: bool = False):
    """Store the fit frames in ``model.memory`` and choose its settings (see the module doc).

    ``same_sequence_out``: a validation (and out-of-fold) frame may not use views of its own
    sequence (:func:`sequence_disjoint`: when the test split is other sequences).
    Returns ``(info, pools)``: what was chosen with the validation scores behind it
    (metres/degrees; ``info["view_error"]`` the honest errors of the fit and validation frames
    for :func:`extend_memory`), and per output ``[(position error m, sigma m), (rotation error
    rad, sigma rad)]`` with ``sigma_scale`` 1 on honest frames, for the sigma calibration
    (``None`` when the memory stays empty: ``size`` 0 or no validation frames).
    """
    memory = model.memory
    _empty(model)
    model.sigma_scale.fill_(1.0)
    if size <= 0:
        return {"size": 0, "method": "off (--memory-size 0)"}, None
    if val is None or len(val) < 2:
        return {"size": 0, "method": "off: no validation frames to choose the blend on (pass --val-every K)"}, None
    feats, pos, rot, rows = _database(model, [fit], device, size)
    feats = feats.to(memory.features.device)
    fit_seq = np.asarray(fit.sequence if fit.sequence is not None else [""] * len(fit), dtype=object)[rows]
    val_seq = val.sequence if val.sequence is not None else [""] * len(val)
    fold, exclude_oof = oof_folds(fit_seq, by_sequence=same_sequence_out)
    exclude_oof = (exclude_oof | _excluded(fit_seq, fit_seq, same_sequence_out)).to(feats.device)
    k, t, loo = _choose_neighbours(feats, pos, rot, exclude_oof)
    memory.store(feats, pos, rot, k)
    memory.temperature.fill_(t)
    h = fc_features(model, val.images, device).to(memory.features.device)
    out = model.heads(h)  # linear heads: the same in train and eval mode
    exclude = _excluded(val_seq, fit_seq, same_sequence_out).to(h.device)
    # out-of-fold stand-ins for every stored view (edgepose.train.oof) and for the validation frames
    ridge = ridge_pose_oof(feats.double().cpu().numpy(), pos.double().numpy(), rot.double().numpy(), fold)
    rp, rq = torch.from_numpy(ridge["position"]).float(), torch.from_numpy(ridge["rotation"]).float()
    vp, vq = ridge_answer(feats.cpu(), pos, rot, ridge["strength"], h)
    log_sigma_fit = model.heads(feats)["log_sigma"]
    val_pos, val_rot = val.position.to(h.device), val.rotation.to(h.device)

    def oof(blend):
        return stand_in(memory, feats, log_sigma_fit, rp, rq, exclude_oof, pos, rot, blend)

    (a, b), blend_on, blend_scores = _choose_blend(model, h, out, exclude, val, lambda bl: oof(bl)["errors"],
                                                   same_sequence_out)
    memory.blend.copy_(torch.tensor([a, b], dtype=torch.float32))
    fit_answers = oof((a, b))
    memory.view_error = torch.from_numpy(fit_answers["errors"]).float().to(feats.device)
    val_view_error = stand_in(memory, h, out["log_sigma"], vp, vq, exclude, val_pos, val_rot, (a, b))["errors"]
    fit_answers = oof((a, b))  # the signals again, now that the stored views carry their errors
    # under MIN_RANK_FRAMES validation frames the pool would be nearly all stand-in answers, whose
    # errors are not the model's: the defaults ranked tiny sets' test errors better (sigma_blend.md)
    pool = fit_answers if len(val) >= MIN_RANK_FRAMES else {key: v[:0] for key, v in fit_answers.items()}
    weights, sigma_info = fit_weights(_model_signals(model, h, out, exclude, val), pool, DEFAULT_SIGNAL_WEIGHTS)
    store_weights(memory, weights)
    reg = _blend_errors(model, h, out, exclude, val, (0.0, 0.0))
    mem = _blend_errors(model, h, out, exclude, val, (1.0, 1.0))
    e_p, e_q, sig = _blend_errors(model, h, out, exclude, val, (a, b))  # last: leaves the chosen blend
    pools = []
    scale_m = float(model.position_scale.max())
    oof_sigma = sigma_of(fit_answers, weights)
    for j, (e, blend_j) in enumerate(((e_p, a), (e_q, b))):
        if blend_j >= 1.0:  # the memory answers alone: its out-of-fold answers are the model's own
            to_world = scale_m if j == 0 else 1.0
            pools.append((np.concatenate([e, fit_answers["errors"][:, j] * to_world]),
                          np.concatenate([sig[:, j], oof_sigma[:, j] * to_world])))
        else:
            pools.append((e, sig[:, j]))
    view_error = np.zeros((len(fit), 2))
    view_error[:] = np.median(fit_answers["errors"], axis=0)  # views left out of a capped memory
    view_error[rows] = fit_answers["errors"]
    model.config.update(memory_size=memory.size, memory_k=memory.k)
    info = {"size": memory.size, "k": int(k), "temperature": float(t), "blend": [float(a), float(b)],
            "blend_scores": {str(v): sc for v, sc in blend_scores.items()}, "blend_chosen_on": blend_on,
            "disagreement": weights["disagreement"], "sigma": sigma_info, "out_of_fold_score": loo,
            "validation_excludes_own_sequence": bool(same_sequence_out),
            "out_of_fold": {"folds": int(fold.max()) + 1, "by_sequence": bool(same_sequence_out),
                            "ridge_strength": ridge["strength"],
                            "ridge_median_position_m": float(np.median(ridge["errors"][:, 0])) * scale_m,
                            "ridge_median_rotation_deg": float(np.degrees(np.median(ridge["errors"][:, 1]))),
                            "median_position_m": float(np.median(fit_answers["errors"][:, 0])) * scale_m,
                            "median_rotation_deg": float(np.degrees(np.median(fit_answers["errors"][:, 1])))},
            "view_error": {"fit": view_error, "val": val_view_error},
            "method": "k, temperature: out-of-fold answers of the fit frames (each from the other folds' views); "
                      "blend: " + blend_on + "; sigma's weights: validation frames and out-of-fold answers "
                      "(each ranked among its own kind); stored views carry their out-of-fold errors"
                      + ("; no frame is answered from its own sequence (the test split is other sequences)"
                         if same_sequence_out else ""),
            "val": val_summary(reg, mem, (e_p, e_q))}
    return info, pools


def val_summary(*answers) -> Dict[str, float]:
    """Median validation errors (m, deg) of the regressor, the memory and the blend, each given
    as ``(position error m (N,), rotation error rad (N,), ...)``."""
    out = {}
    for name, (e_p, e_q) in zip(("regressor", "memory", "blend"), (a[:2] for a in answers)):
        out[f"{name}_median_position_m"] = float(np.median(e_p))
        out[f"{name}_median_rotation_deg"] = float(np.degrees(np.median(e_q)))
    return out


@torch.no_grad()
def extend_memory(model, caches: List[Optional[FrameCache]], device: torch.device, size: int = DEFAULT_SIZE,
                  view_error: Optional[Sequence[np.ndarray]] = None) -> int:
    """Refill a fitted memory with every frame of ``caches`` (fit + validation); keeps its
    settings. ``view_error``: per cache ``(N_i, 2)`` the frames' honest errors (``fit_memory``'s
    ``info["view_error"]``); without it the stored errors stay when the number of views does
    not change (a refill with new features), else they are zeros. Returns the number of stored
    views (0: the memory was off and stays off)."""
    memory = model.memory
    if memory.size == 0:
        return 0
    feats, pos, rot, rows = _database(model, caches, device, size)
    if view_error is not None:
        err = torch.from_numpy(np.concatenate([np.asarray(e, np.float64) for c, e in zip(caches, view_error)
                                               if c is not None and len(c)])[rows]).float()
    elif memory.view_error.shape[0] == len(rows):
        err = memory.view_error.detach().cpu().clone()
    else:
        err = None
    memory.store(feats, pos, rot, memory.k, err)
    model.config.update(memory_size=memory.size, memory_k=memory.k)
    return memory.size


def extend_fitted_memory(model, info: Dict[str, object], fit: FrameCache, val: Optional[FrameCache],
                         device: torch.device, size: int = DEFAULT_SIZE) -> int:
    """:func:`extend_memory` with the fit and validation frames after :func:`fit_memory`, whose
    ``info`` gives the frames' honest errors (removed from ``info``: arrays, not metrics)."""
    view_error = info.pop("view_error", None)
    return extend_memory(model, [fit, val], device, size=size,
                         view_error=None if view_error is None else [view_error["fit"], view_error["val"]])
