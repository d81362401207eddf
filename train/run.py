"""What the stages of one training run share (:class:`Run`), and the model they build."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import torch

from . import distributed
from .data import FrameCache, Normalisation
from .metrics_log import MetricsLog
from .model import PoseNet, model_from_config
from .recipe import TrainConfig
from .signals import StopRequest


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
    last_save: float = field(default_factory=time.monotonic)  # wall clock of the last resume checkpoint

    def say(self, text: str) -> None:
        if self.dist.is_main:
            print(text, flush=True)

    def checkpoint_due(self) -> bool:
        """Whether ``checkpoint_minutes`` of wall time have passed since the last checkpoint."""
        return time.monotonic() - self.last_save >= 60.0 * max(0.0, self.cfg.checkpoint_minutes)


def build_model(cfg: TrainConfig, norm: Normalisation) -> PoseNet:
    return PoseNet(backbone=cfg.backbone, pretrained=cfg.pretrained, input_size=tuple(cfg.input_size),
                   hidden=cfg.hidden, dropout=cfg.dropout, position_mean=norm.mean, position_scale=norm.scale,
                   rotation_head=cfg.rotation_head)


def build_model_for_eval(cfg: TrainConfig, norm: Normalisation, state: Dict, device: torch.device) -> PoseNet:
    """A PoseNet holding ``state`` (no pretrained weights are loaded: ``state`` has them all)."""
    model = model_from_config({"backbone": cfg.backbone, "input_size": list(cfg.input_size), "hidden": cfg.hidden,
                               "dropout": cfg.dropout, "position_mean": list(norm.mean),
                               "position_scale": norm.scale, "rotation_head": cfg.rotation_head})
    model.load_state_dict(state)
    return model.to(device).eval()
