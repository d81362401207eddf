"""How to fit sigma's scale on validation frames: coverage on the test split for each estimator.

For every finished run (``RUN/final.pt`` of ``edgepose-train``), this rebuilds the run's data
split from its recipe, answers the validation frames as the calibration saw them (the pose
memory of the fit frames only, :func:`edgepose.train.memory_fit.fit_memory`) and the test
frames with the final model, all with the raw (uncalibrated) sigma, and then fits one scale
per output on validation with each estimator:

* ``coverage-lsq``: least squares between the observed and the nominal coverage at 1 and 2
  sigma (what edgepose used before);
* ``mean``: ``mean(err / sigma)`` (sigma is trained as the expected error);
* ``chi3-mle``: the chi-3 error model's maximum-likelihood scale
  (:func:`edgepose.uncertainty.fit_sigma_scale`, the default now);
* ``test-oracle``: ``chi3-mle`` fitted on the test frames themselves (what no run can know).

It prints and writes the test coverage at 1 / 2 sigma (nominal 53 / 98 %) per estimator.

    python benchmarks/sigma_calibration.py --run RUN1 --run RUN2 --name sigma_calibration
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.results_file import append_section  # noqa: E402
from edgepose.uncertainty import NOMINAL_COVERAGE, fit_sigma_scale, spearman  # noqa: E402


def coverage_lsq_scale(err: np.ndarray, sigma: np.ndarray) -> float:
    """The earlier estimator: the scale whose coverage at 1 and 2 sigma is nearest nominal
    (least squares over the candidate ratios where the coverage changes; smallest minimiser)."""
    r = np.sort(err / sigma)
    cand = np.unique(np.concatenate([r, r / 2.0]))
    cand = cand[cand > 0]
    loss = np.zeros(cand.size)
    for k in (1, 2):
        loss += (np.searchsorted(r, k * cand, side="right") / r.size - NOMINAL_COVERAGE[k]) ** 2
    return float(cand[int(np.argmin(loss))])


ESTIMATORS = {
    "coverage-lsq": coverage_lsq_scale,
    "mean": lambda e, s: float(np.mean(e / s)),
    "chi3-mle": fit_sigma_scale,
}


def answers(run: Path):
    """``(val (e_p, e_q, sigma), test (e_p, e_q, sigma))`` with raw sigma, and the run's name."""
    import torch

    from edgepose.train import distributed
    from edgepose.train.finish import frame_errors
    from edgepose.train.memory_fit import extend_fitted_memory, fit_memory, sequence_disjoint
    from edgepose.train.model import load_model, read_checkpoint
    from edgepose.train.recipe import TrainConfig
    from edgepose.train.trainer import prepare_data

    cfg = TrainConfig.from_recipe(read_checkpoint(run / "final.pt").get("recipe"))
    fit, val, test, _norm, _info, _counts = prepare_data(cfg, distributed.env_info())
    model = load_model(run / "final.pt")
    device = torch.device("cpu")
    info, val_answers = fit_memory(model, fit, val, device, size=cfg.memory_size,
                                   same_sequence_out=sequence_disjoint(fit, test))  # resets sigma_scale to 1
    if val_answers is None:  # no memory: the regressor's own answers
        e_p, e_q, s = frame_errors(model, val, device)
        val_answers = [(e_p, s[:, 0]), (e_q, s[:, 1])]
    extend_fitted_memory(model, info, fit, val, device, size=cfg.memory_size)
    return val_answers, frame_errors(model, test, device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="a finished training run folder (repeat)")
    p.add_argument("--name", default="sigma_calibration", help="results/<name>.md (a section is appended)")
    a = p.parse_args(argv)
    lines = ["| run | output | val / test frames | " + " | ".join(f"{k}: scale, test within 1/2 sigma %" for k in
                                                              [*ESTIMATORS, "test-oracle"]) + " | Spearman test |",
             "|---|---|---|" + "---|" * (len(ESTIMATORS) + 2)]
    for run in map(Path, a.run):
        pools, (te_p, te_q, ts) = answers(run)
        for j, what in ((0, "position"), (1, "rotation")):
            (ve, vs), te = pools[j], (te_p, te_q)[j]
            cells = []
            for name, fn in [*ESTIMATORS.items(), ("test-oracle", None)]:
                c = fit_sigma_scale(te, ts[:, j]) if fn is None else fn(ve, vs)
                s = c * ts[:, j]
                cells.append(f"x{c:.3f}: {100 * np.mean(te <= s):.0f}/{100 * np.mean(te <= 2 * s):.0f}")
            rho = spearman(ts[:, j], te)
            row = (f"| {run.name} | {what} | {len(ve)} / {len(te)} | " + " | ".join(cells)
                   + f" | {'-' if rho is None or math.isnan(rho) else f'{rho:.2f}'} |")
            lines.append(row)
    section = (f"\n## {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC\n\n"
              f"Command: `python benchmarks/sigma_calibration.py {' '.join(argv or sys.argv[1:])}`\n"
              "Nominal (chi-3 error model): 53 / 98 % within 1 / 2 sigma.\n\n")
    append_section(HERE / "results" / f"{a.name}.md",
                   "# Sigma calibration: estimators of the scale, judged on the test split\n", section + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
