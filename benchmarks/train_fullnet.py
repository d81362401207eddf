"""The loss comparison with the whole network trained, through the real ``edgepose-train`` CLI.

The cheap grid (``train_loss_grid.py``) trains only the FC layer and heads on frozen features.
This script checks its conclusions with full fine-tuning at a small budget, one subprocess per
cell (same seed, input size, batch size and number of epochs in every cell):

* ``learned`` + ``reproj``: ``--loss learned`` for E1 epochs then E2 reprojection epochs (one
  run: its ``stage1.*`` metrics are the learned cell, ``test.*`` the fine-tuned one);
* ``beta=B``: ``--loss beta --beta B --loss-norm l2`` for E1 + E2 epochs;
* ``reproj from ImageNet init``: ``--stage1-epochs 0 --stage2-epochs E1+E2``.

    .venv/bin/python benchmarks/train_fullnet.py --data /work/shared/data/middlebury_dino/dino \
        --name train_fullnet_dino --e1 6 --e2 2 --betas 10,500 --parallel 2

Writes ``benchmarks/results/<name>.md``; the run folders go to a temporary directory.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import machine_line  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--size", default="96x72")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--e1", type=int, default=6, help="stage 1 epochs")
    ap.add_argument("--e2", type=int, default=2, help="stage 2 (reprojection) epochs")
    ap.add_argument("--betas", default="10,500")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time")
    args = ap.parse_args(argv)
    E = args.e1 + args.e2
    tmp = Path(tempfile.mkdtemp(prefix="edgepose_fullnet_"))
    base = [sys.executable, "-m", "edgepose", "train", args.data, "--input-size", args.size, "--batch-size",
            str(args.batch), "--seed", str(args.seed), "--threads", str(args.threads), "--no-progress"]
    cells = {"learned": ["--loss", "learned", "--stage1-epochs", str(args.e1), "--stage2-epochs", str(args.e2)],
             "reproj from ImageNet init": ["--stage1-epochs", "0", "--stage2-epochs", str(E)]}
    for b in args.betas.split(","):
        cells[f"beta={b}"] = ["--loss", "beta", "--beta", b, "--loss-norm", "l2", "--stage1-epochs", str(E),
                              "--stage2-epochs", "0"]

    def run(item):
        name, extra = item
        out = tmp / name.replace(" ", "_").replace("=", "")
        t = time.perf_counter()
        p = subprocess.run(base + ["--out", str(out)] + extra, capture_output=True, text=True)
        secs = time.perf_counter() - t
        print(f"{name}: rc {p.returncode} in {secs:.0f}s", flush=True)
        if p.returncode != 0:
            return name, extra, secs, {"error": (p.stderr or p.stdout)[-600:]}
        return name, extra, secs, json.loads((out / "metrics.json").read_text())

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = list(pool.map(run, cells.items()))

    cmd = "python benchmarks/train_fullnet.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Full-network loss comparison on `{args.data}` (edgepose-train)", "",
             f"- command: `{cmd}`", f"- date/machine: {machine_line()}",
             f"- every cell: input {args.size}, batch {args.batch}, {E} epochs in all, seed {args.seed}, "
             f"{args.threads} thread(s), {args.parallel} runs at a time; trainer defaults otherwise "
             "(Adam 1e-3 warm-up + cosine, stage 2 1e-4, weighting lr 1e-2, jitter 0.3, best epoch on val)", "",
             "| cell | median pos m | median rot deg | mean pos m | mean rot deg | run s | flags |",
             "|---|---|---|---|---|---|---|"]
    baseline = None
    for name, extra, secs, m in results:
        flags = " ".join(extra)
        if "error" in m:
            lines.append(f"| {name} | failed | | | | {secs:.0f} | `{flags}`: {m['error'][-200:]!r} |")
            continue
        baseline = baseline or m
        rows = [(name, "test")]
        if name == "learned" and args.e2 > 0:
            rows = [("learned (stage 1)", "stage1"), ("learned + reproj (stage 2)", "test")]
        for label, key in rows:
            lines.append(f"| {label} | {m[key + '.median_position_m']:.3f} | {m[key + '.median_rotation_deg']:.2f} | "
                         f"{m[key + '.mean_position_m']:.3f} | {m[key + '.mean_rotation_deg']:.2f} | {secs:.0f} | `{flags}` |")
    if baseline:
        k = "baseline.mean_pose."
        lines.append(f"| mean pose (baseline) | {baseline[k + 'median_position_m']:.3f} | "
                     f"{baseline[k + 'median_rotation_deg']:.2f} | {baseline[k + 'mean_position_m']:.3f} | "
                     f"{baseline[k + 'mean_rotation_deg']:.2f} | | |")
    lines.append("")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"next: read benchmarks/results/{args.name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
