"""The trainer: data once into memory, stage 1, stage 2, test evaluation, run folder, QAT.

Read it top to bottom: :func:`fit` prepares the run (:func:`prepare_data`), derives each
stage's epochs from the step budget (:func:`edgepose.train.recipe.stages`), runs each stage
(:func:`edgepose.train.stage.run_stage`, which loops
:func:`edgepose.train.epoch.train_one_epoch`), then :func:`edgepose.train.finish.finish`
evaluates on the test split beside the baselines and writes ``final.pt`` and ``metrics.json``.
With ``qat_epochs`` > 0, stage 3 (:mod:`edgepose.train.qat_stage`) follows through the same
``run_stage``; :func:`fine_tune_qat` runs stage 3 alone on a finished run folder.

Reproducibility: the frame order, the dropout RNG and the augmentation RNG of epoch ``e`` of
stage ``s`` are seeded from ``(seed, s, e, rank)`` at the start of the epoch, and a
checkpoint (by wall time, at the end of a stage, or at the step a SIGINT/SIGTERM arrives)
stores the RNG states and the step, so a resumed run replays what the uninterrupted one
would have done. With ``--deterministic`` (deterministic kernels, same thread count) the
final weights are identical; ``tests/train`` checks it after a SIGKILL and after a SIGTERM.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

from edgepose.datasets import load_dataset
from edgepose.errors import ConfigError, EdgePoseError

from . import distributed
from .checkpoint import STAGES, check_run_folder, checkpoint_path, claim_run_folder, latest_resume_point, load_state_or_none
from .data import Normalisation, build_cache, sequences_disjoint, split_validation
from .finish import finish
from .metrics_log import MetricsLog
from .qat_stage import finish_qat, qat_kind, qat_resume_point
from .recipe import StageSpec, TrainConfig, qat_stage, stage2_planned, stages
from .report import print_plan, print_summary
from .run import Run
from .sampling import EpochBatches
from .signals import StopRequest
from .stage import StageOutcome, run_stage


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


# --------------------------------------------------------------------------- data
def prepare_data(cfg: TrainConfig, dist: distributed.DistInfo):
    """Load the dataset, split off validation frames, fit the normalisation, fill the caches."""
    ds = load_dataset(cfg.data, format=cfg.format, split_policy=cfg.split_policy, check_images=True,
                      allow_outside=cfg.allow_outside_images)
    train_frames = ds.split("train")
    try:
        test_frames = ds.split("test")
    except EdgePoseError:
        raise EdgePoseError(f"{cfg.data} has no test frames: the final metrics need a test split",
                            hint="pass --split-policy every:5 (or name test sequences with sequence:...)") from None
    blocks = sequences_disjoint(train_frames, test_frames)  # validation like test: whole stretches away
    fit_frames, val_frames = split_validation(train_frames, cfg.val_every, blocks=blocks)
    norm = Normalisation.fit([f.position for f in fit_frames])
    size = tuple(cfg.input_size)
    show = cfg.progress and dist.is_main
    threads = max(1, torch.get_num_threads())
    fit = build_cache(fit_frames, size, norm, max_points=cfg.max_points if stage2_planned(cfg) else 0,
                      seed=cfg.seed, threads=threads, progress=show, desc="train")
    val = build_cache(val_frames, size, norm, threads=threads, progress=show, desc="val") if val_frames else None
    test = build_cache(test_frames, size, norm, threads=threads, progress=show, desc="test")
    info = {"root": str(Path(cfg.data).resolve()), "format": str(ds.format),
            "split_policy": None if cfg.split_policy is None else str(cfg.split_policy),
            "allow_outside_images": bool(cfg.allow_outside_images),
            "validation": "a contiguous block from the middle of each sequence" if blocks else "every K-th frame"}
    counts = {"train": len(fit_frames), "val": len(val_frames), "test": len(test_frames)}
    return fit, val, test, norm, info, counts


# --------------------------------------------------------------------------- the run
def fit(cfg: TrainConfig) -> Dict[str, object]:
    """Train ``cfg``'s recipe and write the run folder; returns the ``metrics.json`` dict.

    Raises :class:`~edgepose.train.signals.Interrupted` after saving when SIGINT/SIGTERM
    arrives (the CLI turns it into exit code 128 + signal).
    """
    stages(cfg)  # option errors before any data is read
    if cfg.qat_epochs:
        qat_stage(cfg)
    return _session(cfg, _fit)


def fine_tune_qat(cfg: TrainConfig) -> Dict[str, object]:
    """Stage 3 alone (``cfg.qat_epochs`` epochs) on the finished run ``cfg.out`` (its
    ``final.pt``; stages 1-2 are not run again); returns the ``qat.*`` metrics."""
    qat_stage(cfg)
    return _session(cfg, _fit_qat_only)


def _session(cfg: TrainConfig, body) -> Dict[str, object]:
    """Device, threads, determinism and the process group around ``body(cfg, device, dist, out)``."""
    device = resolve_device(cfg.device)
    info = distributed.env_info()
    threads_before = torch.get_num_threads()  # the caller's, given back at the end
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads if cfg.threads > 0 else max(1, (os.cpu_count() or 1) // info.local_world_size))
    try:
        configure_determinism(cfg.deterministic)
        dist = distributed.init(device.type)
        if device.type == "cuda" and dist.enabled:
            device = torch.device("cuda", dist.local_rank)
        out = Path(cfg.out)
        try:
            return body(cfg, device, dist, out)
        finally:
            distributed.shutdown(dist)
    finally:
        torch.set_num_threads(threads_before)


def _trimmed_log(out: Path, resume) -> MetricsLog:
    """``metrics.csv``'s rows up to each stage's last checkpoint (later rows are replayed)."""
    log = MetricsLog(out / "metrics.csv")
    if resume is None:
        return log
    done = {s: 10 ** 9 for s in STAGES[:STAGES.index(resume["stage"])]}
    done[resume["stage"]] = int(resume["epoch"])
    qat = qat_resume_point(out)
    if qat is not None:
        done["qat"] = int(qat["epoch"])
    return log.load().keep_done(done)


def _data(cfg: TrainConfig, dist: distributed.DistInfo):
    """:func:`prepare_data`'s tuple and the optimiser steps of one epoch on this rank."""
    data = prepare_data(cfg, dist)
    return data, EpochBatches(len(data[0]), cfg.batch_size, rank=dist.rank, world=dist.world_size).batches_per_epoch()


def _make_run(cfg: TrainConfig, device: torch.device, dist: distributed.DistInfo, out: Path, data, log: MetricsLog,
              stop: StopRequest) -> Run:
    fit_c, val_c, test_c, norm, data_info, counts = data
    workers = cfg.workers if cfg.workers >= 0 else (2 if device.type == "cuda" else 0)
    return Run(cfg, dist, device, out, fit_c, val_c, test_c, norm, data_info, log, stop,
               cfg.channels_last in ("auto", "on"), workers, counts)


def _run_qat(run: Run, steps_per_epoch: int) -> Dict[str, object]:
    """Stage 3 through :func:`run_stage`, then :func:`finish_qat` (rank 0)."""
    kind = qat_kind(run)
    t0 = time.perf_counter()
    outcome = run_stage(run, qat_stage(run.cfg, steps_per_epoch), len(STAGES), None, qat_resume_point(run.out), kind)
    metrics: Dict[str, object] = {}
    if run.dist.is_main:
        metrics = finish_qat(run, kind, outcome.best_state, outcome.best_epoch, time.perf_counter() - t0)
    distributed.barrier(run.dist)
    return metrics


def _fit(cfg: TrainConfig, device: torch.device, dist: distributed.DistInfo, out: Path) -> Dict[str, object]:
    resume = latest_resume_point(out) if cfg.resume else None
    check_run_folder(out, resume)  # another tool's folder is not a run to overwrite
    if not cfg.resume and (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("*.pt")):
        raise ConfigError(f"{out} already holds checkpoints of another run",
                          hint=f"continue it with --resume, or choose another --out than {out}")
    data, steps_per_epoch = _data(cfg, dist)
    recipe: List[StageSpec] = stages(cfg, steps_per_epoch)
    if recipe[0].epochs == 0 and recipe[1].epochs > 0:
        if dist.is_main:
            print("warning: stage 2 (reprojection) starts from ImageNet weights, not from a stage-1 model: "
                  "the paper reports it can fail to converge; pass --stage1-epochs N", file=sys.stderr, flush=True)
    log = _trimmed_log(out, resume)
    with StopRequest() as stop:
        run = _make_run(cfg, device, dist, out, data, log, stop)
        if dist.is_main:
            claim_run_folder(out)
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
            metrics = finish(run, outcomes, train_seconds, recipe[0])
            print_summary(run, metrics)
        distributed.barrier(dist)
        if cfg.qat_epochs:
            metrics = {**metrics, **_run_qat(run, steps_per_epoch)}
        return metrics


def _fit_qat_only(cfg: TrainConfig, device: torch.device, dist: distributed.DistInfo, out: Path) -> Dict[str, object]:
    data, steps_per_epoch = _data(cfg, dist)
    qat = qat_resume_point(out)
    log = MetricsLog(out / "metrics.csv").load().keep_done({**{s: 10 ** 9 for s in STAGES},
                                                            "qat": int(qat["epoch"]) if qat else 0})
    with StopRequest() as stop:
        return _run_qat(_make_run(cfg, device, dist, out, data, log, stop), steps_per_epoch)
