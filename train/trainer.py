"""The trainer: data once into memory, stage 1, stage 2, test evaluation, run folder.

Read it top to bottom: :func:`fit` prepares the run (:func:`prepare_data`), runs each stage of
the recipe (:func:`run_stage`, which loops :func:`train_one_epoch` and validates after every
epoch), then evaluates on the test split and writes ``final.pt`` and ``metrics.json``.

Reproducibility: the frame order, the dropout RNG and the augmentation RNG of epoch ``e`` of
stage ``s`` are seeded from ``(seed, s, e, rank)`` at the start of the epoch, and a
mid-epoch checkpoint (SIGINT/SIGTERM) stores the RNG states and the step, so a resumed run
replays what the uninterrupted one would have done. With ``--deterministic`` (deterministic
kernels, same thread count) the final weights are identical; ``tests/train`` checks it
after a SIGKILL and after a SIGTERM.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from edgepose.errors import ConfigError, EdgePoseError

from . import distributed
from .augment import photometric_jitter
from .checkpoint import capture_rng, checkpoint_path, latest_resume_point, load_state_or_none, restore_rng, save_checkpoint
from .data import FrameCache, Normalisation, build_cache, make_loader, split_validation
from .evaluate import evaluate, mean_pose_baseline, selection_score
from .losses import build_objective
from .metrics_log import MetricsLog, flatten, write_metrics_json
from .model import PoseNet, model_from_config
from .recipe import StageSpec, TrainConfig, make_optimizer, make_scheduler, stages
from .report import print_plan, print_summary
from .sampling import EpochBatches
from .signals import Interrupted, StopRequest


# --------------------------------------------------------------------------- set-up helpers
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device",
                          hint="use --device cpu (or auto), or install a CUDA build of torch")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda; got {name!r}")
    return torch.device(name)


def configure_determinism(enabled: bool) -> None:
    """Deterministic kernels (errors on ops that have none) for bit-exact resume."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def seed_epoch(cfg: TrainConfig, stage_index: int, epoch: int, rank: int, augment: torch.Generator) -> None:
    """Seed the global RNG (dropout) and the augmentation generator for one epoch."""
    s = ((cfg.seed * 1009 + stage_index) * 100_003 + epoch) * 64 + rank
    torch.manual_seed(s)
    augment.manual_seed(s + 7)


class TrainStep(nn.Module):
    """Model and objective as one module, so DDP also all-reduces the learned ``sp``/``sq``."""

    def __init__(self, model: PoseNet, objective: nn.Module):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Dict[str, torch.Tensor]):
        return self.objective(self.model(batch["image"]), batch)


@dataclass
class Run:
    """What the stages of one run share."""

    cfg: TrainConfig
    dist: distributed.DistInfo
    device: torch.device
    out: Path
    fit: FrameCache
    val: Optional[FrameCache]
    test: FrameCache
    norm: Normalisation
    data_info: Dict
    log: MetricsLog
    stop: StopRequest
    channels_last: bool
    workers: int
    counts: Dict[str, int] = field(default_factory=dict)

    def say(self, text: str) -> None:
        if self.dist.is_main:
            print(text, flush=True)


def build_model(cfg: TrainConfig, norm: Normalisation) -> PoseNet:
    return PoseNet(backbone=cfg.backbone, pretrained=cfg.pretrained, input_size=tuple(cfg.input_size),
                   hidden=cfg.hidden, dropout=cfg.dropout, position_mean=norm.mean, position_scale=norm.scale)


# --------------------------------------------------------------------------- data
def prepare_data(cfg: TrainConfig, dist: distributed.DistInfo):
    """Load the dataset, split off validation frames, fit the normalisation, fill the caches."""
    from edgepose.datasets import load_dataset

    ds = load_dataset(cfg.data, format=cfg.format, split_policy=cfg.split_policy, check_images=True,
                      allow_outside=cfg.allow_outside_images)
    train_frames = ds.split("train")
    try:
        test_frames = ds.split("test")
    except EdgePoseError:
        raise EdgePoseError(f"{cfg.data} has no test frames: the final metrics need a test split",
                            hint="pass --split-policy every:5 (or name test sequences with sequence:...)") from None
    fit_frames, val_frames = split_validation(train_frames, cfg.val_every)
    norm = Normalisation.fit([f.position for f in fit_frames])
    size = tuple(cfg.input_size)
    show = cfg.progress and dist.is_main
    threads = max(1, torch.get_num_threads())
    fit = build_cache(fit_frames, size, norm, max_points=cfg.max_points if cfg.stage2_epochs > 0 else 0,
                      seed=cfg.seed, threads=threads, progress=show, desc="train")
    val = build_cache(val_frames, size, norm, threads=threads, progress=show, desc="val") if val_frames else None
    test = build_cache(test_frames, size, norm, threads=threads, progress=show, desc="test")
    info = {"root": str(Path(cfg.data).resolve()), "format": str(ds.format),
            "split_policy": None if cfg.split_policy is None else str(cfg.split_policy),
            "allow_outside_images": bool(cfg.allow_outside_images)}
    counts = {"train": len(fit_frames), "val": len(val_frames), "test": len(test_frames)}
    return fit, val, test, norm, info, counts


# --------------------------------------------------------------------------- one epoch
@dataclass
class EpochResult:
    logs: Dict[str, float]
    images: int
    seconds: float
    stopped_at: Optional[int] = None  # batches done when a stop was requested


def train_one_epoch(run: Run, step_module: nn.Module, optimizer, scheduler, loader, augment: torch.Generator,
                    first_step: int, desc: str) -> EpochResult:
    cfg, device = run.cfg, run.device
    step_module.train()
    sums: Dict[str, float] = {}
    n_batches, n_images, t0 = 0, 0, time.perf_counter()
    bar = None
    if cfg.progress and run.dist.is_main:
        from tqdm import tqdm

        bar = tqdm(total=len(loader) + first_step, initial=first_step, desc=desc, unit="batch",
                   leave=False, dynamic_ncols=True)
    step = first_step
    try:
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if cfg.jitter > 0:
                batch["image"] = photometric_jitter(batch["image"], augment, cfg.jitter, cfg.jitter, cfg.jitter)
            loss, logs = step_module(batch)
            if not torch.isfinite(loss):
                raise EdgePoseError(f"{desc}: the loss became {float(loss)} at step {step}",
                                    hint="lower the learning rate (--lr / --stage2-lr) or check the labels")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            n_batches += 1
            n_images += int(batch["image"].shape[0])
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if bar is not None:
                rate = n_images * run.dist.world_size / max(1e-9, time.perf_counter() - t0)
                post = {"loss": f"{logs.get('total', float(loss)):.3f}", "img/s": f"{rate:.0f}"}
                if "sp" in logs:
                    post.update(sp=f"{logs['sp']:.2f}", sq=f"{logs['sq']:.2f}")
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if distributed.any_true(run.dist, run.stop.signum is not None, device):
                return EpochResult(_means(run, sums, n_batches), n_images, time.perf_counter() - t0, step)
    finally:
        if bar is not None:
            bar.close()
    return EpochResult(_means(run, sums, n_batches), n_images, time.perf_counter() - t0)


def _means(run: Run, sums: Dict[str, float], n: int) -> Dict[str, float]:
    keys = sorted(sums)
    if not keys:
        return {}
    vals = torch.tensor([sums[k] / max(1, n) for k in keys], dtype=torch.float64)
    if run.dist.enabled:  # gloo/nccl reduce float32 everywhere
        vals = distributed.mean_over_ranks(run.dist, vals.float().to(run.device)).double().cpu()
    return dict(zip(keys, vals.tolist()))


# --------------------------------------------------------------------------- one stage
@dataclass
class StageOutcome:
    best_state: Optional[Dict[str, torch.Tensor]]
    best_epoch: int
    ran: bool


def _state_copy(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def run_stage(run: Run, spec: StageSpec, index: int, init_state: Optional[Dict], resume: Optional[Dict]) -> StageOutcome:
    """Train one stage; returns the weights of its best validation epoch (or its last)."""
    cfg, dist, device = run.cfg, run.dist, run.device
    torch.manual_seed(cfg.seed + index)  # head initialisation
    model = build_model(cfg, run.norm)
    if init_state is not None:
        model.load_state_dict(init_state)
    model.to(device)
    if run.channels_last:
        model.to(memory_format=torch.channels_last)
    objective = build_objective(spec.loss, uncertainty=cfg.uncertainty, **spec.loss_opts).to(device)
    step_module: nn.Module = TrainStep(model, objective)
    if dist.enabled:
        # static_graph: the same ops every step; it also tolerates the backbone's unused
        # ImageNet classifier, which never receives a gradient
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[dist.local_rank] if device.type == "cuda" else None, static_graph=True)
    optimizer = make_optimizer(model, objective, spec.lr, cfg)
    sampler = EpochBatches(len(run.fit), cfg.batch_size, shuffle=True, seed=cfg.seed * 31 + index,
                           rank=dist.rank, world=dist.world_size)
    scheduler = make_scheduler(optimizer, spec.epochs * sampler.batches_per_epoch(), cfg.warmup_steps)
    loader = make_loader(run.fit, sampler, workers=run.workers, pin_memory=device.type == "cuda")
    augment = torch.Generator()

    start_epoch, start_step, rng = 0, 0, None
    best = {"score": float("inf"), "epoch": 0}
    best_state = None
    if resume is not None:
        model.load_state_dict(resume["model"])
        objective.load_state_dict(resume["loss_state"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        start_epoch, start_step = int(resume["epoch"]), int(resume.get("step", 0))
        rng = resume.get("rng")
        best = dict(resume.get("best", best))
        saved_best = load_state_or_none(checkpoint_path(run.out, spec.name, "best"))
        best_state = saved_best["model"] if saved_best is not None else None
        run.say(f"{spec.name}: resuming at epoch {start_epoch + 1}, step {start_step} ({resume['path']})")

    def state(epoch: int, step: int, metrics: Dict) -> Dict:
        return {"config": model.config, "model": model.state_dict(), "data": run.data_info, "metrics": metrics,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "loss_state": objective.state_dict(), "epoch": epoch, "step": step, "stage": spec.name,
                "rng": capture_rng(augment), "best": dict(best), "recipe": cfg.to_dict()}

    if resume is None and init_state is not None and run.val is not None and spec.epochs > 0:
        # a fine-tuning stage starts from a model that already has a validation score: it keeps
        # those weights ("best" at epoch 0) unless one of its epochs does better on validation
        val0 = evaluate(model, run.val, device)
        best = {"score": selection_score(val0, run.norm.scale), "epoch": 0}
        best_state = _state_copy(model)
        if dist.is_main:
            save_checkpoint(checkpoint_path(run.out, spec.name, "best"), state(0, 0, flatten("val", val0)))
            print(f"{spec.name} starts at val {val0['median_position_m']:.3f} m "
                  f"{val0['median_rotation_deg']:.2f} deg (kept unless an epoch beats it)", flush=True)

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
            path = checkpoint_path(run.out, spec.name, "last")
            if dist.is_main:
                save_checkpoint(path, state(epoch, res.stopped_at, {}))
            distributed.barrier(dist)
            raise Interrupted(run.stop.signum or 0, str(path))
        start_step = 0

        row: Dict[str, object] = {"stage": spec.name, "epoch": epoch + 1, "lr": lr}
        row.update(res.logs)
        val_metrics: Dict[str, float] = {}
        if run.val is not None:
            val_metrics = evaluate(model, run.val, device)
            score = selection_score(val_metrics, run.norm.scale)
            row.update(val_median_position_m=val_metrics["median_position_m"],
                       val_median_rotation_deg=val_metrics["median_rotation_deg"], val_score=score)
        else:
            score = -float(epoch)  # no validation frames: the last epoch is the best
        row.update(images=res.images * dist.world_size,
                   images_per_s=res.images * dist.world_size / max(res.seconds, 1e-9), seconds=res.seconds)
        improved = score < best["score"]
        if improved:
            best = {"score": float(score), "epoch": epoch + 1}
            best_state = _state_copy(model)
        if dist.is_main:
            run.log.append(row)
            run.log.write()
            metrics = flatten("val", val_metrics)
            if improved:
                save_checkpoint(checkpoint_path(run.out, spec.name, "best"), state(epoch + 1, 0, metrics))
            save_checkpoint(checkpoint_path(run.out, spec.name, "last"), state(epoch + 1, 0, metrics))
            print(_epoch_line(spec, epoch, row, improved), flush=True)
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
    parts.append(f"{row['images_per_s']:.0f} img/s")
    return "  ".join(parts) + ("  *best" if improved else "")


# --------------------------------------------------------------------------- the run
def fit(cfg: TrainConfig) -> Dict[str, object]:
    """Train ``cfg``'s recipe and write the run folder; returns the ``metrics.json`` dict.

    Raises :class:`~edgepose.train.signals.Interrupted` after saving when SIGINT/SIGTERM
    arrives (the CLI turns it into exit code 128 + signal).
    """
    recipe = stages(cfg)
    device = resolve_device(cfg.device)
    info = distributed.env_info()
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads if cfg.threads > 0 else max(1, (os.cpu_count() or 1) // info.local_world_size))
    configure_determinism(cfg.deterministic)
    dist = distributed.init(device.type)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
    out = Path(cfg.out)
    try:
        return _fit(cfg, recipe, device, dist, out)
    finally:
        distributed.shutdown(dist)


def _fit(cfg: TrainConfig, recipe: List[StageSpec], device: torch.device, dist: distributed.DistInfo,
         out: Path) -> Dict[str, object]:
    resume = latest_resume_point(out) if cfg.resume else None
    if not cfg.resume and (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("*.pt")):
        raise ConfigError(f"{out} already holds checkpoints of another run",
                          hint=f"continue it with --resume, or choose another --out than {out}")
    if recipe[0].epochs == 0 and recipe[1].epochs > 0:
        if dist.is_main:
            print("warning: stage 2 (reprojection) starts from ImageNet weights, not from a stage-1 model: "
                  "the paper reports it can fail to converge; pass --stage1-epochs N", file=sys.stderr, flush=True)
    fit_c, val_c, test_c, norm, data_info, counts = prepare_data(cfg, dist)
    channels_last = cfg.channels_last in ("auto", "on")
    workers = cfg.workers if cfg.workers >= 0 else (2 if device.type == "cuda" else 0)
    log = MetricsLog(out / "metrics.csv")
    if resume is not None:
        log.load().keep_before(resume["stage"], int(resume["epoch"]))
    with StopRequest() as stop:
        run = Run(cfg, dist, device, out, fit_c, val_c, test_c, norm, data_info, log, stop, channels_last,
                  workers, counts)
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            print_plan(run, recipe, resume)
        t0 = time.perf_counter()
        outcomes: List[StageOutcome] = []
        init_state = None
        for index, spec in enumerate(recipe):
            stage_resume = None
            if resume is not None:
                if recipe.index(next(s for s in recipe if s.name == resume["stage"])) > index:
                    # this stage finished in the earlier run: take its best weights from disk
                    saved = load_state_or_none(checkpoint_path(out, spec.name, "best"))
                    outcomes.append(StageOutcome(saved["model"] if saved else None, 0, saved is not None))
                    init_state = outcomes[-1].best_state or init_state
                    continue
                if resume["stage"] == spec.name:
                    stage_resume = resume
            outcome = run_stage(run, spec, index, init_state, stage_resume)
            outcomes.append(outcome)
            if outcome.best_state is not None:
                init_state = outcome.best_state
        train_seconds = time.perf_counter() - t0
        metrics = {}
        if dist.is_main:
            metrics = _final(run, outcomes, train_seconds)
            print_summary(run, metrics)
        distributed.barrier(dist)
        return metrics


def _final(run: Run, outcomes: List[StageOutcome], train_seconds: float) -> Dict[str, object]:
    """Test-split metrics of stage 1, of the final model and of the mean pose; write the files."""
    cfg, device = run.cfg, run.device
    metrics: Dict[str, object] = {}
    final_state, final_stage = None, None
    for spec_name, outcome in zip(("stage1", "stage2"), outcomes):
        if outcome.best_state is None:
            continue
        model = build_model_for_eval(cfg, run.norm, outcome.best_state, device)
        summary = evaluate(model, run.test, device)
        if spec_name == "stage1":
            metrics.update(flatten("stage1", summary))
        metrics[f"run.{spec_name}_best_epoch"] = outcome.best_epoch  # 0: fine-tuning never beat its start
        final_state, final_stage, final_summary, final_config = outcome.best_state, spec_name, summary, model.config
    if final_state is None:
        raise EdgePoseError("no stage produced a model", hint="pass --stage1-epochs N")
    metrics.update(flatten("test", final_summary))
    metrics.update(flatten("baseline.mean_pose", mean_pose_baseline(run.fit, run.test)))
    metrics.update({"run.final_stage": final_stage, "run.world_size": run.dist.world_size,
                    "run.train_seconds": train_seconds, "run.frames.train": run.counts["train"],
                    "run.frames.val": run.counts["val"], "run.frames.test": run.counts["test"]})
    save_checkpoint(run.out / "final.pt", {"config": final_config, "model": final_state, "data": run.data_info,
                                           "metrics": dict(metrics), "recipe": cfg.to_dict()})
    write_metrics_json(run.out / "metrics.json", metrics)
    return metrics


def build_model_for_eval(cfg: TrainConfig, norm: Normalisation, state: Dict, device: torch.device) -> PoseNet:
    """A PoseNet holding ``state`` (no pretrained weights are loaded: ``state`` has them all)."""
    model = model_from_config({"backbone": cfg.backbone, "input_size": list(cfg.input_size), "hidden": cfg.hidden,
                               "dropout": cfg.dropout, "position_mean": list(norm.mean),
                               "position_scale": norm.scale})
    model.load_state_dict(state)
    return model.to(device).eval()
