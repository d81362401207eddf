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
* ``sigma^2 = (a * sigma_head)^2 + (w * d)^2 + (b * s)^2 + (c * f)^2`` per output, signals that
  rise on hard frames: ``sigma_head`` the heteroscedastic head's, ``d`` the disagreement of
  the two estimates (``|p_reg - p_mem|``; for rotation the chord ``2 |q_reg - q_mem|``, the
  angle in radians for small angles: when regressor and memory disagree, at least one of them
  is wrong), ``s`` the spread of the :data:`SPREAD_K` nearest views' poses (mean distance to
  their mean; for rotation the chord as above: neighbours that disagree make an ambiguous
  view), ``f = 1 - cos`` the feature distance to the nearest view (a frame unlike every
  training view), and ``+ (e * n)^2`` with ``n`` the neighbour error: the mean of the ``k``
  nearest views' own honest errors (:attr:`view_error`, out-of-fold answers,
  :mod:`edgepose.train.oof`), weighted as their poses are (hard places stay hard), and
  ``+ (g * D)^2`` with ``D = exp(unit(h) @ difficulty_coef + difficulty_bias)`` the difficulty
  head: a linear map of the unit FC features to the log of the error the frame is expected to
  have, fitted in closed form on honest errors of fold models (:mod:`edgepose.train.difficulty`;
  one MatMul, Add, Exp). The weights ``a`` (:attr:`head_weight`, 1 by default), ``w``
  (:attr:`disagreement`), ``b`` (:attr:`spread_weight`), ``c`` (:attr:`distance_weight`, units
  per unit of cosine distance), ``e`` (:attr:`neighbour_error_weight`) and ``g``
  (:attr:`difficulty_weight`) are 0 until a fit chooses them.

The blend, ``k``, the temperature and the sigma weights are chosen on held-out frames after training
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
#: nearest views whose pose spread is a sigma signal (fewer when the memory holds fewer)
SPREAD_K = 4


def _hemisphere(q: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``q`` flipped onto the hemisphere of ``ref`` (last dimension 4; ``<q, ref> = 0`` kept)."""
    dot = (q * ref).sum(-1, keepdim=True)
    return q * torch.where(dot < 0, -torch.ones_like(dot), torch.ones_like(dot))


def nearest_views(sim: torch.Tensor, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(similarity (N, n), index (N, n))`` of the ``n`` most similar views of each row of ``sim (N, M)``."""
    if torch.onnx.is_in_onnx_export():
        return torch.topk(sim, n, dim=1)  # ONNX TopK: equal values in index order (the spec)
    # the same order here (torch.topk leaves ties unordered): a degenerate model whose
    # features all point one way must answer the same in PyTorch and ONNX Runtime
    top, idx = torch.sort(sim, dim=1, descending=True, stable=True)
    return top[:, :n], idx[:, :n]


def neighbour_weights(top: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """``(N, k)`` softmax weights of the similarities ``top (N, k)`` (best first) over ``temperature``."""
    return torch.softmax((top - top[:, :1]) / temperature, dim=1)


def weighted_pose(top: torch.Tensor, idx: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor,
                  temperature: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pose of the views ``idx (N, k)`` (similarities ``top (N, k)``, best first), weighted by
    a softmax of the similarities over ``temperature``: ``(position, rotation, best similarity)``.
    Rotations are averaged on the hemisphere of the nearest view's (a chordal mean)."""
    w = neighbour_weights(top, temperature).unsqueeze(-1)
    q = rotation[idx]
    return (w * position[idx]).sum(1), F.normalize((w * _hemisphere(q, q[:, :1])).sum(1), dim=-1), top[:, 0]


def neighbour_pose(sim: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor, k: int,
                   temperature: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`weighted_pose` of the ``k`` most similar views of each row of ``sim (N, M)``."""
    top, idx = nearest_views(sim, k)
    return weighted_pose(top, idx, position, rotation, temperature)


def neighbour_spread(idx: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """``(N, 2)``: how far the views ``idx (N, n)`` lie from their mean pose, [position (mean
    distance, position units), rotation (mean chord x 2 on the nearest view's hemisphere, ~rad)]."""
    p = position[idx]
    q = rotation[idx]
    q = _hemisphere(q, q[:, :1])
    sp = (p - p.mean(1, keepdim=True)).norm(dim=-1).mean(1)
    sq = 2.0 * (q - F.normalize(q.mean(1), dim=-1).unsqueeze(1)).norm(dim=-1).mean(1)
    return torch.stack([sp, sq], dim=-1)


class PoseMemory(nn.Module):
    """Training views' features and poses, and how to blend their pose with the regressor's.

    Buffers (saved with the model): ``features (M, dim)`` unit length, ``position (M, 3)``
    normalised scene units, ``rotation (M, 4)`` unit wxyz, ``blend (2,)`` [position, rotation]
    weight of the memory's estimate, ``temperature (1,)`` of the softmax over the ``k``
    neighbours' similarities; ``view_error (M, 2)`` each view's honest error [position units,
    rad] (zeros until a fit stores them); sigma's weights [position, rotation] (module doc):
    ``head_weight (2,)``, ``disagreement (2,)``, ``spread_weight (2,)``, ``distance_weight (2,)``,
    ``neighbour_error_weight (2,)``; the difficulty head ``difficulty_coef (dim, 2)``,
    ``difficulty_bias (2,)`` (log of [position units, rad]) and its weight ``difficulty_weight (2,)``.
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
        self.register_buffer("head_weight", torch.ones(2))
        self.register_buffer("spread_weight", torch.zeros(2))
        self.register_buffer("distance_weight", torch.zeros(2))
        self.register_buffer("view_error", torch.zeros(int(size), 2))
        self.register_buffer("neighbour_error_weight", torch.zeros(2))
        self.register_buffer("difficulty_coef", torch.zeros(int(dim), 2))
        self.register_buffer("difficulty_bias", torch.zeros(2))
        self.register_buffer("difficulty_weight", torch.zeros(2))

    @property
    def size(self) -> int:
        return int(self.features.shape[0])

    def store(self, features: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor, k: int,
              view_error: Optional[torch.Tensor] = None) -> None:
        """Replace the views (``features`` are made unit length here); ``k`` is clipped to the size;
        ``view_error (M, 2)`` the views' honest errors (zeros when not given)."""
        if view_error is None:
            view_error = torch.zeros(position.shape[0], 2)
        if not (features.shape[0] == position.shape[0] == rotation.shape[0] == view_error.shape[0]):
            raise ValueError("features, position, rotation and view_error need one row per view")
        dev = self.features.device
        self.features = F.normalize(features.detach().float(), dim=-1).to(dev)
        self.position = position.detach().float().to(dev)
        self.rotation = F.normalize(rotation.detach().float(), dim=-1).to(dev)
        self.view_error = view_error.detach().float().to(dev)
        self.k = max(1, min(int(k), self.size)) if self.size else 1

    def similarity(self, h: torch.Tensor, exclude: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(N, M)`` cosine similarity of the features ``h (N, dim)`` to the stored views.

        ``exclude (N, M)`` bool: views a query may not use (fitting only: a frame must not answer
        itself, nor from its own sequence when the test frames come from other sequences)."""
        sim = F.normalize(h.float(), dim=-1) @ self.features.t()
        return sim if exclude is None else sim.masked_fill(exclude, -3.0)  # below any cosine

    def lookup(self, h: torch.Tensor, exclude: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(position (N, 3), rotation (N, 4), best similarity (N,))`` from the ``k`` nearest views."""
        return neighbour_pose(self.similarity(h, exclude), self.position, self.rotation, self.k, self.temperature)

    def lookup_signals(self, h: torch.Tensor, exclude: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """:meth:`lookup` and sigma's memory signals from one search: ``position (N, 3)``,
        ``rotation (N, 4)``, ``spread (N, 2)`` (:func:`neighbour_spread` of the :data:`SPREAD_K`
        nearest), ``distance (N,)`` (1 - cosine similarity of the nearest view), ``neighbour_error
        (N, 2)`` (the ``k`` nearest views' :attr:`view_error`, weighted as their poses)."""
        n_spread = min(SPREAD_K, self.size)
        top, idx = nearest_views(self.similarity(h, exclude), max(self.k, n_spread))
        top_k, idx_k = top[:, : self.k], idx[:, : self.k]
        p, q, best = weighted_pose(top_k, idx_k, self.position, self.rotation, self.temperature)
        w = neighbour_weights(top_k, self.temperature).unsqueeze(-1)
        return {"position": p, "rotation": q, "spread": neighbour_spread(idx[:, :n_spread], self.position, self.rotation),
                "distance": 1.0 - best, "neighbour_error": (w * self.view_error[idx_k]).sum(1)}

    def forward(self, h: torch.Tensor, out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """:func:`blend_with_memory` in eval mode with a non-empty memory, else ``out`` itself."""
        if self.size == 0 or self.training:
            return out
        return blend_with_memory(self, h, out)


def sigma_signals(memory: PoseMemory, h: torch.Tensor, out: Dict[str, torch.Tensor],
                  exclude: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """What the blend and sigma are made of, from the FC features ``h`` and the heads' ``out``:
    the memory's ``p_mem (N, 3)``, ``q_mem (N, 4)``, the regressor's ``p_reg``, ``q_reg`` (on
    ``q_mem``'s hemisphere), and sigma's signals (module doc), each ``(N, 2)`` [position units,
    ~rad]: ``head`` (the head's sigma), ``disagreement``, ``spread``, ``distance`` (the same
    feature distance in both columns), ``neighbour_error``, ``difficulty`` (the difficulty head)."""
    mem = memory.lookup_signals(h, exclude)
    p_mem, q_mem = mem["position"], mem["rotation"]
    p_reg = out["position"].float()
    q_reg = _hemisphere(F.normalize(out["rotation"].float(), dim=-1), q_mem)
    d = torch.stack([(p_reg - p_mem).norm(dim=-1), 2.0 * (q_reg - q_mem).norm(dim=-1)], dim=-1)
    return {"p_mem": p_mem, "q_mem": q_mem, "p_reg": p_reg, "q_reg": q_reg,
            "head": torch.exp(out["log_sigma"].float()), "disagreement": d, "spread": mem["spread"],
            "distance": mem["distance"].unsqueeze(-1).expand(-1, 2), "neighbour_error": mem["neighbour_error"],
            "difficulty": torch.exp(F.normalize(h.float(), dim=-1) @ memory.difficulty_coef + memory.difficulty_bias)}


#: sigma's signals and the memory buffer holding each one's weight
SIGNAL_WEIGHTS = (("head", "head_weight"), ("disagreement", "disagreement"), ("spread", "spread_weight"),
                  ("distance", "distance_weight"), ("neighbour_error", "neighbour_error_weight"),
                  ("difficulty", "difficulty_weight"))


def blend_with_memory(memory: PoseMemory, h: torch.Tensor, out: Dict[str, torch.Tensor],
                      exclude: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """The blended ``position``, ``rotation`` and ``log_sigma`` (see the module doc) from the FC
    features ``h`` and the heads' ``out``. A plain function of the memory's buffers, so that the
    export's own module (``/post_memory``) owns the ONNX nodes it makes."""
    s = sigma_signals(memory, h, out, exclude)
    p_reg, q_reg = s["p_reg"], s["q_reg"]
    position = p_reg + memory.blend[0] * (s["p_mem"] - p_reg)
    rotation = F.normalize(q_reg + memory.blend[1] * (s["q_mem"] - q_reg), dim=-1)
    var = sum((getattr(memory, buf) * s[name]) ** 2 for name, buf in SIGNAL_WEIGHTS)
    return {"position": position, "rotation": rotation, "log_sigma": 0.5 * torch.log(var.clamp_min(1e-30))}
