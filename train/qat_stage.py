"""Stage 3 of the recipe: quantization-aware fine-tuning (QAT) of a finished run.

``edgepose-train DATA --out RUN ... --qat-epochs N`` (or ``--resume --qat-epochs N`` on a run
that is already trained) runs it after stages 1-2 and their test report, through the same loop
as they do (:func:`edgepose.train.stage.run_stage`: seeding, resume at the exact step,
checkpoints, progress bars, SIGINT/SIGTERM, DDP, CUDA where available); :class:`QatKind` is
what differs:

1. the float model ``RUN/final.pt`` is kept as ``RUN/checkpoints/pre_qat.pt``;
2. fake quantization is inserted where the exporter writes Q/DQ (:mod:`edgepose.train.qat`);
3. activation ranges are calibrated on up to :data:`CALIB_FRAMES` training frames (the fit
   split, never validation or test): the starting point, "epoch 0", is post-training
   quantization with the QAT numerics, and is kept unless a fine-tuning epoch beats it;
4. N epochs of the stage-1 pose loss (its learned ``sp``/``sq`` as stage 1 left them, fixed)
   at a small learning rate (``--qat-lr``, default 1 % of stage 1's, cosine to 1 % of that,
   no warm-up), BatchNorm statistics frozen, activation ranges fixed, weight ranges following
   the weights; each validation runs the validation frames (the fit split when there are
   none) quantized and in float and scores the epoch on the quantized error plus the
   quantized-vs-float drift (both in :func:`~edgepose.train.evaluate.selection_score` units);
5. :func:`finish_qat`: ``RUN/final.pt`` becomes the best epoch's float weights plus a
   ``"qat"`` section (the ranges per Conv) that ``edgepose-export --precision int8`` turns into
   the Q/DQ graph without re-calibrating; ``metrics.json`` gains ``qat.*`` (test split,
   quantized and float).

Checkpoints are the loop's: ``RUN/checkpoints/qat_{last,best}.pt``, written every
``--checkpoint-minutes``, at the end of the stage and at the step a SIGINT/SIGTERM arrives.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from edgepose.frame_choice import CALIBRATION_FRAMES, spread_indices
from edgepose.errors import EdgePoseError

from . import distributed
from . import qat as fq
from .checkpoint import checkpoint_path, load_state_or_none, save_checkpoint
from .epoch import TrainStep
from .evaluate import pose_summary, predict, selection_score
from .losses import build_objective
from .memory_fit import extend_memory
from .metrics_log import flatten, read_metrics_json, write_metrics_json
from .model import model_from_config, read_checkpoint, resolve_checkpoint
from .recipe import StageSpec
from .run import Run
from .stage import Score, StageKind

#: training frames the activation ranges are calibrated on (the exporter's PTQ default)
CALIB_FRAMES = CALIBRATION_FRAMES


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


class QatStep(TrainStep):
    """The training step with BatchNorm kept in eval mode (statistics frozen) while training."""

    def train(self, mode: bool = True) -> "QatStep":
        super().train(mode)
        if mode:
            fq.freeze_batchnorm(self.model)
        return self


class QatKind(StageKind):
    """Stage 3 (see the module doc): the float model of ``base`` with fake quantization,
    stage 1's objective with its weighting fixed, scored quantized + drift."""

    def __init__(self, base: Dict, stage1_loss_state: Optional[Dict]):
        self.base = base
        self.stage1_loss_state = stage1_loss_state

    def build(self, run: Run, spec: StageSpec, init_state: Optional[Dict]):
        model = model_from_config(self.base["config"])
        model.load_state_dict(self.base["model"])
        fq.prepare_qat(model)
        objective = build_objective(spec.loss, uncertainty=run.cfg.uncertainty, **spec.loss_opts)
        if self.stage1_loss_state:
            objective.load_state_dict(self.stage1_loss_state)
        for p in objective.parameters():  # sp/sq as stage 1 learned them
            p.requires_grad_(False)
        return model, objective

    def step_module(self, model: nn.Module, objective: nn.Module) -> nn.Module:
        return QatStep(model, objective)

    def start(self, run: Run, model: nn.Module) -> None:
        idx = spread_indices(len(run.fit), CALIB_FRAMES)
        fq.calibrate(model, run.fit.images[torch.from_numpy(idx)].to(run.device))
        run.say(f"qat: calibrated on {len(idx)} training frames; epoch 0 is PTQ at TensorRT's placement")

    def scores_start(self, run: Run, init_state: Optional[Dict]) -> bool:
        return True

    def score(self, run: Run, model: nn.Module, desc: str) -> Optional[Score]:
        frames = run.val if run.val is not None else run.fit
        row = _epoch_scores(model, frames, run.device, float(run.norm.scale))
        return Score(row.pop("score"), row, {"val_median_position_m": row["int8_median_position_m"],
                                             "val_median_rotation_deg": row["int8_median_rotation_deg"],
                                             "val_drift_p50_m": row["drift_p50_m"]})

    def start_line(self, spec: StageSpec, start: Score) -> str:
        m = start.metrics
        return (f"qat: epoch 0 (PTQ): int8 val {m['int8_median_position_m']:.3f} m, "
                f"drift {m['drift_p50_m'] * 100:.2f} cm (kept unless an epoch beats it)")


def qat_kind(run: Run) -> QatKind:
    """The kind of stage 3 on ``run.out``: ``pre_qat.pt`` made once (by rank 0), stage 1's
    learned weighting read from ``stage1_best.pt`` when it is there."""
    if run.dist.is_main:
        _float_model(run.out)
    distributed.barrier(run.dist)
    s1 = load_state_or_none(checkpoint_path(run.out, "stage1", "best"))
    return QatKind(_float_model(run.out), (s1 or {}).get("loss_state"))


def qat_resume_point(run: Path) -> Optional[Dict]:
    """``qat_last.pt`` with its ``path``, or ``None``."""
    last = load_state_or_none(checkpoint_path(run, "qat", "last"))
    if last is not None:
        last["path"] = str(checkpoint_path(run, "qat", "last"))
    return last


def finish_qat(run: Run, kind: QatKind, best_state: Dict, best_epoch: int, train_seconds: float) -> Dict[str, object]:
    """Best epoch -> ``final.pt`` (float weights + ``qat`` ranges) and ``qat.*`` test metrics."""
    device, base, out = run.device, kind.base, run.out
    model = model_from_config(base["config"])
    fq.prepare_qat(model)
    model.load_state_dict(best_state)
    model.to(device)
    # the pose memory holds the views' features of the weights as they are now (float, as stored)
    fq.set_fake_quant(model, False)
    extend_memory(model, [run.fit, run.val], device, size=max(1, model.memory.size))
    fq.set_fake_quant(model, True)
    r = _drift(model, run.test.images, device)
    q = pose_summary(*r["q"], run.test.position_m, run.test.rotation_q)
    f = pose_summary(*r["f"], run.test.position_m, run.test.rotation_q)
    metrics: Dict[str, object] = {}
    metrics.update(flatten("qat.int8", q))
    metrics.update(flatten("qat.fp32", f))
    metrics.update({"qat.drift_p50_m": r["drift_p50_m"], "qat.drift_p50_deg": r["drift_p50_deg"],
                    "qat.best_epoch": int(best_epoch), "qat.train_seconds": float(train_seconds)})
    all_metrics = {**(base.get("metrics") or {}), **metrics}
    if (out / "metrics.json").is_file():
        all_metrics = {**read_metrics_json(out / "metrics.json"), **metrics}
    keep = {k: v for k, v in base.items() if k not in ("format", "path")}  # e.g. the sigma calibration
    save_checkpoint(out / "final.pt", {**keep, "model": fq.float_state_dict(model.cpu(), base["model"]),
                                       "metrics": all_metrics, "recipe": base.get("recipe") or run.cfg.to_dict(),
                                       "qat": fq.qat_export_info(model)})
    write_metrics_json(out / "metrics.json", all_metrics)
    print(f"qat: final.pt = epoch {best_epoch} (0 = calibration only); test int8 "
          f"{q['median_position_m']:.3f} m {q['median_rotation_deg']:.2f} deg, float "
          f"{f['median_position_m']:.3f} m, drift {r['drift_p50_m'] * 100:.2f} cm", flush=True)
    return metrics
