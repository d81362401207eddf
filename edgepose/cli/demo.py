"""``edgepose-demo``: the main job end to end on the built-in synthetic scene.

render the scene -> train both stages -> export fp32/fp16/int8 -> bench them with ONNX
Runtime -> print the table and where every artefact is. Each step is the public CLI run as
a subprocess (exactly what a user would type, printed before it runs). A step whose output
is already complete is skipped, so an interrupted demo resumes; ``--fresh`` redoes all.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

from ..errors import ConfigError
from .guard import guarded

#: QAT epochs of the demo (benchmarks/results/int8_qat.md: what they cost and buy on this scene)
QAT_EPOCHS = 0


def _step(title: str, argv: List[str], done: Path, fresh: bool) -> float:
    print(f"\n=== {title}\n$ {' '.join(argv)}", flush=True)
    if done.exists() and not fresh:
        print(f"    already done ({done} exists; pass --fresh to redo)")
        return 0.0
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "edgepose"] + argv[0].replace("edgepose-", "").split() + argv[1:]
    rc = subprocess.call(cmd)
    if rc != 0:
        print(f"\nedgepose-demo: step '{title}' failed with exit code {rc}", file=sys.stderr)
        raise SystemExit(rc)
    return time.perf_counter() - t0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgepose-demo",
        description="Run edgepose end to end on the built-in synthetic scene: render, train "
                    "(stage 1 learned weighting, stage 2 reprojection), export FP32/FP16/INT8, and "
                    "benchmark accuracy vs latency with ONNX Runtime. Needs no download.",
        epilog="Every step prints the command it runs, so you can rerun or vary any of them by hand.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for all artefacts (default runs/demo)")
    p.add_argument("--frames", type=int, default=800, help="synthetic frames to render (default 800)")
    p.add_argument("--random-views", type=int, default=200,
                   help="of those, random training views between the loops (default 200)")
    p.add_argument("--size", default="160x120", help="rendered image size WxH (default 160x120)")
    p.add_argument("--input-size", default="128x96", help="network input WxH (default 128x96)")
    p.add_argument("--stage1-epochs", type=int, default=None,
                   help="stage 1 epochs (default: edgepose-train's step budget, as a user gets it)")
    p.add_argument("--stage2-epochs", type=int, default=None, help="stage 2 epochs (default: the step budget)")
    p.add_argument("--qat-epochs", type=int, default=QAT_EPOCHS,
                   help=f"stage 3: quantization-aware fine-tuning epochs for INT8, 0 skips it (default {QAT_EPOCHS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="redo every step even if its output exists")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded("edgepose-demo", lambda: _main(args), on_interrupt="rerun the same command to resume")


def _main(args) -> int:
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; expected a folder for the demo's artefacts (created if missing)",
                          hint=f"pick another --out, e.g. --out {out.with_suffix('')}-demo")
    if args.fresh and out.exists():
        shutil.rmtree(out)
    scene, run, bundle, report = out / "scene", out / "run", out / "bundle", out / "report"
    t0 = time.perf_counter()
    times = {}
    times["render"] = _step("1/4 render the synthetic scene",
                            ["edgepose-synth", str(scene), "--frames", str(args.frames), "--random-views",
                             str(args.random_views), "--size", args.size, "--seed", str(args.seed)], scene / "scene.json", args.fresh)
    times["train"] = _step("2/4 train: stage 1 (learned weighting) + stage 2 (reprojection)",
                           ["edgepose-train", str(scene), "--out", str(run), "--backbone", "efficientnet_lite0",
                            "--input-size", args.input_size, "--seed", str(args.seed)]
                           + [flag for name in ("stage1_epochs", "stage2_epochs", "qat_epochs")
                              if getattr(args, name) is not None and (getattr(args, name) or name != "qat_epochs")
                              for flag in (f"--{name.replace('_', '-')}", str(getattr(args, name)))],
                           run / "final.pt", args.fresh)
    times["export"] = _step("3/4 export FP32 / FP16 / INT8 (ONNX; TensorRT engines are built on the Jetson)",
                            ["edgepose-export", str(run), "--out", str(bundle), "--precision", "fp32,fp16,int8",
                             "--int8-max-drift-m", "0.05"],
                            bundle / "edgepose.json", args.fresh)
    times["bench"] = _step("4/4 bench accuracy vs latency (ONNX Runtime on this CPU)",
                           ["edgepose-bench", str(bundle), "--data", str(scene), "--out", str(report)],
                           report / "report.json", args.fresh)
    total = time.perf_counter() - t0
    print("\n=== edgepose demo finished in %.1f min (%s)" % (
        total / 60, ", ".join(f"{k} {v / 60:.1f}" for k, v in times.items())))
    print(f"  scene    {scene}/ (7-Scenes layout; contact sheet {scene / 'contact_sheet.png'})")
    print(f"  run      {run}/ (final.pt, metrics.json, metrics.csv, checkpoints/)")
    print(f"  bundle   {bundle}/ (edgepose.json, model.onnx, model.fp16.onnx, model.int8.onnx)")
    print(f"  report   {report}/ (report.md, report.json, report.csv, *.png)")
    if (report / "report.md").is_file():
        print("\n" + (report / "report.md").read_text())
    print("next: copy the bundle to a Jetson and build engines there:\n"
          f"  edgepose-export {bundle} --precision fp16 --engine yes\n"
          f"  edgepose-run {bundle} --source /dev/video0 --precision fp16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
