"""What the rotation head outputs, and how it becomes a unit quaternion (``--rotation-head``).

Every kind ends in a unit quaternion wxyz inside :meth:`PoseNet.heads` (and inside the
exported graph's FP32 post-processing), so the losses, the pose memory and the output
contract (unit quaternion, ``w >= 0`` after :func:`~edgepose.train.model.canonical_quaternion`)
do not depend on the choice:

``quaternion`` (default, 4 numbers)
    normalised. ``q`` and ``-q`` are one rotation; the losses take the nearer of the two.
``6d`` (6 numbers)
    the first two columns of the rotation matrix, made orthonormal by Gram-Schmidt (Zhou et
    al., CVPR 2019, "On the Continuity of Rotation Representations in Neural Networks": a
    continuous representation, unlike any in four or fewer dimensions), then the matrix's
    quaternion.
``log`` (3 numbers)
    the logarithm of the unit quaternion, ``u = (angle / 2) * axis`` (MapNet, Brahmbhatt et al.,
    CVPR 2018): ``q = (cos |u|, sin |u| u / |u|)``. Three numbers without a norm constraint;
    continuous except at ``|u| = pi / 2`` (180 degrees), which the exponential maps smoothly.

Matrix to quaternion: the four proportional candidates (each row of the outer product
``4 q q^T``) are computed and the one with the largest diagonal term is kept (Shepperd's
method, every step differentiable and exportable as ArgMax + a one-hot sum; no square root
of a possibly negative number).
"""
from __future__ import annotations

from typing import Dict

import torch
from torch.nn.functional import normalize

#: kind -> number of head outputs
ROTATION_HEADS: Dict[str, int] = {"quaternion": 4, "6d": 6, "log": 3}
DEFAULT_ROTATION_HEAD = "quaternion"


def _unit_rows(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors along the last axis: ``v / max(|v|, 1e-8)``, the normalisation the
    quaternion head always had."""
    return normalize(v, dim=-1, eps=1e-8)


def head_size(kind: str) -> int:
    if kind not in ROTATION_HEADS:
        raise ValueError(f"unknown rotation head {kind!r}; expected one of {sorted(ROTATION_HEADS)}")
    return ROTATION_HEADS[kind]


def identity_bias(kind: str) -> torch.Tensor:
    """A bias that makes a zero-weight head output the identity rotation."""
    return {"quaternion": torch.tensor([1.0, 0.0, 0.0, 0.0]),
            "6d": torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            "log": torch.zeros(3)}[kind]


def sixd_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """``(N, 6)`` = two 3-vectors ``a, b`` -> rotation matrices ``(N, 3, 3)`` with columns
    ``e1 = a/|a|``, ``e2 = unit(b - <e1, b> e1)``, ``e3 = e1 x e2``."""
    a, b = x[..., :3], x[..., 3:6]
    e1 = _unit_rows(a)
    e2 = _unit_rows(b - (e1 * b).sum(-1, keepdim=True) * e1)
    e3 = torch.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(N, 3, 3)`` -> unit quaternions ``(N, 4)`` wxyz (either sign)."""
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # row i of 4 q q^T (wxyz): each is q times 4 q_i, largest where q_i is largest
    cand = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], dim=-2)                                                    # (N, 4 candidates, 4)
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                        1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)   # (N, 4) = 4 q_i^2
    # the best candidate by a one-hot mask: ArgMax, Equal and a sum in ONNX (torch.diagonal and
    # gather export with CumSum/index arithmetic that onnxsim cannot fold)
    pick = (diag.argmax(dim=-1, keepdim=True) == torch.arange(4, device=R.device)).to(R.dtype)  # (N, 4)
    q = (cand * pick.unsqueeze(-1)).sum(dim=-2)
    return _unit_rows(q)


def log_to_quaternion(u: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Log quaternions ``(N, 3)`` -> unit quaternions ``(N, 4)``: ``(cos|u|, sin|u| u/|u|)``.

    ``sin|u| / |u|`` is replaced by its Taylor series ``1 - |u|^2/6`` below ``eps`` so value
    and gradient stay finite at ``u = 0``."""
    n2 = (u * u).sum(-1, keepdim=True)
    small = n2 < eps * eps
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    sinc = torch.where(small, 1.0 - n2 / 6.0, torch.sin(n) / n)
    w = torch.where(small, 1.0 - n2 / 2.0, torch.cos(n))
    return _unit_rows(torch.cat([w, u * sinc], dim=-1))


def decode_rotation(raw: torch.Tensor, kind: str) -> torch.Tensor:
    """The head's ``raw (N, head_size(kind))`` -> unit quaternion ``(N, 4)``, either sign."""
    if kind == "quaternion":
        return _unit_rows(raw)
    if kind == "6d":
        return matrix_to_quaternion(sixd_to_matrix(raw))
    if kind == "log":
        return log_to_quaternion(raw)
    raise ValueError(f"unknown rotation head {kind!r}; expected one of {sorted(ROTATION_HEADS)}")
