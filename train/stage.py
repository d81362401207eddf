"""One stage of the recipe: its model, objective, optimiser and schedule, epochs, validation
and resume checkpoints.

Validation runs about :data:`VALIDATIONS_PER_STAGE` times per stage (every epoch when the stage
has fewer epochs), and at its last epoch; the weights of the best validation score are kept in
memory. Resume checkpoints (``stageN_last.pt`` and ``stageN_best.pt``) are written when
``checkpoint_minutes`` of wall time have passed, at the end of the stage, and at the exact
step a SIGINT/SIGTERM arrives, not after every epoch: on small sets an epoch is one step and
a checkpoint of the full network is ~60 MB with fsync. Both files are written together, so a
resumed run sees the best state that matches its last one and replays the rest bit-exactly.

Every stage runs through :func:`run_stage`: stages 1-2 and stage 3, quantization-aware
fine-tuning (:mod:`edgepose.train.qat_stage`). What differs between them is a
:class:`StageKind`: how the model and the objective are built, what a fresh start does before
the first epoch (QAT calibrates its ranges), and how an epoch is scored for "best". Seeding,
resume, checkpoints, progress, signals, DDP and the device are the loop's, for all of them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import nn

from . import distributed
from .checkpoint import (capture_rng, checkpoint_path, load_state_or_none, restore_rng, save_checkpoint,
                         stop_if_nonfinite)
from .data import make_loader
from .epoch import TrainStep, seed_epoch, train_one_epoch
from .evaluate import evaluate, selection_score
from .losses import build_objective
from .metrics_log import flatten
from .recipe import StageSpec, make_optimizer, make_scheduler
from .run import Run, build_model
from .sampling import EpochBatches
from .signals import Interrupted

#: validations per stage (more often than this costs time on small sets, where an epoch is a step)
VALIDATIONS_PER_STAGE = 50


@dataclass
class StageOutcome:
    best_state: Optional[Dict[str, torch.Tensor]]
    best_epoch: int
    ran: bool


def _state_copy(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def validation_period(epochs: int) -> int:
    """Validate every this many epochs (and at the last)."""
    return max(1, -(-int(epochs) // VALIDATIONS_PER_STAGE))


@dataclass
class Score:
    """One scoring of the model: ``score`` (lower is better, :func:`selection_score` units),
    ``metrics`` (kept with the best weights as ``val.*``) and the ``row`` entries of metrics.csv."""

    score: float
    metrics: Dict[str, float]
    row: Dict[str, float]


class StageKind:
    """Stages 1-2: a PoseNet of ``cfg`` (from ``init_state`` when given) trained with the
    stage's loss, scored on the validation frames (none: the last epoch is the best)."""

    def build(self, run: Run, spec: StageSpec, init_state: Optional[Dict]):
        """``(model, objective)`` on the CPU."""
        model = build_model(run.cfg, run.norm)
        if init_state is not None:
            model.load_state_dict(init_state)
        return model, build_objective(spec.loss, uncertainty=run.cfg.uncertainty, **spec.loss_opts)

    def step_module(self, model: nn.Module, objective: nn.Module) -> nn.Module:
        return TrainStep(model, objective)

    def start(self, run: Run, model: nn.Module) -> None:
        """What a fresh (not resumed) start does before scoring epoch 0 and training."""

    def scores_start(self, run: Run, init_state: Optional[Dict]) -> bool:
        """Whether the starting weights are scored as epoch 0 (kept unless an epoch beats them)."""
        return init_state is not None and run.val is not None

    def score(self, run: Run, model: nn.Module, desc: str) -> Optional[Score]:
        """The model's score, or ``None`` when there is nothing to score it on."""
        if run.val is None:
            return None
        val = evaluate(model, run.val, run.device)
        stop_if_nonfinite(run.out, model, desc, val)
        return Score(selection_score(val, run.norm.scale), val,
                     {"val_median_position_m": val["median_position_m"],
                      "val_median_rotation_deg": val["median_rotation_deg"]})

    def start_line(self, spec: StageSpec, start: Score) -> str:
        return (f"{spec.name} starts at val {start.metrics['median_position_m']:.3f} m "
                f"{start.metrics['median_rotation_deg']:.2f} deg (kept unless an epoch beats it)")


def run_stage(run: Run, spec: StageSpec, index: int, init_state: Optional[Dict], resume: Optional[Dict],
              kind: Optional[StageKind] = None) -> StageOutcome:
    """Train one stage; returns the weights of its best validation epoch (or its last)."""
    cfg, dist, device = run.cfg, run.dist, run.device
    kind = kind or StageKind()
    torch.manual_seed(cfg.seed + index)  # head initialisation
    model, objective = kind.build(run, spec, init_state)
    model.to(device)
    if run.channels_last:
        model.to(memory_format=torch.channels_last)
    objective = objective.to(device)
    step_module: nn.Module = kind.step_module(model, objective)
    if dist.enabled:
        # static_graph: the same ops every step; it also tolerates the backbone's unused
        # ImageNet classifier, which never receives a gradient
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[dist.local_rank] if device.type == "cuda" else None, static_graph=True)
    optimizer = make_optimizer(model, objective, spec.lr, cfg)
    sampler = EpochBatches(len(run.fit), cfg.batch_size, shuffle=True, seed=cfg.seed * 31 + index,
                           rank=dist.rank, world=dist.world_size)
    scheduler = make_scheduler(optimizer, spec.epochs * sampler.batches_per_epoch(),
                               cfg.warmup_steps if spec.warmup_steps is None else spec.warmup_steps)
    loader = make_loader(run.fit, sampler, workers=run.workers, pin_memory=device.type == "cuda")
    augment = torch.Generator()
    period = validation_period(spec.epochs)

    start_epoch, start_step, rng = 0, 0, None
    best = {"score": float("inf"), "epoch": 0}
    best_state = None
    if resume is not None:
        model.load_state_dict(resume["model"])
        if resume.get("loss_state") is not None:
            objective.load_state_dict(resume["loss_state"])
        optimizer.load_state_dict(resume["optimizer"])
        if resume.get("scheduler") is not None:  # older QAT checkpoints lack it
            scheduler.load_state_dict(resume["scheduler"])
        start_epoch, start_step = int(resume["epoch"]), int(resume.get("step", 0))
        rng = resume.get("rng")
        best = dict(resume.get("best", best))
        saved_best = load_state_or_none(checkpoint_path(run.out, spec.name, "best"))
        best_state = saved_best["model"] if saved_best is not None else None
        run.say(f"{spec.name}: resuming at epoch {start_epoch + 1}, step {start_step} ({resume['path']})")

    def state(epoch: int, step: int, metrics: Dict, weights=None) -> Dict:
        return {"config": model.config, "model": weights if weights is not None else model.state_dict(),
                "data": run.data_info, "metrics": metrics,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "loss_state": objective.state_dict(), "epoch": epoch, "step": step, "stage": spec.name,
                "rng": capture_rng(augment), "best": dict(best), "recipe": cfg.to_dict()}

    best_metrics: Dict = {}

    def save(epoch: int, step: int, metrics: Dict) -> None:
        """The metrics log, then the resume pair: the best weights so far and the current state
        (the log first: a resumed run drops rows past its checkpoint, never misses one)."""
        if dist.is_main:
            run.log.write()
            if best_state is not None:
                save_checkpoint(checkpoint_path(run.out, spec.name, "best"),
                                state(int(best["epoch"]), 0, best_metrics, best_state))
            save_checkpoint(checkpoint_path(run.out, spec.name, "last"), state(epoch, step, metrics))
        run.last_save = time.monotonic()

    if resume is None and spec.epochs > 0:
        kind.start(run, model)
        start = kind.score(run, model, f"{spec.name} start") if kind.scores_start(run, init_state) else None
        if start is not None:
            # a fine-tuning stage starts from a model that already has a validation score: it keeps
            # those weights ("best" at epoch 0) unless one of its epochs does better on validation
            best = {"score": float(start.score), "epoch": 0}
            best_state, best_metrics = _state_copy(model), flatten("val", start.metrics)
            run.say(kind.start_line(spec, start))

    for epoch in range(start_epoch, spec.epochs):
        if start_step > 0 and rng is not None:
            restore_rng(rng, augment)
        else:
            seed_epoch(cfg, index, epoch, dist.rank, augment)
        sampler.set_epoch(epoch, skip=start_step)
        lr = optimizer.param_groups[0]["lr"]
        res = train_one_epoch(run, step_module, optimizer, scheduler, loader, augment, start_step,
                              f"{spec.name} {epoch + 1}/{spec.epochs}")
        if res.stopped_at is not None:
            save(epoch, res.stopped_at, {})
            distributed.barrier(dist)
            raise Interrupted(run.stop.signum or 0, str(checkpoint_path(run.out, spec.name, "last")))
        start_step = 0
        stop_if_nonfinite(run.out, model, f"{spec.name} {epoch + 1}/{spec.epochs}", {})  # before any save

        row: Dict[str, object] = {"stage": spec.name, "epoch": epoch + 1, "lr": lr}
        row.update(res.logs)
        last = epoch + 1 == spec.epochs
        validate = (epoch + 1) % period == 0 or last
        val_metrics: Dict[str, float] = {}
        improved = False
        if validate:
            scored = kind.score(run, model, f"{spec.name} {epoch + 1}/{spec.epochs}")
            if scored is not None:
                score, val_metrics = scored.score, scored.metrics
                row.update(scored.row)
                row["val_score"] = score
            else:
                score = -float(epoch)  # no validation frames: the last epoch is the best
            improved = score < best["score"]
            if improved:
                best = {"score": float(score), "epoch": epoch + 1}
                best_state, best_metrics = _state_copy(model), flatten("val", val_metrics)
        row.update(images=res.images * dist.world_size,
                   images_per_s=res.images * dist.world_size / max(res.seconds, 1e-9), seconds=res.seconds)
        if dist.is_main:
            run.log.append(row)
            if validate:
                print(_epoch_line(spec, epoch, row, improved), flush=True)
        if last or run.checkpoint_due():
            save(epoch + 1, 0, flatten("val", val_metrics))
        distributed.barrier(dist)

    if best_state is None and spec.epochs > 0:  # resumed a finished stage without its best file
        best_state = _state_copy(model)
    return StageOutcome(best_state, int(best["epoch"]), spec.epochs > 0)


def _epoch_line(spec: StageSpec, epoch: int, row: Dict, improved: bool) -> str:
    parts = [f"{spec.name} epoch {epoch + 1:>3}/{spec.epochs}", f"loss {row.get('total', row.get('loss', 0.0)):.4f}"]
    if "sp" in row:
        parts.append(f"sp {row['sp']:+.2f} sq {row['sq']:+.2f}")
    if "val_median_position_m" in row:
        parts.append(f"val {row['val_median_position_m']:.3f} m {row['val_median_rotation_deg']:.2f} deg")
    if "val_drift_p50_m" in row:  # QAT: quantized vs float on the same frames
        parts.append(f"drift {row['val_drift_p50_m'] * 100:.2f} cm")
    parts.append(f"{row['images_per_s']:.0f} img/s")
    return "  ".join(parts) + ("  *best" if improved else "")
