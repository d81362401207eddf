"""The end of a run: test metrics of each stage, sigma calibration, baselines, files.

After the stages, :func:`finish`

1. evaluates each stage's best model on the test split (the final model is the last stage
   that produced one);
2. fills its pose memory with the training views and chooses how it blends with the regressor
   (:mod:`edgepose.train.memory_fit`; ``regressor.*`` metrics are the model without it); with
   ``--fold-models K`` on the honest answers of short fold trainings instead
   (:mod:`edgepose.train.fold_train`, :mod:`edgepose.train.fold_fit`);
3. calibrates its sigma on honest frames (:func:`calibrate_sigma`; one scale per
   output, :mod:`edgepose.uncertainty`), stores the scale in the model (``sigma_scale``, so
   every backend applies it) and in ``final.pt["calibration"]``;
4. reports, beside the model, the mean-pose and the nearest-neighbour retrieval baselines
   (:mod:`edgepose.train.retrieval`) on the same test frames;
5. writes ``final.pt`` and ``metrics.json``.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch

from edgepose.errors import EdgePoseError
from edgepose.geometry import rotation_error_rad, translation_error
from edgepose.uncertainty import NOMINAL_COVERAGE, calibration, fit_sigma_scale

from .checkpoint import save_checkpoint
from .data import FrameCache
from .evaluate import evaluate, mean_pose_baseline, predict
from .fold_fit import fit_memory_on_folds
from .fold_train import train_folds
from .memory_fit import extend_fitted_memory, fit_memory, sequence_disjoint
from .metrics_log import flatten, write_metrics_json
from .model import PoseNet
from .retrieval import retrieval_baseline
from .run import Run, build_model_for_eval
from .recipe import StageSpec
from .stage import StageOutcome

CALIBRATION_METHOD = ("one scale per output, the chi-3 error model's maximum-likelihood scale on honest frames "
                      "(validation; for an output the memory answers alone, also each fit frame answered by the other folds' views)")


def frame_errors(model: PoseNet, cache: FrameCache, device: torch.device):
    """``(position error m (N,), rotation error rad (N,), sigma (N, 2) [m, rad])`` on ``cache``."""
    p, q, s = predict(model, cache.images, device)
    return translation_error(p, cache.position_m), rotation_error_rad(q, cache.rotation_q), s


def calibrate_sigma(model: PoseNet, val: Optional[FrameCache], device: torch.device,
                    answers=None) -> Dict[str, object]:
    """Fit ``model.sigma_scale`` on honest frames (in place); returns what was done.

    ``answers``: per output ``[(position error m (N,), sigma m (N,)), (rotation error rad (M,),
    sigma rad (M,))]`` of frames the model did not fit, when the caller has them (the pose
    memory's fit: validation frames answered without their own sequence when the test split is
    other sequences, and for an output the memory answers alone also each fit frame answered by
    the others); else the validation frames are predicted here. Without either the scale stays
    1 (``method`` says so).
    """
    with torch.no_grad():
        model.sigma_scale.fill_(1.0)
    nominal = {f"{k}sigma": v for k, v in NOMINAL_COVERAGE.items()}
    if answers is None and (val is None or len(val) < 2):
        return {"method": "none (no validation frames: pass --val-every K)", "scale": [1.0, 1.0], "frames": 0,
                "nominal_coverage": nominal}
    if answers is None:
        e_p, e_q, s = frame_errors(model, val, device)
        answers = [(e_p, s[:, 0]), (e_q, s[:, 1])]
    scale = [fit_sigma_scale(e, s) for e, s in answers]
    with torch.no_grad():
        model.sigma_scale.copy_(torch.tensor(scale, dtype=torch.float32))
    return {"method": CALIBRATION_METHOD, "scale": scale, "frames": int(len(answers[0][0])),
            "frames_per_output": [int(len(e)) for e, _ in answers], "nominal_coverage": nominal}


def uncertainty_summary(model: PoseNet, cache: FrameCache, device: torch.device) -> Dict[str, object]:
    """:func:`edgepose.uncertainty.calibration` of the model's sigma on ``cache``."""
    e_p, e_q, s = frame_errors(model, cache, device)
    return calibration(s, e_p, np.degrees(e_q))


def fit_final_memory(run: Run, model: PoseNet, stage1: Optional[StageSpec]):
    """Step 2 of the module doc: ``(memory info, honest sigma pools)``; the fold models are
    trained here when the recipe asks for them (``fold_models`` > 0, a stage 1 to copy, a memory
    and validation frames to fit)."""
    cfg = run.cfg
    same = sequence_disjoint(run.fit, run.test)
    if (stage1 is not None and stage1.epochs > 0 and cfg.fold_models > 0 and cfg.memory_size > 0
            and run.val is not None and len(run.val) >= 2):
        folds = train_folds(run, stage1, cfg.fold_models, cfg.fold_fraction, by_sequence=same)
        return fit_memory_on_folds(model, run.fit, run.val, run.device, folds, size=cfg.memory_size,
                                   same_sequence_out=same)
    return fit_memory(model, run.fit, run.val, run.device, size=cfg.memory_size, same_sequence_out=same)


def finish(run: Run, outcomes: List[StageOutcome], train_seconds: float,
           stage1: Optional[StageSpec] = None) -> Dict[str, object]:
    """Test-split metrics of stage 1, of the final model and of the baselines; write the files
    (``stage1``: the recipe the fold models copy, none when not given)."""
    cfg, device = run.cfg, run.device
    metrics: Dict[str, object] = {}
    final_state, final_stage = None, None
    for spec_name, outcome in zip(("stage1", "stage2"), outcomes):
        if outcome.best_state is None:
            continue
        if spec_name == "stage1":
            model = build_model_for_eval(cfg, run.norm, outcome.best_state, device)
            metrics.update(flatten("stage1", evaluate(model, run.test, device)))
        metrics[f"run.{spec_name}_best_epoch"] = outcome.best_epoch  # 0: fine-tuning never beat its start
        final_state, final_stage = outcome.best_state, spec_name
    if final_state is None:
        raise EdgePoseError("no stage produced a model", hint="pass --stage1-epochs N or --steps N")
    model = build_model_for_eval(cfg, run.norm, final_state, device)
    metrics.update(flatten("regressor", evaluate(model, run.test, device)))  # before the memory
    memory, answers = fit_final_memory(run, model, stage1)
    calib = calibrate_sigma(model, run.val, device, answers)  # the memory holds the fit frames only here
    memory["size"] = extend_fitted_memory(model, memory, run.fit, run.val, device, size=cfg.memory_size)
    final_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    metrics.update(flatten("test", evaluate(model, run.test, device)))
    metrics.update(flatten("test", uncertainty_summary(model, run.test, device)))
    metrics.update({"calibration.scale_position": calib["scale"][0], "calibration.scale_rotation": calib["scale"][1],
                    "calibration.frames": calib["frames"], "calibration.method": calib["method"],
                    "calibration.frames_per_output": calib.get("frames_per_output")})
    nested = ("val", "sigma", "out_of_fold", "folds")
    metrics.update(flatten("memory", {k: v for k, v in memory.items() if k not in nested}))
    if "folds" in memory:
        metrics.update(flatten("memory.folds", memory["folds"]))
    metrics.update(flatten("memory.sigma", memory.get("sigma") or {}))
    metrics.update(flatten("memory.out_of_fold", memory.get("out_of_fold") or {}))
    metrics.update(flatten("memory.val", memory.get("val") or {}))
    metrics.update(flatten("baseline.mean_pose", mean_pose_baseline(run.fit, run.test)))
    retrieval = retrieval_baseline(cfg.backbone, [run.fit, run.val], run.test, device, tuple(cfg.input_size))
    if retrieval is not None:
        metrics.update(flatten("baseline.retrieval", retrieval))
    metrics.update({"run.final_stage": final_stage, "run.world_size": run.dist.world_size,
                    "run.train_seconds": train_seconds, "run.frames.train": run.counts["train"],
                    "run.frames.val": run.counts["val"], "run.frames.test": run.counts["test"]})
    save_checkpoint(run.out / "final.pt", {"config": model.config, "model": final_state, "data": run.data_info,
                                           "metrics": dict(metrics), "recipe": cfg.to_dict(),
                                           "calibration": calib, "memory": memory})
    write_metrics_json(run.out / "metrics.json", metrics)
    return metrics
