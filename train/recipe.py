"""The two-stage recipe of Kendall & Cipolla (CVPR 2017) and its settings.

Stage 1 trains the network with learned homoscedastic weighting (or the beta loss) from
ImageNet weights; stage 2 fine-tunes stage 1's best model with the geometric reprojection
loss (the paper reports that reprojection from scratch can fail to converge). Each stage has
its own Adam optimiser and a per-step schedule (linear warm-up, then cosine decay to 1% of
the base rate); the learned ``sp``/``sq`` sit in their own parameter group at
:data:`edgepose.train.losses.RECOMMENDED_WEIGHTING_LR` without weight decay.

:class:`TrainConfig` holds every setting as primitives: it is stored in each checkpoint
(``"recipe"``) so a run can be inspected and resumed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
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
    stage1_epochs: int = 40
    stage2_epochs: int = 10
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

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["input_size"] = [int(v) for v in self.input_size]
        return d


@dataclass(frozen=True)
class StageSpec:
    """One stage: its name, pose loss, epochs, base learning rate and loss options."""

    name: str
    loss: str
    epochs: int
    lr: float
    loss_opts: Dict = field(default_factory=dict)


def stages(cfg: TrainConfig) -> List[StageSpec]:
    """The recipe for ``cfg``: stage 1 (``cfg.loss``), then stage 2 (reprojection)."""
    if cfg.loss not in ("learned", "beta"):
        raise ConfigError(f"--loss must be 'learned' or 'beta' (stage 1); got {cfg.loss!r}",
                          hint="stage 2 always uses the reprojection loss; skip it with --stage2-epochs 0")
    if cfg.stage1_epochs < 0 or cfg.stage2_epochs < 0:
        raise ConfigError("epochs must be >= 0")
    if cfg.stage1_epochs + cfg.stage2_epochs == 0:
        raise ConfigError("both stages have 0 epochs: nothing to train",
                          hint="pass --stage1-epochs N (and optionally --stage2-epochs M)")
    s1_opts = {"norm": cfg.loss_norm}
    if cfg.loss == "beta":
        s1_opts["beta"] = cfg.beta
    return [
        StageSpec("stage1", cfg.loss, int(cfg.stage1_epochs), float(cfg.lr), s1_opts),
        StageSpec("stage2", "reprojection", int(cfg.stage2_epochs), float(cfg.stage2_lr),
                  {"clip": cfg.reproj_clip, "use_K": cfg.use_K}),
    ]


def make_optimizer(model: torch.nn.Module, objective: torch.nn.Module, lr: float, cfg: TrainConfig):
    """Adam over the model (``lr``, ``cfg.weight_decay``) plus, when the loss learns ``sp``/``sq``,
    a group for them at ``cfg.weighting_lr`` without weight decay."""
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr,
               "weight_decay": cfg.weight_decay, "name": "model"}]
    weighting = objective.weighting_parameters() if hasattr(objective, "weighting_parameters") else []
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
