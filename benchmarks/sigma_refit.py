"""Sigma and the pose memory refitted on finished runs: before (the run's metrics.json) and after.

For every finished run (``RUN/final.pt`` of ``edgepose-train``) this rebuilds the run's data
split from its recipe and repeats what the end of training does after the stages, with the
code of this checkout: the pose memory's fit, the sigma signal weights and the scale on honest
frames, the memory extended with the validation frames (:func:`edgepose.train.finish.finish`'s
steps, same trained weights). It reports on the test split, beside the run's own metrics:
median errors, retrieval, sigma's Spearman, coverage at 1/2/3 sigma, the AUROC of sigma for the
worst 10 % of frames, and each sigma signal's own Spearman with the test errors (what ranks).

    python benchmarks/sigma_refit.py --run RUN1 --run RUN2 --name sigma_refit

Training is not repeated: the regressor's weights are the run's, so the before/after difference
is the post-training fit alone. The validation split is rebuilt by this checkout's rule
(:func:`edgepose.train.data.split_validation`): refit only runs whose split it reproduces (a run
with sequence-disjoint test frames trained before the block validation would find its own
training frames among the validation frames).
"""
from __future__ import annotations

import json
import os
import sys
import time
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.results_file import append_section, load_now, runs_parser, section_title  # noqa: E402
from benchmarks.train_targets import num, pct  # noqa: E402  (the results tables' number formats)
from edgepose.uncertainty import spearman  # noqa: E402


def refit_model(run: Path, fold_models: int = 0):
    """``(model, memory info, test cache, calibration pools)``: ``run``'s trained model with the post-training fit
    of this checkout redone (:func:`edgepose.train.finish.fit_final_memory`, the calibration and
    the memory extended with the validation frames; the run's recipe and data split);
    ``fold_models`` > 0: the fold models are trained here as the run's end would (same seeds)."""
    import torch

    from edgepose.train import distributed
    from edgepose.train.finish import calibrate_sigma, fit_final_memory
    from edgepose.train.memory_fit import extend_fitted_memory
    from edgepose.train.model import load_model, read_checkpoint
    from edgepose.train.recipe import TrainConfig, stages
    from edgepose.train.run import Run
    from edgepose.train.sampling import EpochBatches
    from edgepose.train.signals import StopRequest
    from edgepose.train.metrics_log import MetricsLog
    from edgepose.train.trainer import prepare_data

    cfg = TrainConfig.from_recipe(read_checkpoint(run / "final.pt").get("recipe"), max_points=0, progress=False,
                                  fold_models=fold_models)
    fit, val, test, norm, info, counts = prepare_data(cfg, distributed.env_info())
    model = load_model(run / "final.pt").eval()
    device = torch.device("cpu")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    stage1 = stages(cfg, EpochBatches(len(fit), cfg.batch_size).batches_per_epoch())[0]
    with tempfile.TemporaryDirectory() as tmp:
        state = Run(cfg, distributed.DistInfo(), device, Path(tmp), fit, val, test, norm, info,
                    MetricsLog(Path(tmp) / "metrics.csv"), StopRequest(), True, 0, counts)
        memory, answers = fit_final_memory(state, model, stage1)
    calibrate_sigma(model, val, device, answers)
    extend_fitted_memory(model, memory, fit, val, device, size=cfg.memory_size)
    return model, memory, test, answers


def refit(run: Path, fold_models: int = 0):
    """``(metrics after, signal Spearman on test {name: (pos, rot)}, memory info)`` of ``run``
    (:func:`refit_model`)."""
    import torch

    from edgepose.geometry import rotation_error_rad, translation_error
    from edgepose.train.evaluate import evaluate, predict
    from edgepose.train.finish import uncertainty_summary
    from edgepose.train.memory_fit import fc_features
    from edgepose.train.pose_memory import SIGNAL_WEIGHTS, sigma_signals

    model, memory, test, _ = refit_model(run, fold_models)
    device = torch.device("cpu")
    after = {f"test.{k}": v for k, v in evaluate(model, test, device).items()}
    after.update({f"test.{k}": v for k, v in uncertainty_summary(model, test, device).items()})
    p, q, _ = predict(model, test.images, device)
    e = (translation_error(p, test.position_m), rotation_error_rad(q, test.rotation_q))
    signals = {}
    if model.memory.size:
        with torch.no_grad():
            h = fc_features(model, test.images, device)
            s = sigma_signals(model.memory, h, model.heads(h))
        signals = {name: tuple(spearman(s[name][:, j].numpy(), e[j]) for j in (0, 1)) for name, _ in SIGNAL_WEIGHTS}
    return after, signals, memory


def _row(name, m, label):
    ret = m.get("baseline.retrieval.median_position_m")
    return (f"| {name} | {label} | {num(m.get('test.median_position_m'))} m / {num(m.get('test.median_rotation_deg'), 1)}° "
            f"| {num(ret)} m / {num(m.get('baseline.retrieval.median_rotation_deg'), 1)}° "
            f"| {num(m.get('test.sigma_spearman_position'), 2)} / {num(m.get('test.sigma_spearman_rotation'), 2)} "
            f"| {num(m.get('test.sigma_auroc_worst10_position'), 2)} / {num(m.get('test.sigma_auroc_worst10_rotation'), 2)} "
            f"| {pct(m, 'position')} | {pct(m, 'rotation')} |")


def main(argv=None) -> int:
    p = runs_parser(__doc__, "sigma_refit")
    p.add_argument("--fold-models", type=int, default=0,
                   help="train this many fold models for the fit, as training's end does by default (0: none)")
    a = p.parse_args(argv)
    load_before = load_now()
    lines = ["| run | fit | median test error | retrieval | sigma Spearman pos / rot | AUROC worst 10 % pos / rot "
             "| within 1/2/3 sigma pos % | rot % |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for run in map(Path, a.run):
        before = json.loads((run / "metrics.json").read_text())
        t0 = time.perf_counter()
        after, signals, memory = refit(run, a.fold_models)
        seconds = time.perf_counter() - t0
        after.update({k: v for k, v in before.items() if k.startswith("baseline.")})
        lines += [_row(run.name, before, "run (trained with its own code)"), _row(run.name, after, "refit here")]
        sig = memory.get("sigma") or {}
        notes.append(f"- {run.name}: refit {seconds:.0f} s, blend {memory.get('blend')}, k {memory.get('k')}; "
                     f"out-of-fold answers {json.dumps(memory.get('out_of_fold') or memory.get('folds'))}; sigma weights "
                     f"{json.dumps(sig.get('weights'))} on {sig.get('frames')} honest frames (Spearman there "
                     f"{sig.get('spearman')}); each signal's Spearman with the test error (pos / rot): "
                     + ", ".join(f"{n} {num(v[0], 2)} / {num(v[1], 2)}" for n, v in signals.items()))
    section = (section_title("sigma_refit.py", argv, load_before)
               + "Nominal coverage (chi-3 error model): 53 / 98 / 100 % within 1 / 2 / 3 sigma.\n\n"
               + "\n".join(lines) + "\n\n" + "\n".join(notes))
    append_section(HERE / "results" / f"{a.name}.md",
                   "# Sigma and the pose memory refitted on finished runs (before: the run; after: this checkout)\n",
                   section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
