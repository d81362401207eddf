"""The paper's claims on our scenes: beta grid vs learned weighting vs + reprojection fine-tune.

Kendall & Cipolla (CVPR 2017) claim (Table 3) that learned homoscedastic weighting beats a
tuned beta, that a reprojection fine-tune started from it helps a little more, and that the
reprojection loss alone does not train well from scratch. This script checks those claims with
edgepose's losses under the *frozen-backbone* protocol of ``train_common.py``: every cell
trains the same FC layer + heads (same init, seed, batches and step budget) on the same cached
ImageNet features; only the loss changes.

Cells (``S1 + S2`` steps each):

* ``beta=B``: :class:`BetaLoss` (L2 norms, as PoseNet 2015) for ``S1 + S2`` steps at ``--lr``;
* ``learned``: :class:`LearnedWeightingLoss` (L1), sp/sq in their own group at ``--weighting-lr``;
* ``learned+reproj``: the ``learned`` run's state after ``S1`` steps, then ``S2`` steps of
  :class:`ReprojectionLoss` at ``--stage2-lr`` (the two-stage recipe);
* ``learned, shared lr``: as ``learned`` but sp/sq at the network's lr (peers' setup);
* ``reproj from scratch``: :class:`ReprojectionLoss` from the untrained heads for ``S1 + S2``.

Every cell also trains the uncertainty heads (:class:`UncertaintyNLL`, detached errors).

    .venv/bin/python benchmarks/train_loss_grid.py --data /tmp/hl/synth --name train_grid_synth
    .venv/bin/python benchmarks/train_loss_grid.py --data /work/shared/data/middlebury_dino/dino \
        --name train_grid_dino

Writes ``benchmarks/results/<name>.md`` (table), ``<name>_weights.png`` (sp/sq trajectories).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import (backbone_features, evaluate, head_forward, load_split,  # noqa: E402
                          machine_line)

from edgepose.argtypes import size as size_type  # noqa: E402
from edgepose.train.losses import (RECOMMENDED_WEIGHTING_LR, BetaLoss,  # noqa: E402
                                   LearnedWeightingLoss, PoseObjective, ReprojectionLoss)
from edgepose.train.model import PoseNet  # noqa: E402

HERE = Path(__file__).resolve().parent


def _batches(n, batch, steps, seed):
    g = torch.Generator().manual_seed(seed)
    perm, k = torch.randperm(n, generator=g), 0
    for _ in range(steps):
        if k + batch > n:
            perm, k = torch.randperm(n, generator=g), 0
        yield perm[k:k + batch]
        k += batch


def train_heads(model, feats, cache, objective, steps, lr, wlr, batch, seed, log=None, offset=0):
    """Adam over FC + heads (``lr``) and the loss's weights (``wlr``, no decay); returns logs."""
    head_params = list(model.fc.parameters()) + [p for n, p in model.named_parameters()
                                                 if n.startswith(("fc_position", "fc_rotation", "fc_log_sigma"))]
    groups = [{"params": head_params, "lr": lr}]
    w = objective.weighting_parameters()
    if w:
        groups.append({"params": w, "lr": wlr, "weight_decay": 0.0})
    opt = torch.optim.Adam(groups)
    model.train()
    hist = []
    bad = 0
    for step, idx in enumerate(_batches(len(feats), batch, steps, seed + offset)):
        b = {k: v.index_select(0, idx) for k, v in
             (("position", cache.position), ("rotation", cache.rotation), ("points", cache.points),
              ("points_mask", cache.points_mask), ("K", cache.K))}
        pred = head_forward(model, feats.index_select(0, idx))
        loss, logs = objective(pred, b)
        if not torch.isfinite(loss):
            bad += 1
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log is not None and "sp" in logs:
            log.append({"step": offset + step + 1, "sp": logs["sp"], "sq": logs["sq"],
                        "log_Lp": logs["sp_star"], "log_Lq": logs["sq_star"]})
    return bad


def eval_cell(model, feats_test, test):
    model.eval()
    with torch.no_grad():
        out = head_forward(model, feats_test)
    return evaluate(model, out, test)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset folder (any format edgepose reads)")
    ap.add_argument("--name", required=True, help="results/<name>.md")
    ap.add_argument("--size", type=size_type(), default=(96, 72), help="network input WxH (default 96x72)")
    ap.add_argument("--betas", default="1,10,100,500,2000")
    ap.add_argument("--stage1-steps", type=int, default=1000)
    ap.add_argument("--stage2-steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--stage2-lr", type=float, default=1e-4)
    ap.add_argument("--weighting-lr", type=float, default=RECOMMENDED_WEIGHTING_LR)
    ap.add_argument("--max-points", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    split = load_split(args.data, args.size, args.max_points, args.seed)
    torch.manual_seed(args.seed)
    model = PoseNet(input_size=args.size, position_mean=split.norm.mean, position_scale=split.norm.scale)
    t0 = time.perf_counter()
    f_train = backbone_features(model, split.train.images)
    f_test = backbone_features(model, split.test.images)
    t_feat = time.perf_counter() - t0
    init = copy.deepcopy(model.state_dict())
    S1, S2 = args.stage1_steps, args.stage2_steps
    common = dict(batch=args.batch, seed=args.seed)

    def fresh():
        model.load_state_dict(init)
        return model

    rows, traj = [], {}

    def record(cell, metrics, secs, bad=0, extra=""):
        rows.append({"cell": cell, **metrics, "secs": secs, "skipped": bad, "extra": extra})
        print(f"{cell:24s} median {metrics['median_m']:.3f} m {metrics['median_deg']:.2f} deg "
              f"({secs:.0f}s){' ' + extra if extra else ''}", flush=True)

    for beta in [float(b) for b in args.betas.split(",")]:
        t = time.perf_counter()
        m = fresh()
        bad = train_heads(m, f_train, split.train, PoseObjective(BetaLoss(beta, "l2")), S1 + S2,
                          args.lr, 0.0, **common)
        record(f"beta={beta:g}", eval_cell(m, f_test, split.test), time.perf_counter() - t, bad)

    for label, wlr in (("learned", args.weighting_lr), ("learned, shared lr", args.lr)):
        t = time.perf_counter()
        m = fresh()
        lw = LearnedWeightingLoss()
        obj = PoseObjective(lw)
        log = []
        train_heads(m, f_train, split.train, obj, S1, args.lr, wlr, log=log, **common)
        s1 = eval_cell(m, f_test, split.test)
        state = (copy.deepcopy(m.state_dict()), float(lw.sp), float(lw.sq))
        train_heads(m, f_train, split.train, obj, S2, args.lr, wlr, log=log, offset=S1, **common)
        traj[label] = log
        record(label, eval_cell(m, f_test, split.test), time.perf_counter() - t,
               extra=f"sp {float(lw.sp):+.2f} sq {float(lw.sq):+.2f}; after S1: {s1['median_m']:.3f} m "
                     f"{s1['median_deg']:.2f} deg")
        if label == "learned":
            t = time.perf_counter()
            m.load_state_dict(state[0])
            bad = train_heads(m, f_train, split.train, PoseObjective(ReprojectionLoss()), S2,
                              args.stage2_lr, 0.0, offset=S1, **common)
            record("learned+reproj", eval_cell(m, f_test, split.test), time.perf_counter() - t, bad,
                   extra=f"(stage 2 only; starts from learned at S1: {s1['median_m']:.3f} m {s1['median_deg']:.2f} deg)")

    t = time.perf_counter()
    m = fresh()
    bad = train_heads(m, f_train, split.train, PoseObjective(ReprojectionLoss()), S1 + S2, args.lr, 0.0, **common)
    record("reproj from scratch", eval_cell(m, f_test, split.test), time.perf_counter() - t, bad)
    m = fresh()
    record("untrained heads", eval_cell(m, f_test, split.test), 0.0)

    # mean-pose baseline: predict the training mean position and the training chordal-mean rotation
    q = split.train.rotation_q
    w, v = np.linalg.eigh(q.T @ q)
    qm = v[:, -1] * (1 if v[0, -1] >= 0 else -1)
    from edgepose.geometry import rotation_error_deg, translation_error
    pe = translation_error(np.asarray(split.norm.mean)[None], split.test.position_m)
    re = rotation_error_deg(qm[None], split.test.rotation_q)
    record("mean pose (baseline)", {"median_m": float(np.median(pe)), "median_deg": float(np.median(re)),
                                    "mean_m": float(np.mean(pe)), "mean_deg": float(np.mean(re))}, 0.0)

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
        for (label, log), c in zip(traj.items(), ("C0", "C1")):
            st = [r["step"] for r in log]
            for ax, key, tgt in ((axes[0], "sp", "log_Lp"), (axes[1], "sq", "log_Lq")):
                ax.plot(st, [r[key] for r in log], color=c, label=f"{key} ({label})")
                ax.plot(st, [r[tgt] for r in log], color=c, ls=":", lw=0.6, alpha=0.7, label=f"batch {tgt} ({label})")
        for ax, title in zip(axes, ("sp vs batch log Lp", "sq vs batch log Lq")):
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{args.name}_weights.png", dpi=90)
        plt.close(fig)
    except ImportError:
        pass
    (out / f"{args.name}_weights.json").write_text(json.dumps(
        {k: [r for i, r in enumerate(v) if i % 10 == 9] for k, v in traj.items()}))

    cmd = "python benchmarks/train_loss_grid.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Loss grid on `{args.data}` (frozen-backbone protocol)", "",
        f"- command: `{cmd}`",
        f"- date/machine: {machine_line()}",
        f"- data: {len(split.train)} train / {len(split.test)} test frames at {args.size[0]}x{args.size[1]}; "
        f"position scale {split.norm.scale:.3f} m; {split.n_synthetic_points} train frames got frustum "
        f"(synthetic) points instead of scene points, {args.max_points} points/frame",
        f"- protocol: EfficientNet-Lite0 (ImageNet) features cached once ({t_feat:.0f}s), FC 1024 + heads "
        f"trained; S1 = {S1}, S2 = {S2} steps, batch {args.batch}, Adam lr {args.lr:g} (stage 2 {args.stage2_lr:g}), "
        f"weighting lr {args.weighting_lr:g}, seed {args.seed}; total wall {time.perf_counter() - t_start:.0f}s",
        "", "| cell | median pos m | median rot deg | mean pos m | mean rot deg | s | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = r["extra"] + (f" {r['skipped']} non-finite steps skipped" if r["skipped"] else "")
        lines.append(f"| {r['cell']} | {r['median_m']:.3f} | {r['median_deg']:.2f} | {r['mean_m']:.3f} | "
                     f"{r['mean_deg']:.2f} | {r['secs']:.0f} | {note} |")
    lines += ["", f"sp/sq trajectories: `{args.name}_weights.png` (every 10th step in `{args.name}_weights.json`).", ""]
    (out / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"next: read benchmarks/results/{args.name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
