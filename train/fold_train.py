"""Honest errors of the network itself: short fold trainings after the run (issue 24).

Sigma has to learn how hard a frame is from errors on frames the network did not train on. A
ridge head on the final model's features (:mod:`edgepose.train.oof`) is not enough: the
backbone saw every view's label, so its answers are far better than the model's test answers.
:func:`train_folds` therefore trains ``K`` fold models (:data:`DEFAULT_FOLD_MODELS`):

1. the fit frames are dealt to ``K`` folds (:func:`edgepose.train.oof.block_folds`: whole
   sequences when the test split is other sequences, else one view at a time, so a held-out
   view sits between training views as a test frame does);
2. fold model ``f`` is trained on the other folds' frames only, from ImageNet weights with
   stage 1's recipe (loss, learning rate, warm-up, augmentation) for ``fraction`` of stage 1's
   optimiser steps (:data:`DEFAULT_FOLD_FRACTION`), through the same loop as the run's stages
   (:func:`edgepose.train.stage.run_stage`; no validation, its last step is kept, its files go
   to a temporary folder);
3. each fold model's FC features and heads' outputs of every fit frame are kept
   (:class:`FoldAnswers`): its answers on its own held-out fold are honest, and its features of
   the other folds' frames make the memory it would have had (:mod:`edgepose.train.fold_fit`).

The fold models are thrown away; their cost is about ``fraction * K`` of stage 1's time.
``--fold-models K`` turns the step on; it is off by default: measured against the ridge
stand-in it lost more of the issue's measures than it won (benchmarks/results/sigma_folds.md).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from . import distributed
from .data import FrameCache
from .memory_fit import fc_features
from .metrics_log import MetricsLog
from .oof import block_folds
from .recipe import StageSpec
from .run import Run, build_model_for_eval
from .sampling import EpochBatches
from .stage import run_stage

#: fold models of ``--fold-models K`` (the recipe's default is 0, none: benchmarks/results/sigma_folds.md)
DEFAULT_FOLD_MODELS = 3
#: each fold model's share of stage 1's optimiser steps
DEFAULT_FOLD_FRACTION = 1.0 / 3.0
#: stage index of fold ``f`` is this + ``f`` (head initialisation and epoch seeds apart from the run's stages)
FOLD_STAGE_INDEX = 100


@dataclass
class FoldAnswers:
    """What the fold models say about the fit frames (``N`` of them, the run's order).

    ``fold (N,)``: the fold each frame was held out in; per fold model ``f``: ``features[f]
    (N, hidden)`` its FC features of every fit frame, ``heads[f]`` its heads' outputs for every
    fit frame (``position (N, 3)`` normalised units, ``rotation (N, 4)`` unit, ``log_sigma (N, 2)``);
    ``steps`` each fold model's optimiser steps, ``seconds`` the wall time of the whole step.
    """

    fold: np.ndarray
    features: List[torch.Tensor]
    heads: List[Dict[str, torch.Tensor]]
    steps: int
    seconds: float

    def held_out(self, f: int) -> np.ndarray:
        """``(N,)`` bool: the frames fold model ``f`` never trained on."""
        return self.fold == f


def subset_cache(cache: FrameCache, rows: np.ndarray) -> FrameCache:
    """The frames ``rows`` of ``cache`` (a new cache; tensors indexed, not shared)."""
    idx = torch.as_tensor(np.asarray(rows, np.int64))
    seq = None if cache.sequence is None else np.asarray(cache.sequence)[np.asarray(rows, np.int64)]
    return dataclasses.replace(
        cache, images=cache.images.index_select(0, idx), position=cache.position.index_select(0, idx),
        rotation=cache.rotation.index_select(0, idx), K=cache.K.index_select(0, idx),
        points=cache.points.index_select(0, idx), points_mask=cache.points_mask.index_select(0, idx),
        position_m=cache.position_m[rows], rotation_q=cache.rotation_q[rows], sequence=seq)


def fold_spec(stage1: StageSpec, frames: int, batch_size: int, fraction: float) -> StageSpec:
    """Stage 1's recipe for a fold model trained on ``frames`` frames: whole epochs of that
    subset covering ``fraction`` of stage 1's steps (at least one)."""
    per_epoch = EpochBatches(frames, batch_size).batches_per_epoch()
    steps = max(1, int(round(stage1.steps * float(fraction))))
    return dataclasses.replace(stage1, name="fold", epochs=max(1, -(-steps // per_epoch)), steps_per_epoch=per_epoch)


def train_folds(run: Run, stage1: StageSpec, k: int = DEFAULT_FOLD_MODELS, fraction: float = DEFAULT_FOLD_FRACTION,
                by_sequence: bool = False) -> FoldAnswers:
    """Train ``k`` fold models of ``run`` (module doc) and collect their answers on every fit frame."""
    t0 = time.perf_counter()
    fit = run.fit
    seq = None if fit.sequence is None else list(fit.sequence)
    fold = block_folds(len(fit), k, sequence=seq, by_sequence=by_sequence)
    features, heads, steps = [], [], 0
    with tempfile.TemporaryDirectory(prefix="edgepose-folds-") as tmp:
        for f in range(int(fold.max()) + 1):
            rows = np.flatnonzero(fold != f)
            out = Path(tmp) / f"fold{f}"
            out.mkdir()
            sub = dataclasses.replace(run, fit=subset_cache(fit, rows), val=None, out=out,
                                      log=MetricsLog(out / "metrics.csv"), dist=distributed.DistInfo())
            spec = fold_spec(stage1, len(rows), run.cfg.batch_size, fraction)
            t_fold = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the fold's epoch lines are not the run's
                outcome = run_stage(sub, spec, FOLD_STAGE_INDEX + f, None, None)
            model = build_model_for_eval(run.cfg, run.norm, outcome.best_state, run.device)
            h = fc_features(model, fit.images, run.device)
            with torch.no_grad():
                o = model.heads(h.to(run.device))
            features.append(h)
            heads.append({name: o[name].float().cpu() for name in ("position", "rotation", "log_sigma")})
            steps = spec.steps
            run.say(f"fold {f + 1}/{int(fold.max()) + 1}: {spec.steps} steps on {len(rows)} views, "
                    f"answers {int((fold == f).sum())} held-out views ({time.perf_counter() - t_fold:.0f} s)")
    return FoldAnswers(fold, features, heads, steps, time.perf_counter() - t0)
