"""Fill a finished model's pose memory and choose how it blends with the regressor.

:mod:`edgepose.train.pose_memory` describes what the memory computes. After training,
:func:`fit_memory`

1. stores the fit frames' FC features and poses;
2. chooses ``k`` and the softmax temperature by leave-one-out over those frames (each frame
   answered by the others: honest for retrieval, and many more frames than validation has);
   when the test split is other sequences (:func:`sequence_disjoint`, 7-Scenes), no frame is
   answered from its own sequence, in 2-4: its sequence neighbours are near-copies that test
   frames never have, and they made validation choose the memory where it hurt on test;
3. chooses the blend weights (position and rotation separately) on the validation frames, from
   the regressor's and the memory's answers there (median error, :data:`BLEND_GRID`);
4. chooses how sigma combines its signals (head, regressor/memory disagreement, neighbours'
   spread, feature distance; :mod:`edgepose.train.sigma_fit`) per output on honest frames: the
   validation frames, and, for an output the memory answers alone, every fit frame answered by
   the others (many more frames than validation has; only the memory's signals, since the
   regressor fitted those frames).

Sigma is then calibrated on the same honest answers (:func:`edgepose.train.finish.calibrate_sigma`,
with the memory of the fit frames only, so no frame finds itself), and
:func:`extend_memory` adds the validation frames to the memory: at test time the database is
every training frame, as for the retrieval baseline.

Without validation frames there is nothing honest to choose a blend on: the memory stays empty.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from edgepose.frame_choice import spread_indices

from .data import FrameCache
from .evaluate import eval_batches
from .geometry_torch import rotation_angle
from .pose_memory import SIGNAL_WEIGHTS, UNIFORM_TEMPERATURE, blend_with_memory, neighbour_pose, sigma_signals
from .sigma_fit import fit_signal_weights

#: candidates, chosen by leave-one-out over the fit frames
K_GRID = (1, 2, 3, 5, 8)
#: (0.01 was dropped: a softmax that sharp turns the backbone's FP32 differences between PyTorch
#: and ONNX Runtime, ~1e-6 in cosine, into pose differences above the export's parity bound
#: (0.0014 deg with k 2 on the e2e model), and is nearly k = 1, which the grid has exactly)
TEMPERATURE_GRID = (0.03, UNIFORM_TEMPERATURE)
#: weight of the memory's estimate, chosen on the validation frames (0: regressor only)
BLEND_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: sigma's signal weights before (or without) a fit on enough honest frames
DEFAULT_SIGNAL_WEIGHTS = {"head": 1.0, "disagreement": 1.0, "spread": 0.0, "distance": 0.0}
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
    best = None
    for k in K_GRID:
        if k > usable:
            break
        for t in TEMPERATURE_GRID:
            if k == 1 and t != TEMPERATURE_GRID[0]:
                continue  # one neighbour: the temperature does not matter
            p, q, _ = neighbour_pose(sim, pos, rot, k, torch.tensor([t]))
            score = float((p - pos).norm(dim=-1).median() + rotation_angle(q, rot).median())
            if best is None or score < best[2]:
                best = (k, t, score)
    return best if best is not None else (1, TEMPERATURE_GRID[0], float("nan"))


def _empty(model) -> None:
    memory = model.memory
    memory.store(torch.zeros(0, memory.features.shape[1]), torch.zeros(0, 3), torch.zeros(0, 4), 1)
    for name, buf in SIGNAL_WEIGHTS:
        getattr(memory, buf).fill_(DEFAULT_SIGNAL_WEIGHTS[name])


def _honest(model, h, out, exclude, position_m, rotation_q):
    """``(signals {name: (N, 2)}, position error m (N,), rotation error rad (N,), sigma (N, 2))``
    of the model with its memory's current settings on frames with FC features ``h``, heads'
    ``out`` and views they may not use ``exclude``; sigma with ``sigma_scale`` 1."""
    sig = sigma_signals(model.memory, h, out, exclude)
    p, q, sigma = model.to_world(blend_with_memory(model.memory, h, out, exclude))
    e_p = (p.double().cpu() - torch.from_numpy(position_m)).norm(dim=-1).numpy()
    e_q = rotation_angle(q.double().cpu(), torch.from_numpy(rotation_q)).numpy()
    return ({name: sig[name].double().cpu().numpy() for name, _ in SIGNAL_WEIGHTS}, e_p, e_q,
            sigma.double().cpu().numpy())


def _fit_sigma(model, blend, feats, fit, rows, h_val, out_val, exclude_val, val, exclude_loo):
    """Choose sigma's signal weights per output on honest frames (:mod:`edgepose.train.sigma_fit`)
    and leave them and ``blend`` in the memory. Honest: the validation frames (memory of the fit
    frames); for an output the memory answers alone (blend 1), also every stored fit frame
    answered by the others, where only the memory's signals are honest (the regressor fitted
    those frames). Returns ``(info, pools)``: what was chosen, and per output the honest
    ``(error, sigma with scale 1)`` for the scale fit."""
    memory = model.memory
    memory.blend.copy_(torch.tensor(blend, dtype=torch.float32))
    out_fit = model.heads(feats)
    pos_m, rot_q = fit.position_m[rows], fit.rotation_q[rows]
    names_all = tuple(name for name, _ in SIGNAL_WEIGHTS)
    chosen = {name: [DEFAULT_SIGNAL_WEIGHTS[name]] * 2 for name in names_all}
    info = {"frames": [0, 0], "spearman": [None, None], "signals": [[], []]}
    v = _honest(model, h_val, out_val, exclude_val, val.position_m, val.rotation_q)
    loo = _honest(model, feats, out_fit, exclude_loo, pos_m, rot_q)
    for j in (0, 1):
        if blend[j] >= 1.0:
            names = ("spread", "distance")
            sig = {n: np.concatenate([v[0][n][:, j], loo[0][n][:, j]]) for n in names}
            err = np.concatenate([v[1 + j], loo[1 + j]])
        else:
            names = names_all
            sig = {n: v[0][n][:, j] for n in names}
            err = v[1 + j]
        w, rho = fit_signal_weights(sig, err, names)
        info["frames"][j] = int(len(err))
        if w is not None:
            for n in names_all:
                chosen[n][j] = float(w.get(n, 0.0))
            info["spearman"][j] = rho
            info["signals"][j] = [n for n in names if w.get(n)]
    for name, buf in SIGNAL_WEIGHTS:
        getattr(memory, buf).copy_(torch.tensor(chosen[name], dtype=torch.float32))
    info["weights"] = chosen
    v = _honest(model, h_val, out_val, exclude_val, val.position_m, val.rotation_q)
    loo = _honest(model, feats, out_fit, exclude_loo, pos_m, rot_q)
    pools = []
    for j in (0, 1):
        if blend[j] >= 1.0:
            pools.append((np.concatenate([v[1 + j], loo[1 + j]]), np.concatenate([v[3][:, j], loo[3][:, j]])))
        else:
            pools.append((v[1 + j], v[3][:, j]))
    return info, pools


@torch.no_grad()
def fit_memory(model, fit: FrameCache, val: Optional[FrameCache], device: torch.device,
               size: int = DEFAULT_SIZE, same_sequence_out: bool = False):
    """Store the fit frames in ``model.memory`` and choose its settings (see the module doc).

    ``same_sequence_out``: a validation (and leave-one-out) frame may not use views of its own
    sequence (:func:`sequence_disjoint`: when the test split is other sequences).
    Returns ``(info, pools)``: what was chosen with the validation scores behind it
    (metres/degrees), and per output ``[(position error m, sigma m), (rotation error rad,
    sigma rad)]`` of the final model with ``sigma_scale`` 1 on its honest frames
    (:func:`_fit_sigma`), for the sigma calibration (``None`` when the memory stays empty:
    ``size`` 0 or no validation frames).
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
    k, t, loo = _choose_neighbours(feats, pos, rot, _excluded(fit_seq, fit_seq, same_sequence_out, diagonal=True))
    memory.store(feats, pos, rot, k)
    memory.temperature.fill_(t)
    h = fc_features(model, val.images, device).to(memory.features.device)
    out = model.heads(h)  # linear heads: the same in train and eval mode
    exclude = _excluded(val_seq, fit_seq, same_sequence_out).to(h.device)

    def answer(a, b, w=(0.0, 0.0)):
        memory.blend.copy_(torch.tensor([a, b], dtype=torch.float32))
        memory.disagreement.copy_(torch.tensor(w, dtype=torch.float32))
        p, q, sig = model.to_world(blend_with_memory(memory, h, out, exclude))
        e_p = (p.double().cpu() - torch.from_numpy(val.position_m)).norm(dim=-1).numpy()
        e_q = rotation_angle(q.double().cpu(), torch.from_numpy(val.rotation_q)).numpy()
        return e_p, e_q, sig.double().cpu().numpy()

    a = min(BLEND_GRID, key=lambda v: float(np.median(answer(v, 0.0)[0])))
    b = min(BLEND_GRID, key=lambda v: float(np.median(answer(0.0, v)[1])))
    sigma_info, pools = _fit_sigma(model, (a, b), feats, fit, rows, h, out, exclude, val,
                                   _excluded(fit_seq, fit_seq, same_sequence_out, diagonal=True))
    reg, mem = answer(0.0, 0.0), answer(1.0, 1.0)
    e_p, e_q, sig = answer(a, b, sigma_info["weights"]["disagreement"])  # last: it leaves the chosen blend in the memory
    model.config.update(memory_size=memory.size, memory_k=memory.k)
    info = {"size": memory.size, "k": int(k), "temperature": float(t), "blend": [float(a), float(b)],
            "disagreement": sigma_info["weights"]["disagreement"], "sigma": sigma_info, "leave_one_out_score": loo,
            "validation_excludes_own_sequence": bool(same_sequence_out),
            "method": "k, temperature: leave-one-out over the fit frames; blend: validation frames; sigma's weights: "
                      "honest frames (validation; for an output the memory answers alone, also each fit frame "
                      "answered by the others)"
                      + ("; no frame is answered from its own sequence (the test split is other sequences)"
                         if same_sequence_out else ""),
            "val": {"regressor_median_position_m": float(np.median(reg[0])),
                    "regressor_median_rotation_deg": float(np.degrees(np.median(reg[1]))),
                    "memory_median_position_m": float(np.median(mem[0])),
                    "memory_median_rotation_deg": float(np.degrees(np.median(mem[1]))),
                    "blend_median_position_m": float(np.median(e_p)),
                    "blend_median_rotation_deg": float(np.degrees(np.median(e_q)))}}
    return info, pools


@torch.no_grad()
def extend_memory(model, caches: List[Optional[FrameCache]], device: torch.device, size: int = DEFAULT_SIZE) -> int:
    """Refill a fitted memory with every frame of ``caches`` (fit + validation); keeps its
    settings. Returns the number of stored views (0: the memory was off and stays off)."""
    memory = model.memory
    if memory.size == 0:
        return 0
    feats, pos, rot, _ = _database(model, caches, device, size)
    k = memory.k
    memory.store(feats, pos, rot, k)
    model.config.update(memory_size=memory.size, memory_k=memory.k)
    return memory.size
