"""Photometric training augmentation (labels untouched).

Only brightness, contrast and saturation change: any geometric change (crop, flip, scale)
would also have to move the pose labels and the intrinsics, and the evaluation transform
must stay exactly the runtime's (:mod:`edgepose.preprocess`). The jitter runs on the whole
batch on the training device; its random factors come from an explicit CPU generator, so a
resumed run draws the same factors.
"""
from __future__ import annotations

import torch

# ITU-R BT.601 luma weights, as PIL and torchvision use for grayscale
_LUMA = (0.299, 0.587, 0.114)


def _factors(n: int, strength: float, generator: torch.Generator) -> torch.Tensor:
    return 1.0 + (torch.rand(n, generator=generator) * 2.0 - 1.0) * float(strength)


def photometric_jitter(images: torch.Tensor, generator: torch.Generator, brightness: float = 0.3,
                       contrast: float = 0.3, saturation: float = 0.3) -> torch.Tensor:
    """Jitter ``images (N, H, W, 3)`` (uint8, or float 0..255); returns float32 0..255.

    Each image gets factors drawn uniformly from ``[1 - s, 1 + s]`` for each strength ``s``:
    brightness scales the pixels, contrast scales them about the image's mean grey, and
    saturation blends each pixel with its own grey. A strength of 0 leaves that step out.
    The generator is always advanced by ``3 * N`` draws so that changing a strength does
    not shift later batches' randomness.
    """
    n = images.shape[0]
    fb = _factors(n, brightness, generator)
    fc = _factors(n, contrast, generator)
    fs = _factors(n, saturation, generator)
    x = images.to(torch.float32)
    shape = (n, 1, 1, 1)
    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
    if brightness > 0:
        x = x * fb.to(x.device).view(shape)
    if contrast > 0:
        mean = (x * luma).sum(-1).mean(dim=(1, 2)).view(shape)
        x = (x - mean) * fc.to(x.device).view(shape) + mean
    if saturation > 0:
        grey = (x * luma).sum(-1, keepdim=True)
        x = (x - grey) * fs.to(x.device).view(shape) + grey
    return x.clamp_(0.0, 255.0)
