"""Pose losses of Kendall & Cipolla (CVPR 2017), plus per-frame uncertainty.

Every loss is an ``nn.Module`` whose ``forward(pred, batch)`` returns ``(loss, logs)``: a scalar
tensor and a dict of floats for the metrics log.

``pred`` is the output of :meth:`edgepose.train.model.PoseNet.forward`, in normalised scene
units: ``position (N, 3)`` = ``(p - position_mean) / position_scale``, ``rotation (N, 4)`` unit
wxyz, ``log_sigma (N, 2)``. ``batch`` holds the ground truth in the same units:

* ``position (N, 3)`` normalised, ``rotation (N, 4)`` wxyz (any hemisphere: the losses do not care),
* for :class:`ReprojectionLoss`: ``points (N, M, 3)`` visible scene points, normalised the same
  way as positions, and ``points_mask (N, M)`` bool (variable point counts, padded);
  ``K (N, 3, 3)`` pixels of the network-resolution image when ``use_K=True``.

Norms (all losses): ``Lp`` = per-sample L1 (sum of |.|) or L2 (Euclidean, not squared) norm of
the position error, averaged over the batch; ``Lq`` = the same on the unit quaternions, taken
to the nearer of ``q`` and ``-q`` (:func:`quaternion_distance`: no hemisphere flip, so the
loss has no seam at ``w = 0`` and its gradient always turns the rotation the short way).

The loss used in training is ``pose loss + UncertaintyNLL``; the NLL sees detached errors, so
the uncertainty heads never change the pose recipe. :func:`build_objective` makes that sum.

Learned weighting (``sp``, ``sq``): their equilibrium is ``s* = log E[L]`` (the loss averaged
over batches), so a healthy run shows ``sp`` tracking ``log Lp`` (a little above the mean of
the noisy per-batch ``log Lp``); logs carry ``sp_star``/``sq_star`` = per-batch ``log Lp``,
``log Lq`` to compare.
With a shared small learning rate they barely move (measured by users: ``sq`` -3.00 -> -2.78
after 576 Adam steps at 1e-3, since Adam moves a parameter by at most about ``lr`` per step).
Put :meth:`LearnedWeightingLoss.weighting_parameters` in their own optimizer group with
``lr=RECOMMENDED_WEIGHTING_LR`` and ``weight_decay=0``
(``benchmarks/results/train_grid_dino_weights.png`` shows the trajectories; summary in
``benchmarks/results/train_claims.md``).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from edgepose.errors import ConfigError, EdgePoseError

from .geometry_torch import project_points, quat_normalize, rotation_angle

#: Adam learning rate recommended for ``sp``/``sq`` (own param group, no weight decay):
#: Adam moves a scalar by up to ~lr per step, and ``sq`` typically travels 1-3 units from -3.0
#: to ``log Lq``; at 1e-2 that takes a few hundred steps instead of several thousand at 1e-3.
RECOMMENDED_WEIGHTING_LR = 1e-2

#: default per-point clip of the reprojection residual, in normalised image units (K = identity,
#: 1.0 = the length of the optical axis' unit, ~45 degrees off-axis). 100 is the public
#: re-implementation's ``.clip(0, 100)``: it only cuts the blow-up of points close to the camera
#: plane; a point behind the predicted camera costs exactly ``clip``.
DEFAULT_REPROJECTION_CLIP = 100.0

Logs = Dict[str, float]

_NORMS = ("l1", "l2")


def _check_norm(norm: str) -> str:
    if norm not in _NORMS:
        raise ConfigError(f"loss norm must be one of {_NORMS}; got {norm!r}",
                          hint="use --loss-norm l1 (the paper's learned weighting) or l2")
    return norm


def _need(batch: dict, key: str, shape_tail: tuple, who: str) -> torch.Tensor:
    if key not in batch:
        raise EdgePoseError(f"{who} needs batch[{key!r}] and the batch has only {sorted(batch)}",
                            hint="the dataset must provide it (3-D scene points for reprojection)")
    t = batch[key]
    if shape_tail and tuple(t.shape[-len(shape_tail):]) != shape_tail:
        raise EdgePoseError(f"{who}: batch[{key!r}] should end in shape {shape_tail}, "
                            f"found {tuple(t.shape)}")
    return t


def sample_norm(x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm ``(N,)`` of ``x (N, D)``: L1 = sum of |x|, L2 = Euclidean length."""
    if norm == "l1":
        return x.abs().sum(dim=-1)
    return x.norm(dim=-1)


def quaternion_distance(q_pred: torch.Tensor, q_true: torch.Tensor, norm: str = "l1") -> torch.Tensor:
    """Sign-invariant per-sample distance ``min(|q^ - q|, |q^ + q|)`` ``(N,)`` of unit quaternions.

    ``q`` and ``-q`` are the same rotation, so neither side is flipped onto a hemisphere: the
    nearer of the two representatives is compared. Flipping the prediction onto ``w >= 0``
    first (what PoseNet code commonly does) makes the loss exceed this distance whenever the
    prediction and the truth sit on either side of ``w = 0``, and its gradient then turns the
    rotation the long way round (``tests/train/test_losses.py`` checks both on the seam).
    """
    q_pred = quat_normalize(q_pred)
    q_true = quat_normalize(q_true.to(q_pred.dtype))
    return torch.minimum(sample_norm(q_pred - q_true, norm), sample_norm(q_pred + q_true, norm))


def pose_terms(pred: dict, batch: dict, norm: str = "l1") -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(Lp (N,), Lq (N,))``: position error norm and the sign-invariant
    :func:`quaternion_distance` (see module doc)."""
    p_pred = pred["position"]
    p_true = batch["position"].to(p_pred.dtype)
    return sample_norm(p_pred - p_true, norm), quaternion_distance(pred["rotation"], batch["rotation"], norm)


def pose_errors(pred: dict, batch: dict) -> torch.Tensor:
    """Per-frame metric errors ``(N, 2)``: Euclidean position error (normalised units) and
    rotation angle (rad), the quantities the uncertainty heads predict."""
    p_pred = pred["position"]
    e_p = (p_pred - batch["position"].to(p_pred.dtype)).norm(dim=-1)
    e_q = rotation_angle(pred["rotation"], batch["rotation"].to(p_pred.dtype))
    return torch.stack([e_p, e_q], dim=-1)


def laplace_nll(log_sigma: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """Mean over frames of ``sum_c (log b_c + err_c / b_c)`` with ``b = exp(log_sigma)``.

    ``log_sigma, err (N, 2)``. For non-negative errors the minimiser is ``b = E[err]``, so the
    trained ``exp(log_sigma)`` is the expected error of the frame. The constant ``log 2`` of the
    Laplace density is left out.
    """
    return (log_sigma + err * torch.exp(-log_sigma)).sum(dim=-1).mean()


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


# --------------------------------------------------------------------------- (a) beta
class BetaLoss(nn.Module):
    """PoseNet (2015) loss ``Lp + beta * Lq``.

    Args:
        beta: weight of the quaternion term (public code: 500; tuned per scene in the paper,
            roughly 120-750 indoors and 250-2000 outdoors).
        norm: ``"l1"`` or ``"l2"`` (Euclidean, not squared).

    Logs: ``loss``, ``Lp``, ``Lq``.
    """

    def __init__(self, beta: float = 500.0, norm: str = "l1"):
        super().__init__()
        if not (beta >= 0 and math.isfinite(beta)):
            raise ConfigError(f"beta must be a finite number >= 0; got {beta!r}")
        self.beta = float(beta)
        self.norm = _check_norm(norm)

    def forward(self, pred: dict, batch: dict) -> Tuple[torch.Tensor, Logs]:
        lp, lq = pose_terms(pred, batch, self.norm)
        lp, lq = lp.mean(), lq.mean()
        loss = lp + self.beta * lq
        return loss, {"loss": _f(loss), "Lp": _f(lp), "Lq": _f(lq)}

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}, norm={self.norm!r}"


# --------------------------------------------------------------------------- (b) learned
class LearnedWeightingLoss(nn.Module):
    """Homoscedastic learned weighting ``Lp·exp(-sp) + sp + Lq·exp(-sq) + sq``.

    ``self.sp`` and ``self.sq`` are scalar ``nn.Parameter`` (``s = log`` of the homoscedastic
    Laplace scale), initialised as in the paper and every public re-implementation: 0.0, -3.0.
    Train them in their own optimizer group: see :meth:`weighting_parameters` and
    :data:`RECOMMENDED_WEIGHTING_LR`.

    Logs: ``loss``, ``Lp``, ``Lq``, ``sp``, ``sq``, and ``sp_star = log Lp``, ``sq_star = log Lq``
    (the values ``sp``/``sq`` would take at equilibrium on this batch).
    """

    def __init__(self, sp_init: float = 0.0, sq_init: float = -3.0, norm: str = "l1"):
        super().__init__()
        self.norm = _check_norm(norm)
        self.sp = nn.Parameter(torch.tensor(float(sp_init)))
        self.sq = nn.Parameter(torch.tensor(float(sq_init)))

    def weighting_parameters(self) -> List[nn.Parameter]:
        """``[sp, sq]``, for an optimizer group ``{"params": ..., "lr": RECOMMENDED_WEIGHTING_LR,
        "weight_decay": 0.0}`` (decay would pull them toward 0, i.e. toward beta = 1)."""
        return [self.sp, self.sq]

    def forward(self, pred: dict, batch: dict) -> Tuple[torch.Tensor, Logs]:
        lp, lq = pose_terms(pred, batch, self.norm)
        lp, lq = lp.mean(), lq.mean()
        sp, sq = self.sp.to(lp.dtype), self.sq.to(lq.dtype)
        loss = lp * torch.exp(-sp) + sp + lq * torch.exp(-sq) + sq
        tiny = 1e-12
        return loss, {"loss": _f(loss), "Lp": _f(lp), "Lq": _f(lq), "sp": _f(sp), "sq": _f(sq),
                      "sp_star": math.log(max(_f(lp), tiny)), "sq_star": math.log(max(_f(lq), tiny))}

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}"


# --------------------------------------------------------------------------- (c) reprojection
class ReprojectionLoss(nn.Module):
    """Geometric reprojection loss: mean per-point L1 residual between the projections of each
    image's visible scene points with the true and the predicted pose.

    ``Lg = mean over frames of (1/|G'|) sum_{g in G'} min(|pi(x, q, g) - pi(x^, q^, g)|_1, clip)``

    Args:
        clip: per-point cap of the residual, in normalised image units (K = identity; see
            :data:`DEFAULT_REPROJECTION_CLIP`). With ``use_K`` the cap is converted to pixels
            with each frame's mean focal length, so one value means the same in both modes.
        use_K: project with ``batch["K"] (N, 3, 3)`` (pixels at the network resolution): the
            residual, and the logged ``reproj``, are then in pixels. Default: identity, as in
            the seed and both public re-implementations.
        min_depth: depth (normalised scene units) at or below which a point counts as behind
            a camera.

    Points: ``batch["points"] (N, M, 3)`` with ``batch["points_mask"] (N, M)``. A masked point
    behind the *true* camera is not supervisable and is dropped; a point behind the *predicted*
    camera costs ``clip`` (the most a point can cost: the loss never rewards turning the camera
    away from the scene, and it is continuous as a point crosses the camera plane, since the
    residual reaches the clip there). Those points give no gradient; start from a stage-1
    model (the recipe) so that they are rare. Frames without any usable point are left out of
    the mean; a batch without any gives a zero loss that still backpropagates (to zeros).
    Because projections depend on ``R(q)``, which is quadratic in ``q``, ``q`` and ``-q`` give
    the same loss.

    Logs: ``loss``, ``reproj`` (mean residual), ``frac_behind`` (usable points behind the
    predicted camera), ``frac_clipped`` (residual capped), ``n_points`` (usable points).
    """

    def __init__(self, clip: float = DEFAULT_REPROJECTION_CLIP, use_K: bool = False,
                 min_depth: float = 1e-4):
        super().__init__()
        if not (clip > 0 and math.isfinite(clip)):
            raise ConfigError(f"reprojection clip must be a finite number > 0; got {clip!r}")
        self.clip = float(clip)
        self.use_K = bool(use_K)
        self.min_depth = float(min_depth)

    def forward(self, pred: dict, batch: dict) -> Tuple[torch.Tensor, Logs]:
        who = "ReprojectionLoss"
        pts = _need(batch, "points", (3,), who)
        mask = _need(batch, "points_mask", (), who).bool()
        dtype = pred["position"].dtype
        # padded slots may hold anything: zero them so no NaN reaches the gradient
        pts = torch.where(mask[..., None], pts.to(dtype), torch.zeros((), dtype=dtype))
        K = _need(batch, "K", (3, 3), who) if self.use_K else None
        uv_t, _, valid_t = project_points(pts, batch["position"].to(dtype),
                                          batch["rotation"].to(dtype), K, self.min_depth)
        uv_p, _, valid_p = project_points(pts, pred["position"], pred["rotation"], K, self.min_depth)
        usable = mask & valid_t                                        # (N, M)
        clip = torch.full_like(uv_p[..., 0], self.clip)
        if K is not None:
            Kf = K.to(dtype).expand(pts.shape[0], 3, 3)
            clip = clip * (0.5 * (Kf[:, 0, 0] + Kf[:, 1, 1]))[:, None]
        raw = (uv_p - uv_t.detach()).abs().sum(dim=-1)                  # (N, M)
        res = torch.where(valid_p, torch.minimum(raw, clip), clip)
        res = torch.where(usable, res, torch.zeros_like(res))
        count = usable.sum(dim=-1)                                     # (N,)
        has = count > 0
        per_frame = res.sum(dim=-1) / count.clamp_min(1).to(dtype)
        if bool(has.any()):
            loss = per_frame[has].mean()
        else:
            loss = (pred["position"] * 0.0).sum()
        n = max(int(count.sum()), 1)
        behind = (usable & ~valid_p).sum()
        clipped = (usable & valid_p & (raw >= clip)).sum()
        return loss, {"loss": _f(loss), "reproj": _f(loss), "frac_behind": float(behind) / n,
                      "frac_clipped": float(clipped) / n, "n_points": float(count.sum())}

    def extra_repr(self) -> str:
        return f"clip={self.clip:g}, use_K={self.use_K}, min_depth={self.min_depth:g}"


# --------------------------------------------------------------------------- uncertainty
class UncertaintyNLL(nn.Module):
    """Laplace negative log-likelihood of the per-frame ``log_sigma (N, 2)`` heads.

    The errors are the *detached* Euclidean position error (normalised units) and rotation
    angle (rad) of each frame (:func:`pose_errors`), so this term trains only the uncertainty
    heads and leaves the pose gradients untouched. At the optimum ``exp(log_sigma)`` is the
    expected error; :meth:`PoseNet.to_world` turns it into metres and radians.

    Logs: ``nll``, ``sigma_position``, ``sigma_rotation`` (batch means, normalised units / rad),
    ``err_position``, ``err_rotation`` (batch means of the errors they predict).
    """

    detach_errors = True

    def forward(self, pred: dict, batch: dict) -> Tuple[torch.Tensor, Logs]:
        err = pose_errors(pred, batch)
        if self.detach_errors:
            err = err.detach()
        log_sigma = pred["log_sigma"]
        nll = laplace_nll(log_sigma, err.to(log_sigma.dtype))
        sig = torch.exp(log_sigma.detach()).mean(dim=0)
        e = err.detach().mean(dim=0)
        return nll, {"nll": _f(nll), "sigma_position": _f(sig[0]), "sigma_rotation": _f(sig[1]),
                     "err_position": _f(e[0]), "err_rotation": _f(e[1])}


class HeteroscedasticLoss(UncertaintyNLL):
    """Per-frame learned weighting (Kendall & Gal 2017): the ``log_sigma`` heads replace the
    constants ``sp``, ``sq``::

        mean_i [ e_p,i·exp(-s_p,i) + s_p,i + e_q,i·exp(-s_q,i) + s_q,i ]

    with ``e_p`` the Euclidean position error (normalised units) and ``e_q`` the rotation angle
    (rad), *not* detached: frames the network finds hard are down-weighted. The errors are the
    metric ones (rather than the L1 norms of :class:`LearnedWeightingLoss`) so that
    ``exp(log_sigma)`` keeps its meaning of expected error in metres and radians at inference.
    It trains the uncertainty heads itself: ``trains_uncertainty`` tells the trainer not to add
    :class:`UncertaintyNLL` (adding it would only double the heads' gradient).

    Logs: ``loss`` and those of :class:`UncertaintyNLL`.
    """

    detach_errors = False
    trains_uncertainty = True

    def forward(self, pred: dict, batch: dict) -> Tuple[torch.Tensor, Logs]:
        loss, logs = super().forward(pred, batch)
        logs["loss"] = logs.pop("nll")
        return loss, logs


# --------------------------------------------------------------------------- factory
class PoseObjective(nn.Module):
    """The training objective: a pose loss plus, unless the pose loss trains the uncertainty
    heads itself, :class:`UncertaintyNLL`. Logs are the pose loss's, plus the NLL's and
    ``total``. ``weighting_parameters()`` forwards to the pose loss (empty when it has none).
    """

    def __init__(self, pose_loss: nn.Module, uncertainty: Optional[nn.Module] = None):
        super().__init__()
        self.pose_loss = pose_loss
        if uncertainty is None and not getattr(pose_loss, "trains_uncertainty", False):
            uncertainty = UncertaintyNLL()
        self.uncertainty = uncertainty

    def weighting_parameters(self) -> List[nn.Parameter]:
        fn = getattr(self.pose_loss, "weighting_parameters", None)
        return list(fn()) if fn is not None else []

    def forward(self, pred: dict, batch: dict) -> Tuple[torch.Tensor, Logs]:
        loss, logs = self.pose_loss(pred, batch)
        logs = dict(logs)
        if self.uncertainty is not None:
            nll, ulogs = self.uncertainty(pred, batch)
            loss = loss + nll
            logs.update(ulogs)
        logs["total"] = _f(loss)
        return loss, logs


LOSS_NAMES = ("beta", "learned", "reprojection", "heteroscedastic")
UNCERTAINTY_MODES = ("nll", "heteroscedastic")


def build_loss(name: str, uncertainty: str = "nll", **opts) -> nn.Module:
    """A pose loss by name.

    ``name``: ``"beta"`` (:class:`BetaLoss`; opts ``beta``, ``norm``), ``"learned"``
    (:class:`LearnedWeightingLoss`; ``sp_init``, ``sq_init``, ``norm``), ``"reprojection"``
    (:class:`ReprojectionLoss`; ``clip``, ``use_K``, ``min_depth``) or ``"heteroscedastic"``.
    ``uncertainty="heteroscedastic"`` with ``name="learned"`` gives :class:`HeteroscedasticLoss`
    (the per-frame heads replace ``sp``/``sq``; the ``--uncertainty heteroscedastic`` option);
    ``"reprojection"`` ignores it (the NLL keeps training the heads in stage 2) and ``"beta"``
    refuses it (there are no learned weights to replace).
    Options of ``None`` are ignored, so a CLI can pass its defaults through.
    """
    opts = {k: v for k, v in opts.items() if v is not None}
    if uncertainty not in UNCERTAINTY_MODES:
        raise ConfigError(f"uncertainty must be one of {UNCERTAINTY_MODES}; got {uncertainty!r}")
    if name == "beta" and uncertainty == "heteroscedastic":
        raise ConfigError("--uncertainty heteroscedastic replaces the learned sp/sq of --loss learned; "
                          "the beta loss has no such weights",
                          hint="use --loss learned --uncertainty heteroscedastic, or --uncertainty nll with beta")
    if name == "learned" and uncertainty == "heteroscedastic":
        name = "heteroscedastic"
        opts.pop("sp_init", None), opts.pop("sq_init", None), opts.pop("norm", None)
    classes = {"beta": BetaLoss, "learned": LearnedWeightingLoss, "reprojection": ReprojectionLoss,
               "heteroscedastic": HeteroscedasticLoss}
    if name not in classes:
        raise ConfigError(f"unknown loss {name!r}; expected one of {LOSS_NAMES}",
                          hint="stage 1 uses 'learned' (or 'beta'), stage 2 'reprojection'")
    try:
        return classes[name](**opts)
    except TypeError as exc:
        raise ConfigError(f"loss {name!r} does not take these options: {exc}") from None


def build_objective(name: str, uncertainty: str = "nll", **opts) -> PoseObjective:
    """:class:`PoseObjective` around :func:`build_loss` ``(name, uncertainty, **opts)``."""
    return PoseObjective(build_loss(name, uncertainty, **opts))
