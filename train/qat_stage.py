"""Stage 3 of the recipe: quantization-aware fine-tuning (QAT) of a finished run.

``edgepose-train DATA --out RUN ... --qat-epochs N`` (or ``--resume --qat-epochs N`` on a run
that is already trained) runs :func:`run_qat` after stages 1-2:

1. the float model ``RUN/final.pt`` is kept as ``RUN/checkpoints/pre_qat.pt``;
2. fake quantization is inserted where the exporter writes Q/DQ (:mod:`edgepose.train.qat`);
3. activation ranges are calibrated on up to :data:`CALIB_FRAMES` training frames (the fit
   split, never validation or test): the starting point, "epoch 0", is post-training
   quantization with the QAT numerics, and is kept unless a fine-tuning epoch beats it;
4. N epochs of the stage-1 pose loss (its learned ``sp``/``sq`` as stage 1 left them, fixed)
   at a small learning rate (default :data:`DEFAULT_LR`, 1 % of stage 1's, cosine to 1 % of
   that), BatchNorm statistics frozen, activation ranges fixed, weight ranges following the
   weights; after each epoch the validation frames are run quantized and in float and the
   epoch is scored on the quantized error plus the quantized-vs-float drift (both in
   :func:`~edgepose.train.evaluate.selection_score` units);
5. ``RUN/final.pt`` becomes the best epoch's float weights plus a ``"qat"`` section (the
   ranges per Conv) that ``edgepose-export --precision int8`` turns into the Q/DQ graph
   without re-calibrating; ``metrics.json`` gains ``qat.*`` (test split, quantized and float).

Checkpoints ``RUN/checkpoints/qat_{last,best}.pt`` are written atomically after every epoch
(an epoch is short: the run resumes at an epoch boundary). SIGINT/SIGTERM are honoured at the
end of the current epoch (``qat_last`` saved, :class:`~edgepose.train.signals.Interrupted`
raised); ``--resume --qat-epochs N`` continues there, also after a SIGKILL.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from edgepose.errors import EdgePoseError

from . import qat as fq
from .augment import photometric_jitter
from .checkpoint import checkpoint_path, load_state_or_none, save_checkpoint
from .evaluate import pose_summary, predict, selection_score
from .losses import build_objective
from .memory_fit import extend_memory
from .metrics_log import flatten, read_metrics_json, write_metrics_json
from .model import model_from_config, read_checkpoint
from .recipe import TrainConfig, make_scheduler
from .sampling import EpochBatches

DEFAULT_LR = 1e-5
CALIB_FRAMES = 300


def _drift(model, images, device) -> Dict[str, object]:
    """Quantized predictions, float predictions and the median drift between them."""
    fq.set_fake_quant(model, True)
    pq, rq, _ = predict(model, images, device)
    fq.set_fake_quant(model, False)
    pf, rf, _ = predict(model, images, device)
    fq.set_fake_quant(model, True)
    d = pose_summary(pq, rq, pf, rf)
    return {"q": (pq, rq), "f": (pf, rf), "drift_p50_m": d["median_position_m"],
            "drift_p50_deg": d["median_rotation_deg"]}


def _epoch_scores(model, cache, device, scale: float) -> Dict[str, float]:
    r = _drift(model, cache.images, device)
    q = pose_summary(*r["q"], cache.position_m, cache.rotation_q)
    f = pose_summary(*r["f"], cache.position_m, cache.rotation_q)
    score = selection_score(q, scale) + r["drift_p50_m"] / scale + np.radians(r["drift_p50_deg"])
    return {"score": float(score), "int8_median_position_m": q["median_position_m"],
            "int8_median_rotation_deg": q["median_rotation_deg"], "fp32_median_position_m": f["median_position_m"],
            "fp32_median_rotation_deg": f["median_rotation_deg"], "drift_p50_m": r["drift_p50_m"],
            "drift_p50_deg": r["drift_p50_deg"]}


def _float_model(run: Path):
    """The pre-QAT float checkpoint (``checkpoints/pre_qat.pt``, made from ``final.pt`` once)."""
    pre = checkpoint_path(run, "pre_qat", "float").with_name("pre_qat.pt")
    if not pre.is_file():
        from .model import resolve_checkpoint

        try:  # final.pt, else the best checkpoint of an unfinished run
            final = resolve_checkpoint(run)
        except EdgePoseError:
            raise EdgePoseError(f"{run} has no model to fine-tune with QAT",
                                hint=f"train first: edgepose-train DATA --out {run} (then --resume --qat-epochs N)") from None
        ck = read_checkpoint(final)
        if ck.get("qat"):
            raise EdgePoseError(f"{final} is already a QAT model but {pre} is missing",
                                hint="retrain, or restore checkpoints/pre_qat.pt")
        pre.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, pre)
    return read_checkpoint(pre)


def run_qat(cfg: TrainConfig, epochs: int, lr: float = DEFAULT_LR, data=None, stop=None,
            say=print) -> Dict[str, object]:
    """Stage 3 on the run ``cfg.out`` (see the module doc); returns the ``qat.*`` metrics.

    ``data``: ``(fit, val, test, norm)`` caches when the caller has them (the trainer), else
    they are built from ``cfg``. ``stop``: a :class:`~edgepose.train.signals.StopRequest`.
    """
    if epochs < 0:
        raise EdgePoseError(f"--qat-epochs must be >= 0; got {epochs}")
    if not lr > 0:
        raise EdgePoseError(f"--qat-lr must be > 0; got {lr}")
    run = Path(cfg.out)
    base = _float_model(run)
    if data is None:
        from .distributed import env_info
        from .trainer import prepare_data

        fit_c, val_c, test_c, norm, _, _ = prepare_data(cfg, env_info())
    else:
        fit_c, val_c, test_c, norm = data
    device = torch.device("cpu")
    torch.manual_seed(cfg.seed + 3)
    model = model_from_config(base["config"])
    model.load_state_dict(base["model"])
    fq.prepare_qat(model)
    scale = float(norm.scale)
    objective = build_objective(cfg.loss, uncertainty=cfg.uncertainty, norm=cfg.loss_norm,
                                beta=cfg.beta if cfg.loss == "beta" else None)
    s1 = load_state_or_none(checkpoint_path(run, "stage1", "best"))
    if s1 is not None and s1.get("loss_state"):
        objective.load_state_dict(s1["loss_state"])
    for p in objective.parameters():  # sp/sq as stage 1 learned them
        p.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    sampler = EpochBatches(len(fit_c), cfg.batch_size, shuffle=True, seed=cfg.seed * 31 + 3)
    scheduler = make_scheduler(optimizer, max(1, epochs * sampler.batches_per_epoch()), 0)
    sel = val_c if val_c is not None else fit_c
    t0 = time.perf_counter()
    last = load_state_or_none(checkpoint_path(run, "qat", "last"))
    if last is not None:
        model.load_state_dict(last["model"])
        optimizer.load_state_dict(last["optimizer"])
        start, best = int(last["epoch"]), dict(last["best"])
        spent = float(last.get("seconds", 0.0))
        say(f"qat: resuming after epoch {start} of {epochs}")
    else:
        idx = np.unique(np.linspace(0, len(fit_c) - 1, min(CALIB_FRAMES, len(fit_c))).round().astype(int))
        fq.calibrate(model, fit_c.images[torch.from_numpy(idx)])
        row = _epoch_scores(model, sel, device, scale)
        best = {"epoch": 0, **row}
        start, spent = 0, 0.0
        say(f"qat: calibrated on {len(idx)} training frames; epoch 0 (PTQ, TensorRT placement): "
            f"int8 val {row['int8_median_position_m']:.3f} m, drift {row['drift_p50_m'] * 100:.2f} cm")
        save_checkpoint(checkpoint_path(run, "qat", "best"), {"config": base["config"], "model": model.state_dict()})
        _save_last(run, base, model, optimizer, 0, best, 0.0)
    for _ in range(start):
        for _b in range(sampler.batches_per_epoch()):
            scheduler.step()  # LambdaLR: replay the schedule's position
    augment = torch.Generator()
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        augment.manual_seed(cfg.seed * 7919 + epoch)
        model.train()
        fq.freeze_batchnorm(model)
        te = time.perf_counter()
        losses = []
        for index in sampler:
            batch = fit_c.batch(torch.as_tensor(index))
            image = batch["image"]
            if cfg.jitter > 0:
                image = photometric_jitter(image, augment, cfg.jitter, cfg.jitter, cfg.jitter)
            loss, _logs = objective(model(image), batch)
            if not torch.isfinite(loss):
                raise EdgePoseError(f"qat epoch {epoch + 1}: the loss became {float(loss)}", hint="lower --qat-lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss))
        row = _epoch_scores(model, sel, device, scale)
        spent += time.perf_counter() - te
        improved = row["score"] < best["score"]
        if improved:
            best = {"epoch": epoch + 1, **row}
            save_checkpoint(checkpoint_path(run, "qat", "best"), {"config": base["config"], "model": model.state_dict()})
        _save_last(run, base, model, optimizer, epoch + 1, best, spent)
        say(f"qat epoch {epoch + 1}/{epochs}  loss {np.mean(losses):.4f}  int8 val "
            f"{row['int8_median_position_m']:.3f} m {row['int8_median_rotation_deg']:.2f} deg  drift "
            f"{row['drift_p50_m'] * 100:.2f} cm  {time.perf_counter() - te:.0f} s" + ("  *best" if improved else ""))
        if stop is not None and stop.signum is not None:
            from .signals import Interrupted

            raise Interrupted(stop.signum, str(checkpoint_path(run, "qat", "last")))
    return _finish(run, cfg, base, model, best, (fit_c, val_c, test_c), device, spent, time.perf_counter() - t0)


def _save_last(run, base, model, optimizer, epoch, best, seconds) -> None:
    save_checkpoint(checkpoint_path(run, "qat", "last"),
                    {"config": base["config"], "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epoch, "stage": "qat", "best": best, "seconds": seconds})


def _finish(run: Path, cfg, base, model, best, caches, device, train_seconds, wall) -> Dict[str, object]:
    """Best epoch -> ``final.pt`` (float weights + ``qat`` ranges) and ``qat.*`` test metrics."""
    fit_c, val_c, test_c = caches
    saved = read_checkpoint(checkpoint_path(run, "qat", "best"))
    model.load_state_dict(saved["model"])
    # the pose memory holds the views' features of the weights as they are now (float, as stored)
    fq.set_fake_quant(model, False)
    extend_memory(model, [fit_c, val_c], device, size=max(1, model.memory.size))
    fq.set_fake_quant(model, True)
    r = _drift(model, test_c.images, device)
    q = pose_summary(*r["q"], test_c.position_m, test_c.rotation_q)
    f = pose_summary(*r["f"], test_c.position_m, test_c.rotation_q)
    metrics: Dict[str, object] = {}
    metrics.update(flatten("qat.int8", q))
    metrics.update(flatten("qat.fp32", f))
    metrics.update({"qat.drift_p50_m": r["drift_p50_m"], "qat.drift_p50_deg": r["drift_p50_deg"],
                    "qat.best_epoch": int(best["epoch"]), "qat.train_seconds": float(train_seconds)})
    all_metrics = {**(base.get("metrics") or {}), **metrics}
    if (run / "metrics.json").is_file():
        all_metrics = {**read_metrics_json(run / "metrics.json"), **metrics}
    info = fq.qat_export_info(model)
    keep = {k: v for k, v in base.items() if k not in ("format", "path")}  # e.g. the sigma calibration
    save_checkpoint(run / "final.pt", {**keep, "model": fq.float_state_dict(model, base["model"]),
                                       "metrics": all_metrics, "recipe": base.get("recipe") or cfg.to_dict(),
                                       "qat": info})
    write_metrics_json(run / "metrics.json", all_metrics)
    print(f"qat: final.pt = epoch {best['epoch']} (0 = calibration only); test int8 "
          f"{q['median_position_m']:.3f} m {q['median_rotation_deg']:.2f} deg, float "
          f"{f['median_position_m']:.3f} m, drift {r['drift_p50_m'] * 100:.2f} cm; {wall:.0f} s")
    return metrics
