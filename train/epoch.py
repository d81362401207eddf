"""One training epoch: batches through model and objective, optimiser and scheduler steps.

The frame order, the dropout RNG and the augmentation RNG of epoch ``e`` of stage ``s`` are
seeded from ``(seed, s, e, rank)`` at its start (:func:`seed_epoch`), so a resumed run replays
what the uninterrupted one would have done. The loop polls the stop request after every
step and returns early (``stopped_at``) so that the stage can save that exact step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import nn

from edgepose.errors import EdgePoseError
from edgepose.progress import progress

from . import distributed
from .augment import photometric_jitter
from .checkpoint import nonfinite_hint
from .model import PoseNet
from .recipe import TrainConfig


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
class EpochResult:
    logs: Dict[str, float]
    images: int
    seconds: float
    stopped_at: Optional[int] = None  # batches done when a stop was requested


def train_one_epoch(run, step_module: nn.Module, optimizer, scheduler, loader, augment: torch.Generator,
                    first_step: int, desc: str) -> EpochResult:
    cfg, device = run.cfg, run.device
    step_module.train()
    sums: Dict[str, float] = {}
    n_batches, n_images, t0 = 0, 0, time.perf_counter()
    bar = None
    if cfg.progress and run.dist.is_main:
        bar = progress(total=len(loader) + first_step, initial=first_step, desc=desc, unit="batch",
                       leave=False, dynamic_ncols=True)
    step = first_step
    try:
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if cfg.jitter > 0:
                batch["image"] = photometric_jitter(batch["image"], augment, cfg.jitter, cfg.jitter, cfg.jitter)
            loss, logs = step_module(batch)
            if not torch.isfinite(loss):
                raise EdgePoseError(f"{desc}: the loss became {float(loss)} at step {step}; nothing of this "
                                    "epoch was saved", hint=nonfinite_hint(run.out))
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
                post = {"loss": f"{float(logs['total']) if 'total' in logs else float(loss.detach()):.3f}",
                        "img/s": f"{rate:.0f}"}
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


def _means(run, sums: Dict[str, float], n: int) -> Dict[str, float]:
    keys = sorted(sums)
    if not keys:
        return {}
    vals = torch.tensor([sums[k] / max(1, n) for k in keys], dtype=torch.float64)
    if run.dist.enabled:  # gloo/nccl reduce float32 everywhere
        vals = distributed.mean_over_ranks(run.dist, vals.float().to(run.device)).double().cpu()
    return dict(zip(keys, vals.tolist()))
