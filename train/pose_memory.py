"""The pose memory: retrieval of the nearest training views inside the model.

Absolute pose regression behaves much like image retrieval (Sattler et al., CVPR 2019), and on
a few dozen views a regressor stays behind simply answering the pose of the most similar
training image. So a finished model carries a memory of its training views: their unit-length
FC features ``(M, hidden)`` and their poses. At inference one matrix product finds the ``k``
most cosine-similar views; their poses, weighted by a softmax of the similarities, give a
second estimate that is blended with the regressor's:

* ``position = p_reg + blend[0] * (p_mem - p_reg)`` (normalised scene units),
* ``rotation = normalize(q_reg + blend[1] * (q_mem - q_reg))`` with ``q_reg`` on ``q_mem``'s
  hemisphere (both unit quaternions; 0 is the regressor, 1 the memory),
* ``sigma^2 = sigma_head^2 + (w * d)^2`` per output, with ``d`` the disagreement of the two
  estimates (``|p_reg - p_mem|``; for rotation the chord ``2 |q_reg - q_mem|``, the angle in
  radians for small angles) and ``w`` the :attr:`disagreement` weight: when regressor and
  memory disagree, at least one of them is wrong.

The blend, ``k``, the temperature and ``w`` are chosen on held-out frames after training
(:mod:`edgepose.train.memory_fit`); a memory of size 0 (every run before it, and
``--memory-size 0``) leaves the regressor's output untouched. The memory applies in eval mode
only: in training mode the model is the pure regressor (a training frame would find itself).
It is plain tensor algebra (MatMul, TopK, Gather, Softmax), exported into the same ONNX graph
as FP32 post-processing (``/post_memory/...``), so every backend gets it and the output
contract (position, unit quaternion ``w >= 0``, sigma) does not change.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

#: temperature that makes the softmax over k neighbours a plain average (similarities are <= 2 apart)
UNIFORM_TEMPERATURE = 1e3


def _hemisphere(q: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``q`` flipped onto the hemisphere of ``ref`` (last dimension 4; ``<q, ref> = 0`` kept)."""
    dot = (q * ref).sum(-1, keepdim=True)
    return q * torch.where(dot < 0, -torch.ones_like(dot), torch.ones_like(dot))


def neighbour_pose(sim: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor, k: int,
                   temperature: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pose of the ``k`` most similar views of each row of ``sim (N, M)``, weighted by a
    softmax of their similarities over ``temperature``: ``(position, rotation, best similarity)``.
    Rotations are averaged on the hemisphere of the nearest view's (a chordal mean)."""
    if torch.onnx.is_in_onnx_export():
        top, idx = torch.topk(sim, k, dim=1)  # ONNX TopK: equal values in index order (the spec)
    else:  # the same order here (torch.topk leaves ties unordered): a degenerate model whose
        # features all point one way must answer the same in PyTorch and ONNX Runtime
        top, idx = torch.sort(sim, dim=1, descending=True, stable=True)
        top, idx = top[:, :k], idx[:, :k]
    w = torch.softmax((top - top[:, :1]) / temperature, dim=1).unsqueeze(-1)
    q = rotation[idx]
    return (w * position[idx]).sum(1), F.normalize((w * _hemisphere(q, q[:, :1])).sum(1), dim=-1), top[:, 0]


class PoseMemory(nn.Module):
    """Training views' features and poses, and how to blend their pose with the regressor's.

    Buffers (saved with the model): ``features (M, dim)`` unit length, ``position (M, 3)``
    normalised scene units, ``rotation (M, 4)`` unit wxyz, ``blend (2,)`` [position, rotation]
    weight of the memory's estimate, ``temperature (1,)`` of the softmax over the ``k``
    neighbours' similarities, ``disagreement (2,)`` weight of the disagreement in sigma.
    """

    def __init__(self, size: int = 0, dim: int = 1024, k: int = 1):
        super().__init__()
        self.k = int(k)
        self.register_buffer("features", torch.zeros(int(size), int(dim)))
        self.register_buffer("position", torch.zeros(int(size), 3))
        self.register_buffer("rotation", torch.zeros(int(size), 4))
        self.register_buffer("blend", torch.zeros(2))
        self.register_buffer("temperature", torch.full((1,), UNIFORM_TEMPERATURE))
        self.register_buffer("disagreement", torch.zeros(2))

    @property
    def size(self) -> int:
        return int(self.features.shape[0])

    def store(self, features: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor, k: int) -> None:
        """Replace the views (``features`` are made unit length here); ``k`` is clipped to the size."""
        if not (features.shape[0] == position.shape[0] == rotation.shape[0]):
            raise ValueError("features, position and rotation need one row per view")
        dev = self.features.device
        self.features = F.normalize(features.detach().float(), dim=-1).to(dev)
        self.position = position.detach().float().to(dev)
        self.rotation = F.normalize(rotation.detach().float(), dim=-1).to(dev)
        self.k = max(1, min(int(k), self.size)) if self.size else 1

    def lookup(self, h: torch.Tensor, exclude: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(position (N, 3), rotation (N, 4), best similarity (N,))`` from the ``k`` nearest views.

        ``exclude (N, M)`` bool: views a query may not use (fitting only: a validation frame must
        not answer itself from its own sequence when the test frames come from other sequences)."""
        sim = F.normalize(h.float(), dim=-1) @ self.features.t()
        if exclude is not None:
            sim = sim.masked_fill(exclude, -3.0)  # below any cosine
        return neighbour_pose(sim, self.position, self.rotation, self.k, self.temperature)

    def forward(self, h: torch.Tensor, out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """:func:`blend_with_memory` in eval mode with a non-empty memory, else ``out`` itself."""
        if self.size == 0 or self.training:
            return out
        return blend_with_memory(self, h, out)


def blend_with_memory(memory: PoseMemory, h: torch.Tensor, out: Dict[str, torch.Tensor],
                      exclude: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """The blended ``position``, ``rotation`` and ``log_sigma`` (see the module doc) from the FC
    features ``h`` and the heads' ``out``. A plain function of the memory's buffers, so that the
    export's own module (``/post_memory``) owns the ONNX nodes it makes."""
    p_mem, q_mem, _ = memory.lookup(h, exclude)
    p_reg = out["position"].float()
    q_reg = _hemisphere(F.normalize(out["rotation"].float(), dim=-1), q_mem)
    position = p_reg + memory.blend[0] * (p_mem - p_reg)
    rotation = F.normalize(q_reg + memory.blend[1] * (q_mem - q_reg), dim=-1)
    d = torch.stack([(p_reg - p_mem).norm(dim=-1), 2.0 * (q_reg - q_mem).norm(dim=-1)], dim=-1)
    var = torch.exp(2.0 * out["log_sigma"].float()) + (memory.disagreement * d) ** 2
    return {"position": position, "rotation": rotation, "log_sigma": 0.5 * torch.log(var)}
