"""What makes stage 2 (the reprojection fine-tune) help: points, clip, learning rate, point count.

Every variant starts from the same finished stage 1 (``RUN/checkpoints/stage1_*.pt`` of a
default run, copied into its own folder) and runs only stage 2 with the default step budget
through the trainer (``--resume``), with the pose memory off so the table shows the regressor
itself. Reported: the test split's median errors of stage 1 and of the variant's final model,
and whether stage 2 beat stage 1 on validation (else ``final.pt`` keeps stage 1's weights).

    python benchmarks/stage2_study.py --run /tmp/targets/dino --data ../shared/data/middlebury_dino/dino \\
        --out /tmp/stage2 --name stage2_study_dino
    python benchmarks/stage2_study.py --run /tmp/targets/synth --data /tmp/synth --out /tmp/stage2s \\
        --name stage2_study_synth --variants default,frustum,clip10,lr1e-4

Variants (``--variants``, comma separated): default (lr 1e-5, clip 100, 128 points, the
dataset's own points: depth or SfM where it has them, else drawn in the frustum), frustum
(always points drawn in each frame's frustum), clip10, clip1, lr1e-4, lr3e-6, points32,
points512.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

VARIANTS = {
    "default": {},
    "frustum": {"_frustum": True},
    "clip10": {"reproj_clip": 10.0},
    "clip1": {"reproj_clip": 1.0},
    "lr1e-4": {"stage2_lr": 1e-4},
    "lr3e-6": {"stage2_lr": 3e-6},
    "points32": {"max_points": 32},
    "points512": {"max_points": 512},
}


def run_variant(name: str, run: Path, data: str, out: Path) -> dict:


    from edgepose import datasets
    from edgepose.datasets import points as points_mod
    from edgepose.train.model import read_checkpoint
    from edgepose.train.recipe import TrainConfig
    from edgepose.train.trainer import fit

    opts = dict(VARIANTS[name])
    frustum = opts.pop("_frustum", False)
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "checkpoints").mkdir(parents=True)
    for f in ("stage1_best.pt", "stage1_last.pt"):
        shutil.copyfile(run / "checkpoints" / f, folder / "checkpoints" / f)
    recipe = dict(read_checkpoint(run / "checkpoints" / "stage1_last.pt").get("recipe") or {})
    recipe.update(data=str(data), out=str(folder), resume=True, progress=False, memory_size=0,
                  input_size=tuple(recipe.get("input_size", (128, 96))), **opts)
    original = datasets.visible_points
    if frustum:
        def only_frustum(record, max_points=256, seed=0):
            rng = points_mod._rng(record, seed)
            return points_mod.frustum_points(record, max_points, rng), True
        datasets.visible_points = only_frustum
    t0 = time.time()
    try:
        metrics = fit(TrainConfig(**recipe))
    finally:
        datasets.visible_points = original
    metrics["_wall_s"] = time.time() - t0
    return metrics


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="a finished default run (its stage 1 is reused)")
    p.add_argument("--data", required=True, help="the run's dataset folder")
    p.add_argument("--out", required=True, type=Path, help="folder for the variant runs")
    p.add_argument("--name", default="stage2_study", help="results/<name>.md")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma separated (default: all)")
    a = p.parse_args(argv)
    names = [v for v in a.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    a.out.mkdir(parents=True, exist_ok=True)
    rows, load0 = [], " / ".join(f"{v:.1f}" for v in os.getloadavg())
    for name in names:
        m = run_variant(name, a.run, a.data, a.out)
        rows.append((name, m))
        print(f"{name}: stage1 {m['stage1.median_position_m']:.4f} m -> final {m['test.median_position_m']:.4f} m",
              flush=True)
    lines = [f"# Stage 2 study: {a.run.name}", "",
             f"Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC, load before {load0}, after "
             f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())}. Command:", "",
             "    python benchmarks/stage2_study.py " + " ".join(sys.argv[1:] if argv is None else argv), "",
             "| variant | stage 1 test median | after stage 2 (test) | stage 2 beat stage 1 on val | stage 2 wall |",
             "|---|---|---|---|---|"]
    for name, m in rows:
        kept = "no (final = stage 1)" if m.get("run.stage2_best_epoch") == 0 else f"yes (epoch {m.get('run.stage2_best_epoch')})"
        lines.append(f"| {name} | {m['stage1.median_position_m']:.4f} m / {m['stage1.median_rotation_deg']:.2f}° | "
                     f"{m['test.median_position_m']:.4f} m / {m['test.median_rotation_deg']:.2f}° | {kept} | "
                     f"{m['_wall_s']:.0f} s |")
    path = HERE / "results" / f"{a.name}.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
