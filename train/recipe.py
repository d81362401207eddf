"""The two-stage recipe of Kendall & Cipolla (CVPR 2017) and its settings.

Stage 1 trains the network with learned homoscedastic weighting (or the beta loss) from
ImageNet weights; stage 2 fine-tunes stage 1's best model with the geometric reprojection
loss (the paper reports that reprojection from scratch can fail to converge). Each stage has
its own Adam optimiser and a per-step schedule (linear warm-up, then cosine decay to 1% of
the base rate); the learned ``sp``/``sq`` sit in their own parameter group at
:data:`edgepose.train.losses.RECOMMENDED_WEIGHTING_LR` without weight decay.

The budget is counted in optimiser steps, not epochs (:func:`step_budget`): an epoch of a
30-image set is one step, one of a 3,000-image set about 90, so a fixed epoch count either
barely moves the network on a small set or runs for hours on a large one. By default a run
takes ``DEFAULT_EPOCHS`` epochs' worth of steps, but at least ``min_steps`` and at most
``max_steps``, and gives ``stage2_fraction`` of them to stage 2; ``--steps N`` fixes the total,
``--stage1-epochs/--stage2-epochs`` fix a stage's epochs as before. Each stage trains whole
epochs: the steps are rounded up to them.

:class:`TrainConfig` holds every setting as primitives: it is stored in each checkpoint
(``"recipe"``) so a run can be inspected and resumed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional, Tuple

import torch

from edgepose.errors import ConfigError

from .losses import RECOMMENDED_WEIGHTING_LR


@dataclass
class TrainConfig:
    """Everything a run needs; the CLI fills it (see ``edgepose-train --help``)."""

    data: str
    out: str
    format: Optional[str] = None
    split_policy: Optional[str] = None
    allow_outside_images: bool = False
    backbone: str = "efficientnet_lite0"
    pretrained: str = "imagenet"
    input_size: Tuple[int, int] = (128, 96)
    hidden: int = 1024
    dropout: float = 0.2
    rotation_head: str = "6d"  # what the rotation head outputs (train/rotation_head.py; measured: benchmarks/results/rotation_head.md)
    steps: int = 0  # total optimiser steps of both stages; 0: derived (see step_budget)
    min_steps: int = 600
    max_steps: int = 6000
    stage2_fraction: float = 0.1
    stage1_epochs: Optional[int] = None  # set: overrides the step budget of stage 1
    stage2_epochs: Optional[int] = None
    loss: str = "learned"
    beta: float = 500.0
    loss_norm: str = "l1"
    uncertainty: str = "nll"
    reproj_clip: float = 100.0
    use_K: bool = False
    max_points: int = 128
    batch_size: int = 32
    lr: float = 1e-3
    stage2_lr: float = 1e-5  # measured: 1e-4 undid stage 1 on the synthetic scene (val 0.40 -> 0.78 m)
    weighting_lr: float = RECOMMENDED_WEIGHTING_LR
    weight_decay: float = 0.0
    warmup_steps: int = 50
    jitter: float = 0.3
    val_every: int = 10
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    workers: int = -1
    threads: int = 0
    channels_last: str = "auto"
    progress: bool = True
    resume: bool = False
    checkpoint_minutes: float = 10.0  # wall time between resume checkpoints (0: every epoch)
    memory_size: int = 4096  # training views kept in the model's pose memory (0: regressor only)
    fold_models: int = 0  # short fold trainings after the run for sigma's honest errors (0: none; measured worse, sigma_folds.md)
    fold_fraction: float = 1.0 / 3.0  # each fold model's share of stage 1's steps
    qat_epochs: int = 0  # stage 3, quantization-aware fine-tuning after stages 1-2 (0: none)
    qat_lr: float = 1e-5  # 1 % of stage 1's learning rate

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["input_size"] = [int(v) for v in self.input_size]
        return d

    @classmethod
    def known_fields(cls, recipe: Optional[Dict]) -> Dict:
        """The entries of a stored recipe (a checkpoint's ``recipe``, :meth:`to_dict`) that are
        settings of this edgepose; keys of other versions are dropped."""
        names = {f.name for f in fields(cls)}
        return {k: v for k, v in (recipe or {}).items() if k in names}

    @classmethod
    def from_recipe(cls, recipe: Optional[Dict], **overrides) -> "TrainConfig":
        """The config of a stored recipe (:meth:`known_fields`), with ``overrides`` on top."""
        merged = {**cls.known_fields(recipe), **overrides}
        merged["input_size"] = tuple(merged.get("input_size", cls.input_size))
        return cls(**merged)


#: epochs' worth of steps a run takes by default (within ``min_steps`` .. ``max_steps``)
DEFAULT_EPOCHS = 40


@dataclass(frozen=True)
class StageSpec:
    """One stage: its name, pose loss, epochs, base learning rate, loss options, and the
    optimiser steps of one epoch (``steps = epochs * steps_per_epoch``)."""

    name: str
    loss: str
    epochs: int
    lr: float
    loss_opts: Dict = field(default_factory=dict)
    steps_per_epoch: int = 1
    warmup_steps: Optional[int] = None  # None: cfg.warmup_steps

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def step_budget(cfg: TrainConfig, steps_per_epoch: int) -> Tuple[int, int]:
    """``(stage1 epochs, stage2 epochs)`` for a training split of ``steps_per_epoch`` batches.

    An epoch count given in ``cfg`` wins for its stage. Otherwise the total is ``cfg.steps`` or,
    when 0, ``DEFAULT_EPOCHS * steps_per_epoch`` clipped to ``[min_steps, max_steps]``;
    stage 2 gets ``stage2_fraction`` of it, stage 1 the rest, each rounded up to whole epochs.
    """
    spe = max(1, int(steps_per_epoch))
    for name in ("stage1_epochs", "stage2_epochs"):
        v = getattr(cfg, name)
        if v is not None and v < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0; got {v}")
    if cfg.steps < 0 or cfg.min_steps < 0 or cfg.max_steps < cfg.min_steps:
        raise ConfigError(f"step budget: need steps >= 0 and 0 <= min_steps <= max_steps; got steps {cfg.steps}, "
                          f"min {cfg.min_steps}, max {cfg.max_steps}")
    if not 0.0 <= cfg.stage2_fraction < 1.0:
        raise ConfigError(f"--stage2-fraction must be in [0, 1); got {cfg.stage2_fraction}")
    total = cfg.steps if cfg.steps > 0 else min(cfg.max_steps, max(cfg.min_steps, DEFAULT_EPOCHS * spe))
    s2_steps = 0 if cfg.stage2_epochs == 0 else int(round(total * cfg.stage2_fraction))  # no stage 2: all to stage 1
    e1 = cfg.stage1_epochs if cfg.stage1_epochs is not None else -(-(total - s2_steps) // spe)
    e2 = cfg.stage2_epochs if cfg.stage2_epochs is not None else -(-s2_steps // spe)
    return int(e1), int(e2)


def stages(cfg: TrainConfig, steps_per_epoch: int = 1) -> List[StageSpec]:
    """The recipe for ``cfg``: stage 1 (``cfg.loss``), then stage 2 (reprojection), with the
    epochs of :func:`step_budget` for ``steps_per_epoch`` batches per epoch."""
    if cfg.loss not in ("learned", "beta"):
        raise ConfigError(f"--loss must be 'learned' or 'beta' (stage 1); got {cfg.loss!r}",
                          hint="stage 2 always uses the reprojection loss; skip it with --stage2-epochs 0")
    e1, e2 = step_budget(cfg, steps_per_epoch)
    if e1 + e2 == 0:
        raise ConfigError("both stages have 0 epochs: nothing to train",
                          hint="pass --stage1-epochs N (and optionally --stage2-epochs M), or --steps N")
    s1_opts = {"norm": cfg.loss_norm}
    if cfg.loss == "beta":
        s1_opts["beta"] = cfg.beta
    spe = max(1, int(steps_per_epoch))
    return [
        StageSpec("stage1", cfg.loss, e1, float(cfg.lr), s1_opts, spe),
        StageSpec("stage2", "reprojection", e2, float(cfg.stage2_lr),
                  {"clip": cfg.reproj_clip, "use_K": cfg.use_K}, spe),
    ]


def qat_stage(cfg: TrainConfig, steps_per_epoch: int = 1) -> StageSpec:
    """Stage 3: ``cfg.qat_epochs`` of stage 1's pose loss at ``cfg.qat_lr``, no warm-up."""
    if cfg.qat_epochs < 1:
        raise ConfigError(f"--qat-epochs must be >= 1 for a QAT stage; got {cfg.qat_epochs}")
    if not cfg.qat_lr > 0:
        raise ConfigError(f"--qat-lr must be > 0; got {cfg.qat_lr}")
    first = stages(cfg, steps_per_epoch)[0]
    return StageSpec("qat", first.loss, int(cfg.qat_epochs), float(cfg.qat_lr), dict(first.loss_opts),
                     first.steps_per_epoch, warmup_steps=0)


def stage2_planned(cfg: TrainConfig) -> bool:
    """Whether stage 2 may run (its points must be loaded before the budget is known)."""
    return cfg.stage2_epochs != 0 and (cfg.stage2_epochs is not None or cfg.stage2_fraction > 0)


def make_optimizer(model: torch.nn.Module, objective: torch.nn.Module, lr: float, cfg: TrainConfig):
    """Adam over the model (``lr``, ``cfg.weight_decay``) plus, when the loss learns ``sp``/``sq``,
    a group for them at ``cfg.weighting_lr`` without weight decay."""
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr,
               "weight_decay": cfg.weight_decay, "name": "model"}]
    weighting = objective.weighting_parameters() if hasattr(objective, "weighting_parameters") else []
    weighting = [p for p in weighting if p.requires_grad]  # QAT keeps stage 1's sp/sq fixed
    if weighting:
        groups.append({"params": weighting, "lr": cfg.weighting_lr, "weight_decay": 0.0, "name": "weighting"})
    return torch.optim.Adam(groups)


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.01) -> float:
    """Learning-rate multiplier at optimiser step ``step`` of ``total``: linear warm-up over
    ``warmup`` steps, then cosine from 1 down to ``floor``."""
    warmup = min(int(warmup), max(0, total // 5))
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(optimizer, total_steps: int, warmup_steps: int):
    """Per-step ``LambdaLR`` with :func:`lr_factor` (its state is plain numbers: resumable)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps))
