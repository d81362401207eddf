"""Sigma's scale refitted on labelled frames like the deployment's (``edgepose-calibrate``).

After training, sigma's scale is fitted on the run's honest frames: validation frames and the
stored views' out-of-fold answers. It can only be as right as those frames are like the frames
the model will meet. Where they are not, the test coverage misses nominal even though a scale
fitted on the test frames would meet it (``benchmarks/results/sigma_oracle.md``: every set
within 10 points of nominal at 1 and 2 sigma). A user with a labelled recording like the
deployment's (another flight with motion capture or a SLAM map, in the training's world frame)
refits the scale on it here:

1. the run's model predicts the frames (the pose memory included, as it answers at run time);
2. the error model's maximum-likelihood scale (:func:`edgepose.uncertainty.fit_sigma_scale`,
   training's estimator) is fitted per output on all of them;
3. honest coverage: the frames are cut into contiguous blocks, each block's coverage is
   counted under a scale fitted on the other blocks (what frames like these will see);
4. ``RUN/final.pt`` is rewritten atomically with the new scale, the previous calibration kept
   under ``calibration["previous"]``. Export then carries it into every backend.

Only the scale changes, not which frames sigma calls hard: its ranking is the model's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from edgepose.datasets import load_dataset
from edgepose.errors import EdgePoseError
from edgepose.uncertainty import NOMINAL_COVERAGE, fit_sigma_scale

from ..checkpoint import save_checkpoint
from ..data import Normalisation, build_cache
from ..finish import frame_errors
from ..model import load_model, read_checkpoint

#: contiguous blocks of the honest (cross-fitted) coverage
BLOCKS = 5
OUTPUTS = ("position", "rotation")
METHOD = "one scale per output, the chi-3 error model's maximum-likelihood scale, refitted by edgepose-calibrate"


def coverage(err: np.ndarray, sigma: np.ndarray) -> Dict[int, float]:
    """``{k: fraction of frames with err <= k * sigma}`` for k = 1, 2, 3."""
    err, sigma = np.asarray(err, np.float64), np.asarray(sigma, np.float64)
    return {k: float(np.mean(err <= k * sigma)) for k in (1, 2, 3)}


def block_ids(n: int, blocks: int = BLOCKS) -> np.ndarray:
    """Frame ``i`` of ``n`` (in recording order) belongs to contiguous block ``ids[i]``; fewer
    blocks when there are fewer than two frames per block."""
    b = max(2, min(blocks, n // 2))
    return np.minimum((np.arange(n) * b) // max(n, 1), b - 1)


def crossfit_coverage(err: np.ndarray, sigma1: np.ndarray, ids: np.ndarray) -> Dict[int, float]:
    """Coverage of each block under the scale fitted on the other blocks, pooled: sigma at
    scale 1 ``sigma1``, errors ``err`` (same units)."""
    hits = {k: 0 for k in (1, 2, 3)}
    for b in np.unique(ids):
        out = ids == b
        c = fit_sigma_scale(err[~out], sigma1[~out])
        for k in hits:
            hits[k] += int(np.sum(err[out] <= k * c * sigma1[out]))
    return {k: v / len(err) for k, v in hits.items()}


def load_frames(data, split: str, input_size: Sequence[int], config: dict, format: Optional[str] = None,
                split_policy=None, progress: bool = False):
    """The labelled frames of ``data``'s ``split`` (``all``: both), in dataset order, loaded
    at the model's input size."""
    ds = load_dataset(data, format=format, split_policy=split_policy, check_images=True)
    frames = list(ds.frames) if split == "all" else ds.split(split)
    return frame_cache(frames, input_size, config, progress, desc=split)


def frame_cache(frames, input_size: Sequence[int], config: dict, progress: bool = False, desc: str = "frames"):
    """``frames`` (dataset records) loaded at the model's input size (its ``config``)."""
    norm = Normalisation(tuple(float(v) for v in config["position_mean"]), float(config["position_scale"]))
    return build_cache(frames, tuple(int(v) for v in input_size), norm, progress=progress, desc=desc)


def refit(run: Path, data, split: str = "test", format: Optional[str] = None, split_policy=None,
          write: bool = True, progress: bool = False, device: str = "cpu") -> Dict[str, object]:
    """Steps 1-4 of the module doc; returns the report (``write`` False: step 4 is skipped)."""
    path = Path(run) / "final.pt"
    ckpt = read_checkpoint(path)
    model = load_model(path).eval()
    old = model.sigma_scale.detach().double().numpy().copy()
    cache = load_frames(data, split, model.config["input_size"], model.config, format, split_policy, progress)
    if len(cache) < 2:
        raise EdgePoseError(f"{data}: {len(cache)} {split} frame(s); a scale needs at least 2",
                            hint="give more labelled frames, or --split all")
    e_p, e_q, s = frame_errors(model, cache, torch.device(device))
    errors = (e_p, e_q)
    sigma1 = [s[:, j] / old[j] for j in (0, 1)]  # sigma at scale 1
    ids = block_ids(len(e_p))
    new = [fit_sigma_scale(errors[j], sigma1[j]) for j in (0, 1)]
    report: Dict[str, object] = {"run": str(run), "data": str(Path(data).resolve()), "split": split,
                                 "frames": int(len(e_p)), "blocks": int(len(np.unique(ids))),
                                 "nominal": {k: float(v) for k, v in NOMINAL_COVERAGE.items()},
                                 "median_error": [float(np.median(e_p)), float(np.degrees(np.median(e_q)))]}
    for j, name in enumerate(OUTPUTS):
        report[name] = {"scale_before": float(old[j]), "scale_after": float(new[j]),
                        "before": coverage(errors[j], old[j] * sigma1[j]),
                        "crossfit": crossfit_coverage(errors[j], sigma1[j], ids),
                        "after_on_these_frames": coverage(errors[j], new[j] * sigma1[j])}
    if write:
        with torch.no_grad():
            model.sigma_scale.copy_(torch.tensor(new, dtype=torch.float32))
        state = dict(ckpt)
        state["model"] = model.state_dict()
        state["calibration"] = {"method": METHOD, "scale": new, "frames": int(len(e_p)),
                                "frames_per_output": [int(len(e_p))] * 2, "data": report["data"],
                                "split": split, "format": format, "split_policy": split_policy,
                                "nominal_coverage": {f"{k}sigma": v for k, v in NOMINAL_COVERAGE.items()},
                                "previous": ckpt.get("calibration")}
        save_checkpoint(path, state)
        report["written"] = str(path)
    return report


def training_overlap(run: Path, data, split: str) -> Optional[str]:
    """A warning when the frames are the run's own training frames (the memory answers them
    from themselves, so their errors are far below a new frame's)."""
    info = read_checkpoint(Path(run) / "final.pt").get("data") or {}
    root = info.get("root")
    if root and Path(root).resolve() == Path(data).resolve() and split in ("train", "all"):
        return (f"{data} is the run's training data and --split {split} includes its training frames: the pose "
                "memory answers them from themselves, so the scale fitted here is too small for new frames")
    return None


def table(report: Dict[str, object]) -> List[str]:
    """The printed comparison: coverage at 1 / 2 / 3 sigma per output, before and after."""
    nominal = report["nominal"]
    rows = [f"{'':10s} {'scale':>17s}  {'within 1 / 2 / 3 sigma (%)':>30s}",
            f"{'nominal':10s} {'':>17s}  {_pcts(nominal):>30s}"]
    for name in OUTPUTS:
        r = report[name]
        rows += [f"{name:10s} {r['scale_before']:8.4f} -> {r['scale_after']:<7.4f}",
                 f"{'  before':10s} {'':>17s}  {_pcts(r['before']):>30s}",
                 f"{'  honest':10s} {'':>17s}  {_pcts(r['crossfit']):>30s}   (each block under a scale from the others)",
                 f"{'  fitted':10s} {'':>17s}  {_pcts(r['after_on_these_frames']):>30s}   (on the frames it was fitted on)"]
    return rows


def _pcts(cov: Dict) -> str:
    return " / ".join(f"{100 * float(cov[k]):.0f}" for k in (1, 2, 3))
