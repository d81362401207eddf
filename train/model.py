"""PoseNet: backbone -> FC (dropout) -> position, rotation and per-frame uncertainty heads.

Input contract (the same in PyTorch, ONNX and TensorRT): ``image`` is ``(N, H, W, 3)`` RGB,
uint8 (or float holding 0..255). Casting, the NHWC->NCHW permute and the backbone's mean/std
normalisation happen inside :meth:`PoseNet.forward`, so preprocessing travels with the weights.

Outputs of :meth:`PoseNet.forward` (a dict, in *normalised* scene units for training):

* ``position`` ``(N, 3)``: ``(p - position_mean) / position_scale``,
* ``rotation`` ``(N, 4)``: unit quaternion wxyz, camera-to-world, on either hemisphere (the
  losses are sign-invariant; flipping onto ``w >= 0`` here would put a seam in the gradient),
* ``log_sigma`` ``(N, 2)``: log of the expected position error (normalised units) and of the
  expected rotation error (radians) of this frame.

:meth:`PoseNet.predict_world` returns world units: position (m), rotation (canonical
``w >= 0``: the output contract), sigma ``(N, 2)``
= ``[expected position error m, expected rotation error rad]`` times the calibration
``sigma_scale``. The scene normalisation (mean, scale of the training split) and the sigma
calibration live in buffers, so export needs nothing else.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from edgepose.errors import EdgePoseError

from .backbones import BACKBONES, create_backbone
from .pose_memory import PoseMemory
from .rotation_head import DEFAULT_ROTATION_HEAD, ROTATION_HEADS, decode_rotation, head_size, identity_bias

CHECKPOINT_FORMAT = "edgepose.checkpoint/1"


def canonical_quaternion(q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise ``q (N, 4)`` to unit length and flip it to ``w >= 0`` (``w == 0`` kept)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(eps)
    sign = torch.where(q[..., :1] < 0, -torch.ones_like(q[..., :1]), torch.ones_like(q[..., :1]))
    return q * sign


class PoseNet(nn.Module):
    """Camera-pose regressor with per-frame uncertainty.

    Args:
        backbone: a name of :data:`edgepose.train.backbones.BACKBONES`.
        pretrained: ``"imagenet"`` or ``"none"``.
        input_size: network resolution ``(W, H)`` in pixels.
        hidden: width of the shared FC layer.
        dropout: dropout after the shared FC layer (training only).
        position_mean: ``(3,)`` metres, mean camera centre of the training split.
        position_scale: metres, RMS distance of training camera centres to their mean.
        rotation_head: what the rotation head outputs (:mod:`edgepose.train.rotation_head`:
            ``quaternion``, ``6d`` or ``log``); every kind becomes a unit quaternion in :meth:`heads`.
    """

    def __init__(self, backbone: str = "efficientnet_lite0", pretrained: str = "imagenet",
                 input_size: Sequence[int] = (128, 96), hidden: int = 1024, dropout: float = 0.2,
                 position_mean: Sequence[float] = (0.0, 0.0, 0.0), position_scale: float = 1.0,
                 memory_size: int = 0, memory_k: int = 1, rotation_head: str = DEFAULT_ROTATION_HEAD):
        super().__init__()
        self.backbone, spec = create_backbone(backbone, pretrained)
        self.config = {
            "backbone": backbone,
            "input_size": [int(input_size[0]), int(input_size[1])],
            "hidden": int(hidden),
            "dropout": float(dropout),
            "position_mean": [float(v) for v in position_mean],
            "position_scale": float(position_scale),
            "pixel_mean": list(spec.mean),
            "pixel_std": list(spec.std),
            "memory_size": int(memory_size),
            "memory_k": int(memory_k),
            "rotation_head": str(rotation_head),
        }
        self.register_buffer("pixel_mean", torch.tensor(spec.mean, dtype=torch.float32) * 255.0)
        self.register_buffer("pixel_std", torch.tensor(spec.std, dtype=torch.float32) * 255.0)
        self.register_buffer("position_mean", torch.tensor(list(position_mean), dtype=torch.float32))
        self.register_buffer("position_scale", torch.tensor([float(position_scale)], dtype=torch.float32))
        # calibration of sigma [position, rotation], fit after training on held-out frames
        # (edgepose.uncertainty.fit_sigma_scale); 1.0 until then, and in checkpoints made before it
        self.register_buffer("sigma_scale", torch.ones(2, dtype=torch.float32))
        self.fc = nn.Sequential(nn.Linear(spec.feature_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.fc_position = nn.Linear(hidden, 3)
        self.rotation_head = str(rotation_head)
        self.fc_rotation = nn.Linear(hidden, head_size(self.rotation_head))
        self.fc_log_sigma = nn.Linear(hidden, 2)
        # views of the training frames, filled after training (edgepose.train.memory_fit); empty until then
        self.memory = PoseMemory(memory_size, hidden, memory_k)
        with torch.no_grad():
            for head in (self.fc_position, self.fc_rotation, self.fc_log_sigma):
                head.weight.mul_(0.1)
                head.bias.zero_()
            self.fc_rotation.bias.copy_(identity_bias(self.rotation_head))  # start near the identity rotation
            self.fc_log_sigma.bias.fill_(-1.0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before sigma calibration existed: an uncalibrated scale of 1
        state_dict.setdefault(prefix + "sigma_scale", torch.ones(2, dtype=torch.float32))
        # checkpoints written before the pose memory existed: an empty memory
        for name, buf in self.memory.named_buffers(recurse=False):
            state_dict.setdefault(f"{prefix}memory.{name}", buf.detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------- input
    def normalize_input(self, image: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, 3)`` 0..255 -> ``(N, 3, H, W)`` float normalised (channels_last strides)."""
        if image.dim() != 4 or image.shape[-1] != 3:
            raise EdgePoseError(f"PoseNet expects images (N, H, W, 3); got {tuple(image.shape)}")
        # Cast first, then permute: TensorRT takes uint8 only as a network input that feeds a
        # Cast directly (onnx-tensorrt ModelImporter.cpp rejects uint8 intermediate tensors;
        # NVIDIA on NVIDIA/TensorRT#3985), so a uint8 Transpose would make every bundle unparsable.
        x = image.to(self.pixel_mean.dtype).permute(0, 3, 1, 2)
        return (x - self.pixel_mean.view(1, 3, 1, 1)) / self.pixel_std.view(1, 3, 1, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))

    def heads(self, h: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {
            "position": self.fc_position(h),
            "rotation": decode_rotation(self.fc_rotation(h), self.rotation_head),
            "log_sigma": self.fc_log_sigma(h),
        }

    def forward(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = self.forward_features(self.normalize_input(image))
        return self.memory(h, self.heads(h))  # the memory acts in eval mode only (pose_memory)

    # ----------------------------------------------------------------- world units
    def to_world(self, out: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(position (N,3) m, rotation (N,4), sigma (N,2) [m, rad])`` from :meth:`forward` output."""
        scale = self.position_scale
        position = out["position"].float() * scale + self.position_mean
        sigma = torch.exp(out["log_sigma"].float()) * (torch.cat([scale, torch.ones_like(scale)]) * self.sigma_scale)
        return position, canonical_quaternion(out["rotation"].float()), sigma

    @torch.no_grad()
    def predict_world(self, image: torch.Tensor):
        """Evaluation-mode prediction in world units; see :meth:`to_world`."""
        was = self.training
        self.eval()
        try:
            return self.to_world(self(image))
        finally:
            self.train(was)

    def normalize_position(self, position_m: torch.Tensor) -> torch.Tensor:
        return (position_m - self.position_mean) / self.position_scale


# --------------------------------------------------------------------------- checkpoints
def _config_problems(config: dict) -> List[str]:
    """What is wrong with a checkpoint's model config (types and ranges), empty when usable."""
    def finite(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    problems = []
    size = config["input_size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(whole(v) and v >= 16 for v in size)):
        problems.append(f"input_size {size!r} (expected [W, H], whole numbers >= 16)")
    if not (whole(config["hidden"]) and config["hidden"] >= 1):
        problems.append(f"hidden {config['hidden']!r} (expected a whole number >= 1)")
    if not (finite(config["dropout"]) and 0 <= config["dropout"] < 1):
        problems.append(f"dropout {config['dropout']!r} (expected 0 <= p < 1)")
    mean = config["position_mean"]
    if not (isinstance(mean, (list, tuple)) and len(mean) == 3 and all(finite(v) for v in mean)):
        problems.append(f"position_mean {mean!r} (expected 3 finite numbers)")
    if not (finite(config["position_scale"]) and config["position_scale"] > 0):
        problems.append(f"position_scale {config['position_scale']!r} (expected a finite number > 0)")
    for key, low in (("memory_size", 0), ("memory_k", 1)):
        if not (whole(config.get(key, low)) and config.get(key, low) >= low):
            problems.append(f"{key} {config[key]!r} (expected a whole number >= {low})")
    kind = config.get("rotation_head", DEFAULT_ROTATION_HEAD)
    if kind not in ROTATION_HEADS:
        problems.append(f"rotation_head {kind!r} (expected one of {', '.join(sorted(ROTATION_HEADS))})")
    return problems


def model_from_config(config: dict, pretrained: str = "none", where: str = "checkpoint") -> PoseNet:
    keys = ("backbone", "input_size", "hidden", "dropout", "position_mean", "position_scale")
    if not isinstance(config, dict):
        raise EdgePoseError(f"{where}: the model config is {type(config).__name__}, expected a dict",
                            hint="it was not written by edgepose-train; retrain")
    missing = [k for k in keys if k not in config]
    if missing:
        raise EdgePoseError(f"{where}: config lacks {missing}", hint="it was not written by edgepose-train")
    if config["backbone"] not in BACKBONES:
        raise EdgePoseError(f"{where} uses backbone {config['backbone']!r}, unknown to this edgepose")
    problems = _config_problems(config)
    if problems:
        raise EdgePoseError(f"{where}: model config has impossible values: " + "; ".join(problems),
                            hint="the file was edited or damaged; use a checkpoint written by edgepose-train")
    # absent in checkpoints made before the memory / the choice of rotation head
    optional = {k: config[k] for k in ("memory_size", "memory_k", "rotation_head") if k in config}
    return PoseNet(pretrained=pretrained, **{k: config[k] for k in keys}, **optional)


def read_checkpoint(path: Union[str, Path]) -> dict:
    """Load a checkpoint dict with ``weights_only=True``; clear errors for missing/corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise EdgePoseError(f"checkpoint not found: {path}",
                            hint="pass a training run folder or its checkpoints/*.pt file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EdgePoseError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}",
                            hint="the file is truncated or not an edgepose checkpoint; retrain or resume") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise EdgePoseError(f"{path} is not an edgepose checkpoint (format {CHECKPOINT_FORMAT!r})",
                            hint="pass a file written by edgepose-train")
    return ckpt


def load_model(path: Union[str, Path], map_location: str = "cpu") -> PoseNet:
    """A :class:`PoseNet` in eval mode from an edgepose checkpoint (``weights_only=True``)."""
    ckpt = read_checkpoint(path)
    if "config" not in ckpt or "model" not in ckpt:
        raise EdgePoseError(f"{path}: the checkpoint has no {'config' if 'config' not in ckpt else 'model'} entry",
                            hint="pass a file written by edgepose-train (RUN/final.pt or RUN/checkpoints/*.pt)")
    model = model_from_config(ckpt["config"], where=str(path))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise EdgePoseError(f"{path}: weights do not fit a {ckpt['config']['backbone']} PoseNet: {exc}",
                            hint="the checkpoint is from another model or edgepose version") from None
    return model.to(map_location).eval()


def resolve_checkpoint(source: Union[str, Path]) -> Path:
    """A checkpoint file from a file path or a training run folder (``RUN/final.pt``)."""
    source = Path(source)
    if source.is_dir():
        for cand in ("final.pt", "checkpoints/stage2_best.pt", "checkpoints/stage1_best.pt"):
            if (source / cand).is_file():
                return source / cand
        raise EdgePoseError(f"{source} holds no checkpoint (looked for final.pt and checkpoints/*_best.pt)",
                            hint=f"train first: edgepose-train DATA --out {source}")
    return source
