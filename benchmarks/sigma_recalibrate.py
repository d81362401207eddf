"""Would refitting sigma's scale on a labelled recording help on the next one? Coverage of
sigma on a held-out part of the test split, with the run's scale and with the scale refitted
on the other parts (the check of a proposed ``edgepose-calibrate`` command, not shipped).

For each finished run (``RUN/final.pt`` as training wrote it) the test split is cut into parts:
its sequences when it has two or more, else two contiguous halves in dataset order. Each part
in turn is held out; the scale is refitted on the other parts with training's estimator
(:func:`edgepose.uncertainty.fit_sigma_scale`), and coverage at 1
and 2 sigma on the held-out part is counted with both scales:

    python benchmarks/sigma_recalibrate.py --run RUN1 --run RUN2 --name sigma_recalibrate

The summary gives each scale's mean distance from nominal (1 and 2 sigma, both outputs,
every held-out part) and how many of those cells lie within 10 points.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.results_file import append_section, load_now, runs_parser, section_title  # noqa: E402
from edgepose.uncertainty import NOMINAL_COVERAGE, fit_sigma_scale  # noqa: E402

OUTPUTS = ("position", "rotation")


def test_parts(frames):
    """``[(name, records)]``: the test split's sequences (two or more), else its two halves."""
    by_seq = {}
    for f in frames:
        by_seq.setdefault(str(getattr(f, "sequence", "") or ""), []).append(f)
    if len(by_seq) >= 2:
        return sorted(by_seq.items())
    half = len(frames) // 2
    return [("first half", frames[:half]), ("second half", frames[half:])]


def part_answers(run: Path):
    """``[(part name, errors (pos, rot), sigma at scale 1 (N, 2))]`` and the run's scale."""
    import torch

    from edgepose.datasets import load_dataset
    from edgepose.train.data import Normalisation, build_cache
    from edgepose.train.finish import frame_errors
    from edgepose.train.model import load_model, read_checkpoint

    info = read_checkpoint(run / "final.pt").get("data") or {}
    model = load_model(run / "final.pt").eval()
    scale = model.sigma_scale.detach().double().numpy().copy()
    ds = load_dataset(info["root"], format=info.get("format"), split_policy=info.get("split_policy"))
    norm = Normalisation(tuple(model.config["position_mean"]), float(model.config["position_scale"]))
    out = []
    for name, frames in test_parts(ds.split("test")):
        cache = build_cache(frames, tuple(model.config["input_size"]), norm, desc=name)
        e_p, e_q, s = frame_errors(model, cache, torch.device("cpu"))
        out.append((name, (e_p, e_q), s / scale))
    return out, scale


def main(argv=None) -> int:
    a = runs_parser(__doc__, "sigma_recalibrate").parse_args(argv)
    load_before = load_now()
    nominal = (100 * NOMINAL_COVERAGE[1], 100 * NOMINAL_COVERAGE[2])
    lines = ["| run | held-out part | frames | output | run's scale: within 1 / 2 sigma % | refitted on the other parts |",
             "|---|---|---|---|---|---|"]
    dist = {"run": [], "refit": []}
    for run in map(Path, a.run):
        parts, scale = part_answers(run)
        for i, (name, err, s1) in enumerate(parts):
            others = [p for j, p in enumerate(parts) if j != i]
            for o, output in enumerate(OUTPUTS):
                fitted = fit_sigma_scale(np.concatenate([p[1][o] for p in others]),
                                         np.concatenate([p[2][:, o] for p in others]))
                cells = []
                for key, c in (("run", scale[o]), ("refit", fitted)):
                    cov = [100 * float(np.mean(err[o] <= k * c * s1[:, o])) for k in (1, 2)]
                    dist[key] += [abs(cov[0] - nominal[0]), abs(cov[1] - nominal[1])]
                    cells.append(f"{cov[0]:.0f} / {cov[1]:.0f}")
                lines.append(f"| {run.name} | {name} | {len(err[o])} | {output} | " + " | ".join(cells) + " |")
    summary = "; ".join(f"{k}: {np.mean(v):.1f} points from nominal on average, {sum(x <= 10 for x in v)} of "
                        f"{len(v)} cells within 10" for k, v in (("run's scale", dist["run"]),
                                                                 ("refitted", dist["refit"])))
    section = (section_title("sigma_recalibrate.py", argv, load_before)
               + f"Nominal {nominal[0]:.0f} / {nominal[1]:.0f} %.\n\n" + "\n".join(lines) + f"\n\n{summary}.")
    append_section(HERE / "results" / f"{a.name}.md",
                   "# Sigma's scale refitted on held-out parts of the test split: the run's scale against the refitted one\n",
                   section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
