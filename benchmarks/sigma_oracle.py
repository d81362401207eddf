"""How far a sigma that ranks frames by their distance from the stored views could go (issue 24).

A frame is hard when its true pose lies far from every training view: the regressor and the
pose memory can only answer near the poses they were given. This benchmark measures that ceiling
and what the runtime can see of it. For each finished run (``RUN/final.pt``; the post-training
fit of this checkout redone on the run's weights, :func:`benchmarks.sigma_refit.refit_model`)
and its test split it computes, per frame,

* the **oracle**: the true pose's distance to the stored views (training and validation), the
  mean over the ``K`` nearest of ``position distance / median spacing + angle / 30 deg``; it
  needs the ground truth, so no sigma can use it, but it says how much of the error's rank
  novelty explains;
* the same distance from the **predicted** pose (what a sigma could compute in the graph);
* the distance to the nearest stored view in the model's FC **features** (cosine);
* the distance to the nearest stored view as a **tiny image** (8x6 RGB, mean removed, cosine);
* the model's own **sigma**;

and reports each one's Spearman with the position error, the rotation error and the oracle.
A second table asks whether sigma's scale is what keeps coverage from nominal: the scale is
chosen on the test frames themselves (the one whose coverage at 1 and 2 sigma is nearest
nominal, worse of the two), for today's sigma and for a constant sigma (no ranking at all):

    python benchmarks/sigma_oracle.py --run RUN1 --run RUN2 --name sigma_oracle

It decides nothing; it says whether a novelty signal is worth building for a set.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.results_file import append_section, load_now, runs_parser, section_title  # noqa: E402
from edgepose.geometry import rotation_error_rad, translation_error  # noqa: E402
from edgepose.uncertainty import NOMINAL_COVERAGE, spearman  # noqa: E402

#: stored views averaged over, and the angle that weighs as much as one median spacing
K = 5
ANGLE_DEG = 30.0
#: tiny image (width, height)
TINY = (8, 6)


def median_spacing(P: np.ndarray) -> float:
    """The median distance between two stored positions ``P (M, 3)``."""
    P = np.asarray(P, np.float64)
    d = translation_error(P[:, None], P[None])
    return float(np.median(d[np.triu_indices(len(P), 1)]))


def pose_novelty(p, q, P, Q, spacing: float, k: int = K, angle_deg: float = ANGLE_DEG) -> np.ndarray:
    """Mean over the ``k`` nearest stored poses ``(P, Q)`` of ``|p - P| / spacing + angle / angle_deg``
    for each pose ``(p (N, 3), q (N, 4))``: ``(N,)``."""
    p, q, P, Q = (np.asarray(a, np.float64) for a in (p, q, P, Q))
    comb = (translation_error(p[:, None], P[None]) / spacing
            + rotation_error_rad(q[:, None], Q[None]) / np.radians(angle_deg))  # each (N, M); q and -q alike
    return np.sort(comb, axis=1)[:, :min(k, comb.shape[1])].mean(axis=1)


def nearest_cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``1 - max cos`` from each row of ``a (N, d)`` to the rows of ``b (M, d)``."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - (a @ b.T).max(axis=1)


def tiny_images(images) -> np.ndarray:
    """Each image of ``images (N, 3, H, W)`` pooled to ``TINY``, flattened, its mean removed."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(images)).double()
    t = F.adaptive_avg_pool2d(x, TINY[::-1]).flatten(1).numpy()
    return t - t.mean(axis=1, keepdims=True)


def best_scale_coverage(err, sigma):
    """``(within 1 sigma, within 2 sigma)`` [%] of ``err`` under ``c * sigma`` with the scale ``c``
    whose worse distance from nominal at 1 and 2 sigma is smallest (chosen on these frames)."""
    r = np.asarray(err, np.float64) / np.asarray(sigma, np.float64)
    best = None
    for c in np.unique(np.concatenate([r, r / 2.0])):
        c1, c2 = 100 * np.mean(r <= c), 100 * np.mean(r <= 2 * c)
        miss = max(abs(c1 - 100 * NOMINAL_COVERAGE[1]), abs(c2 - 100 * NOMINAL_COVERAGE[2]))
        if best is None or miss < best[0]:
            best = (miss, c1, c2)
    return best[1], best[2]


def run_signals(run: Path):
    """``(test errors (pos, rot), {signal: values (N,)})`` of ``run``'s test split."""
    import torch

    from benchmarks.sigma_refit import refit_model
    from edgepose.train.evaluate import predict
    from edgepose.train.memory_fit import fc_features

    model, _, test, _ = refit_model(run)
    stored = stored_views(run)
    device = torch.device("cpu")
    p, q, s = predict(model, test.images, device)
    err = (translation_error(p, test.position_m), rotation_error_rad(q, test.rotation_q))
    P, Q, images = stored
    spacing = median_spacing(P)
    with torch.no_grad():
        h_test = fc_features(model, test.images, device).double().numpy()
        h_stored = fc_features(model, torch.as_tensor(images), device).double().numpy()
    s = np.asarray(s)
    signals = {
        "oracle: true pose's distance to the stored views": pose_novelty(test.position_m, test.rotation_q, P, Q, spacing),
        "predicted pose's distance to the stored views": pose_novelty(np.asarray(p), np.asarray(q), P, Q, spacing),
        "FC feature distance to the nearest view": nearest_cosine_distance(h_test, h_stored),
        "tiny-image distance to the nearest view": nearest_cosine_distance(tiny_images(test.images), tiny_images(images)),
        "the model's sigma (position's)": s[:, 0],
        "the model's sigma (rotation's)": s[:, 1],
    }
    return err, signals


def stored_views(run: Path):
    """``(positions (M, 3), quaternions (M, 4), images)`` of the run's training and validation views."""
    from edgepose.train import distributed
    from edgepose.train.model import read_checkpoint
    from edgepose.train.recipe import TrainConfig
    from edgepose.train.trainer import prepare_data

    cfg = TrainConfig.from_recipe(read_checkpoint(run / "final.pt").get("recipe"), max_points=0, progress=False)
    fit, val = prepare_data(cfg, distributed.env_info())[:2]
    parts = [fit] + ([val] if len(val) else [])
    return tuple(np.concatenate([np.asarray(getattr(c, name)) for c in parts])
                 for name in ("position_m", "rotation_q", "images"))


def _cell(a, b) -> str:
    r = spearman(a, b)
    return "-" if r is None else f"{r:.2f}"


def main(argv=None) -> int:
    a = runs_parser(__doc__, "sigma_oracle").parse_args(argv)
    load_before = load_now()
    lines = ["| run | test frames | signal | Spearman with position error | with rotation error | with the oracle |",
             "|---|---|---|---|---|---|"]
    scale_lines = ["| run | output | today's sigma, best scale: within 1 / 2 sigma % | constant sigma, best scale |",
                   "|---|---|---|---|"]
    for run in map(Path, a.run):
        (ep, eq), signals = run_signals(run)
        oracle = next(iter(signals.values()))
        for name, v in signals.items():
            lines.append(f"| {run.name} | {len(ep)} | {name} | {_cell(v, ep)} | {_cell(v, eq)} | {_cell(v, oracle)} |")
        for name, e, sig in (("position", ep, signals["the model's sigma (position's)"]),
                             ("rotation", eq, signals["the model's sigma (rotation's)"])):
            cells = ["%.0f / %.0f" % best_scale_coverage(e, x) for x in (sig, np.ones_like(sig))]
            scale_lines.append(f"| {run.name} | {name} | " + " | ".join(cells) + " |")
    section = (section_title("sigma_oracle.py", argv, load_before)
               + f"Distance: mean over the {K} nearest stored views of position / median spacing + angle / "
               + f"{ANGLE_DEG:.0f} deg; tiny image {TINY[0]}x{TINY[1]} RGB.\n\n" + "\n".join(lines)
               + f"\n\nThe scale chosen on the test frames themselves (nominal {100 * NOMINAL_COVERAGE[1]:.0f} / "
               + f"{100 * NOMINAL_COVERAGE[2]:.0f} %):\n\n" + "\n".join(scale_lines))
    append_section(HERE / "results" / f"{a.name}.md",
                   "# Sigma's ceiling from novelty: the true pose's distance to the stored views, and what the runtime sees of it\n",
                   section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
