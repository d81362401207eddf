"""Regressor vs retrieval, and sigma calibration, on frozen ImageNet features (cheap proxy).

The full-network targets (``train_targets.py``: ``edgepose-train`` with default flags) need
~600 optimiser steps of the whole network per set, which a shared 2-core CPU may not give in
time. This proxy keeps everything but the backbone: the trainer's own split (every 10th
training frame held out for validation), the default step budget of stage 1
(``edgepose.train.recipe.step_budget``), the training objective (learned weighting + the
uncertainty NLL), the retrieval baseline's features (the same ImageNet backbone, pooled,
cosine), and the sigma calibration of ``edgepose.train.finish`` (one scale per output fitted
on the validation frames). Only the FC layer and the heads train, on features computed once.

    python benchmarks/train_frozen_targets.py --data ../shared/data/middlebury_dino/dino \\
        --data /tmp/dino8 --data runs/demo/scene --name train_frozen_targets
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import backbone_features, head_forward, machine_line  # noqa: E402
from train_loss_grid import train_heads  # noqa: E402

from edgepose.datasets import load_dataset  # noqa: E402
from edgepose.geometry import rotation_error_rad, translation_error  # noqa: E402
from edgepose.train.data import Normalisation, build_cache, split_validation  # noqa: E402
from edgepose.train.evaluate import mean_pose_baseline, pose_summary  # noqa: E402
from edgepose.train.losses import build_objective  # noqa: E402
from edgepose.train.model import PoseNet  # noqa: E402
from edgepose.train.recipe import TrainConfig, step_budget  # noqa: E402
from edgepose.train.retrieval import nearest_training_pose  # noqa: E402
from edgepose.uncertainty import calibration, fit_sigma_scale  # noqa: E402

HERE = Path(__file__).resolve().parent


def world(model, feats):
    model.eval()
    with torch.no_grad():
        p, q, s = model.to_world(head_forward(model, feats))
    return p.double().numpy(), q.double().numpy(), s.double().numpy()


def one_set(data: str, size, seed: int, steps_override: int) -> dict:
    t0 = time.perf_counter()
    ds = load_dataset(data)
    fit_f, val_f = split_validation(ds.split("train"), 10)
    test_f = ds.split("test")
    norm = Normalisation.fit([f.position for f in fit_f])
    fit, val, test = (build_cache(fr, size, norm) for fr in (fit_f, val_f, test_f))
    torch.manual_seed(seed)
    model = PoseNet(input_size=size, position_mean=norm.mean, position_scale=norm.scale)
    feats = {k: backbone_features(model, c.images) for k, c in (("fit", fit), ("val", val), ("test", test))}
    unit = {k: torch.nn.functional.normalize(v, dim=1).double().numpy() for k, v in feats.items()}
    db = np.concatenate([unit["fit"], unit["val"]])
    rp, rq, _ = nearest_training_pose(db, unit["test"], np.concatenate([fit.position_m, val.position_m]),
                                      np.concatenate([fit.rotation_q, val.rotation_q]))
    spe = max(1, -(-len(fit) // 32))
    if len(fit) % 32 == 1 and len(fit) > 32:
        spe -= 1
    steps = steps_override or step_budget(TrainConfig(data=data, out=""), spe)[0] * spe
    train_heads(model, feats["fit"], fit, build_objective("learned"), steps, 1e-3, 1e-2, 32, seed)
    p, q, s = world(model, feats["test"])
    out = {"frames": (len(fit), len(val), len(test)), "steps": steps,
           "model": pose_summary(p, q, test.position_m, test.rotation_q),
           "retrieval": pose_summary(rp, rq, test.position_m, test.rotation_q),
           "mean_pose": mean_pose_baseline(fit, test)}
    vp, vq, vs = world(model, feats["val"])
    scale = np.array([fit_sigma_scale(translation_error(vp, val.position_m), vs[:, 0]),
                      fit_sigma_scale(rotation_error_rad(vq, val.rotation_q), vs[:, 1])])
    e_p, e_q = translation_error(p, test.position_m), np.degrees(rotation_error_rad(q, test.rotation_q))
    out["raw"] = calibration(s, e_p, e_q)
    out["calibrated"] = calibration(s * scale, e_p, e_q)
    out["scale"] = scale
    out["seconds"] = time.perf_counter() - t0
    return out


def cov(c: dict, what: str) -> str:
    return "/".join(f"{100 * c[f'within_{k}sigma_{what}']:.0f}" for k in (1, 2, 3))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--name", default="train_frozen_targets")
    ap.add_argument("--steps", type=int, default=0, help="FC/head steps (default: stage 1 of the default budget)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for d in a.data:
        r = one_set(d, (128, 96), a.seed, a.steps)
        m, rt, mp = r["model"], r["retrieval"], r["mean_pose"]
        rows.append(
            f"| {Path(d).resolve().name} | {'/'.join(map(str, r['frames']))} | {r['steps']} | "
            f"{m['median_position_m']:.3f} m / {m['median_rotation_deg']:.2f}° | "
            f"{rt['median_position_m']:.3f} m / {rt['median_rotation_deg']:.2f}° | "
            f"{mp['median_position_m']:.3f} m / {mp['median_rotation_deg']:.1f}° | "
            f"{m['median_position_m'] / rt['median_position_m']:.2f} | "
            f"{cov(r['raw'], 'position')} -> {cov(r['calibrated'], 'position')} | "
            f"{cov(r['raw'], 'rotation')} -> {cov(r['calibrated'], 'rotation')} | "
            f"x{r['scale'][0]:.2f} / x{r['scale'][1]:.2f} | "
            f"{r['calibrated']['sigma_spearman_position'] or float('nan'):.2f} / "
            f"{r['calibrated']['sigma_spearman_rotation'] or float('nan'):.2f} | {r['seconds']:.0f} s |")
        print(rows[-1], flush=True)
    lines = [f"# Frozen-backbone proxy: regressor vs retrieval, sigma calibration (`{a.name}`)", "",
             f"- command: `python benchmarks/train_frozen_targets.py {' '.join(shlex.quote(x) for x in (argv or sys.argv[1:]))}`",
             f"- machine: {machine_line()}",
             "- protocol: input 128x96, EfficientNet-Lite0 ImageNet features computed once; FC 1024 + heads "
             "trained with the default objective (learned weighting + sigma NLL, Adam 1e-3, sp/sq 1e-2, batch 32) "
             "for stage 1 of the default step budget; sigma scale fitted on the validation frames "
             "(every 10th training frame), coverage and Spearman on the test split", "",
             "| set | fit/val/test | steps | regressor (frozen) | retrieval | mean pose | regressor / retrieval pos | "
             "within 1/2/3 sigma pos %, raw -> calibrated | rot, raw -> calibrated | scale pos / rot | "
             "Spearman pos / rot | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
    (HERE / "results" / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
