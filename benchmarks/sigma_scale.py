"""Sigma's scale fitted three ways on the same honest frames, and the coverage each gives on test.

For each finished run (``RUN/final.pt``) the post-training fit of this checkout is redone on the
run's weights (:func:`benchmarks.sigma_refit.refit_model`); its calibration pools (per output,
errors and sigma at scale 1 on the frames the model did not fit) are then scaled by

* ``ml``: the chi-3 error model's maximum-likelihood scale (:func:`edgepose.uncertainty.fit_sigma_scale`,
  what training uses);
* ``median``: the median of error / sigma matched to the error model's median;
* ``coverage``: the scale whose coverage on the pool is nearest nominal at 1 and 2 sigma
  together (conformal-style: counted, no distribution assumed).

and the table gives each one's coverage on the test split at 1 and 2 sigma (nominal 53 / 98 %):

    python benchmarks/sigma_scale.py --run RUN1 --run RUN2 --name sigma_scale

It decides nothing; ``benchmarks/results/sigma_blend.md`` holds the rule checked with it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.results_file import append_section, load_now, runs_parser, section_title  # noqa: E402
from benchmarks.sigma_refit import refit_model  # noqa: E402
from edgepose.uncertainty import NOMINAL_COVERAGE, chi3_coverage, fit_sigma_scale  # noqa: E402

METHODS = ("ml", "median", "coverage")


def _chi3_median() -> float:
    """``k`` with ``chi3_coverage(k) = 0.5`` (bisection): the error model's median over its mean."""
    lo, hi = 0.1, 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if chi3_coverage(mid) < 0.5 else (lo, mid)
    return 0.5 * (lo + hi)


def within(err, sigma, k: float) -> float:
    """Fraction of frames with ``err <= k * sigma``."""
    return float(np.mean(np.asarray(err) <= k * np.asarray(sigma)))


def scales(err: np.ndarray, sigma: np.ndarray) -> dict:
    """``{method: scale}`` fitted on one output's pool."""
    r = np.asarray(err, np.float64) / np.asarray(sigma, np.float64)
    r = r[np.isfinite(r)]
    out = {"ml": fit_sigma_scale(err, sigma), "median": float(np.median(r)) / _chi3_median()}
    candidates = np.unique(np.concatenate([r, r / 2.0]))  # where a frame enters 1 or 2 sigma
    miss = [abs(np.mean(r <= c) - NOMINAL_COVERAGE[1]) + abs(np.mean(r <= 2 * c) - NOMINAL_COVERAGE[2])
            for c in candidates]
    out["coverage"] = float(candidates[int(np.argmin(miss))]) if len(candidates) else 1.0
    return out


def run_rows(run: Path):
    """``(table rows, {method: [deviation from nominal, points]})`` of ``run``."""
    import torch

    from edgepose.geometry import rotation_error_rad, translation_error
    from edgepose.train.evaluate import predict

    model, _, test, pools = refit_model(run)
    p, q, s = predict(model, test.images, torch.device("cpu"))
    used = model.sigma_scale.detach().double().numpy()
    test_err = (translation_error(p, test.position_m), rotation_error_rad(q, test.rotation_q))
    rows, dev = [], {m: [] for m in METHODS}
    for j, name in enumerate(("position", "rotation")):
        if pools is None:
            continue
        fitted = scales(*pools[j])
        s1 = s[:, j] / used[j]
        cells = []
        for m in METHODS:
            c1, c2 = (100 * within(test_err[j], fitted[m] * s1, k) for k in (1, 2))
            dev[m] += [abs(c1 - 100 * NOMINAL_COVERAGE[1]), abs(c2 - 100 * NOMINAL_COVERAGE[2])]
            cells.append(f"{c1:.0f} / {c2:.0f}")
        rows.append(f"| {run.name} | {name} | {len(pools[j][0])} | " + " | ".join(cells) + " |")
    return rows, dev


def main(argv=None) -> int:
    a = runs_parser(__doc__, "sigma_scale").parse_args(argv)
    load_before = load_now()
    lines = ["| run | output | pool frames | " + " | ".join(f"{m}: test within 1 / 2 sigma %" for m in METHODS) + " |",
             "|---|---|---|" + "---|" * len(METHODS)]
    total = {m: [] for m in METHODS}
    for run in map(Path, a.run):
        rows, dev = run_rows(run)
        lines += rows
        for m in METHODS:
            total[m] += dev[m]
    summary = "; ".join(f"{m} {np.mean(v):.1f} points, {sum(x <= 10 for x in v)} of {len(v)} within 10"
                        for m, v in total.items() if v)
    section = (section_title("sigma_scale.py", argv, load_before)
               + f"Nominal: {100 * NOMINAL_COVERAGE[1]:.0f} / {100 * NOMINAL_COVERAGE[2]:.0f} %.\n\n"
               + "\n".join(lines) + f"\n\nMean distance from nominal (1 and 2 sigma, both outputs): {summary}.")
    append_section(HERE / "results" / f"{a.name}.md",
                   "# Sigma's scale: maximum likelihood, median and coverage matching on the same honest frames\n",
                   section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
