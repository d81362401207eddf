"""``edgepose-bench``: accuracy vs latency for every backend x precision of a bundle."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from edgepose.argtypes import batch_size, nonnegative_float, positive_int, threads
from edgepose.errors import ConfigError, EdgePoseError
from edgepose.frame_choice import spread_indices
from edgepose.outputs import check_outputs

from .gate import EXIT_GATE, check_gate, parse_gate
from .rows import implicit_references, known_backends, plan_rows, split_list

EPILOG = """\
what it does:
  For every row (backend x precision) it runs the whole --split through the bundle to
  measure accuracy against ground truth, drift against the FP32 row of the same backend
  family (run implicitly, untimed, when --precisions leaves it out) and how well the
  model's sigma predicts its errors; then it warms up for
  --warmup-s seconds and times --iters iterations, reporting p50/p90/p99 latency of
  inference alone and end to end (preprocess + copies + inference + postprocess),
  throughput and peak memory; on a Jetson also power (W) and energy per frame (mJ)
  from tegrastats (or jtop). A failed row is reported with its reason; the run goes on.

default rows:
  every backend importable here x every precision with an ONNX file in the bundle.
  Without TensorRT, int8 gives two rows: qdq-reference/int8 (Q/DQ in float: what
  TensorRT INT8 approximates; accuracy only) and onnxruntime/int8 (ORT's own int8
  kernels: what a CPU user gets; they can saturate on x86 CPUs without VNNI).

outputs (in --out):
  report.json (every figure; schema edgepose.bench/1, see runtime/bench/README.md),
  report.csv, report.md (the table), accuracy_vs_latency.png, error_cdf.png, trajectory.png

exit codes:
  0 done; 1 no row succeeded; 2 bad arguments, bundle or dataset;
  3 --gate broken (the offending rows are printed): usable in CI.

examples:
  edgepose-bench runs/demo/bundle --data runs/demo/scene --out runs/demo/bench
  edgepose-bench BUNDLE --data 7scenes/chess --backends onnxruntime,qdq-reference \\
      --precisions fp32,int8 --iters 500 --gate max-drift-m=0.05,max-drift-deg=1 --out bench/
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgepose-bench", description="Benchmark a bundle: accuracy, drift, uncertainty calibration, "
        "latency, throughput, memory and power, one row per backend x precision.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="bundle folder (with edgepose.json), as written by edgepose-export")
    p.add_argument("--data", required=True, help="dataset root with ground-truth poses (any format "
                   "edgepose-inspect reads: 7-Scenes, Cambridge, COLMAP, ...)")
    p.add_argument("--format", default=None, help="dataset format (default: detected)")
    p.add_argument("--split-policy", default=None, metavar="POLICY",
                   help="every:K, sequence:NAME1,NAME2 or given (default: the format's own split; see edgepose-inspect --help)")
    p.add_argument("--split", default="test", choices=("train", "test"), help="which split to evaluate (default test)")
    p.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                   help="use N frames evenly spread over the split (default: all)")
    p.add_argument("--backends", default=None, metavar="LIST",
                   help=f"comma list of {', '.join(known_backends())} (default: all available)")
    p.add_argument("--precisions", default=None, metavar="LIST",
                   help="comma list of fp32, fp16, int8 (default: every precision in the bundle)")
    p.add_argument("--batch", type=batch_size, default=1, metavar="N", help="frames per inference (default 1)")
    p.add_argument("--warmup-s", type=nonnegative_float, default=2.0, metavar="S", help="warm-up time per row, seconds (default 2)")
    p.add_argument("--iters", type=positive_int, default=200, metavar="N", help="timed iterations per row (default 200)")
    p.add_argument("--max-time-s", type=nonnegative_float, default=60.0, metavar="S",
                   help="stop a row's timed loop after S seconds (at least 10 iterations; default 60): "
                        "keeps a slow backend from stalling the run; the row says so")
    p.add_argument("--threads", type=threads, default=0, metavar="N",
                   help="intra-op CPU threads of ONNX Runtime and torch rows (default 0 = the library's choice)")
    p.add_argument("--gate", default=None, metavar="BOUNDS",
                   help="CI bounds, e.g. max-drift-m=0.05,max-drift-deg=1 (p95 drift vs FP32); also "
                        "max-median-m, max-median-deg, allow-failed=1. Exit code 3 when broken")
    p.add_argument("--power-interval-ms", type=positive_int, default=100, help="tegrastats sampling interval (default 100)")
    p.add_argument("--no-power", action="store_true", help="do not sample power even on a Jetson")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, metavar="REPORT", help="folder for report.json/.csv/.md and plots")
    return p


def load_bench_data(root: str, fmt: Optional[str], split: str, max_frames: Optional[int], progress: bool,
                    split_policy: Optional[str] = None):
    """Read the split's frames and decode their images (ground truth from the dataset reader)."""
    from edgepose.datasets import load_dataset
    from edgepose.preprocess import load_image
    from edgepose.progress import progress as progress_bar

    from .runner import BenchData

    ds = load_dataset(root, format=fmt, split_policy=split_policy)
    frames = ds.split(split)
    if max_frames is not None and max_frames < len(frames):
        if max_frames < 1:
            raise EdgePoseError(f"--max-frames must be >= 1, got {max_frames}")
        frames = [frames[i] for i in spread_indices(len(frames), max_frames)]
    bar = progress_bar(total=len(frames), desc="decoding frames", enabled=progress, leave=False)
    images = []
    for f in frames:
        images.append(load_image(f.image))
        bar.update(1)
    bar.close()
    return ds, BenchData(images, np.stack([f.position for f in frames]).astype(np.float64),
                         np.stack([f.rotation for f in frames]).astype(np.float64), [str(f.image) for f in frames])


def verify_bundle_files(view) -> dict:
    """Check every file the manifest lists (sha256, size, inside the folder, no links) and say
    what it cost; a mismatch is a :class:`~edgepose.errors.BundleError` (exit 2)."""
    import time

    from edgepose.bundle import verify_files

    t0 = time.perf_counter()
    checked = verify_files(view.path, view.manifest)
    ms = (time.perf_counter() - t0) * 1e3
    mb = sum(view.manifest.files[rel].size for rel in checked) / 1e6
    print(f"edgepose-bench: verified {len(checked)} file(s), {mb:.1f} MB, against edgepose.json in {ms:.0f} ms "
          "(sha256; the runtime checks each file it loads the same way)", file=sys.stderr)
    return {"files": len(checked), "mb": round(mb, 3), "sha256_ms": round(ms, 1)}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from edgepose.cli.guard import guarded

    return guarded("edgepose-bench", lambda: _main(args, argv), on_interrupt="no report was written")


def _main(args, argv: List[str]) -> int:
    from edgepose.bundle import now_iso
    from ..bundles import open_bundle
    from . import report as rep
    from . import sysinfo
    from .runner import BenchSettings, run_rows

    if args.batch < 1 or args.iters < 1 or args.warmup_s < 0:
        raise EdgePoseError(f"--batch and --iters must be >= 1 and --warmup-s >= 0; got {args.batch}, "
                            f"{args.iters}, {args.warmup_s}")
    gate = parse_gate(args.gate)
    check_outputs({"--out": args.out}, {"BUNDLE": args.bundle, "--data": args.data})
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; expected a folder for report.json, report.csv, report.md "
                          "and the plots", hint=f"name a folder, e.g. --out {Path(args.out).with_suffix('')}-report")
    view = open_bundle(args.bundle)
    verified = verify_bundle_files(view)  # every listed file's sha256 before any row loads one
    spec = view.input_spec
    if not spec.batch_min <= args.batch <= spec.batch_max:
        raise EdgePoseError(f"--batch {args.batch} is outside the bundle's batch range {spec.batch_min}..{spec.batch_max} "
                            f"({spec.describe()})", hint=f"use --batch {spec.batch_max} or less, or re-export with a "
                                                          "larger batch")
    has_ckpt = view.file_for("checkpoint", None) is not None
    plans, notes = plan_rows(view.precisions("onnx"), split_list(args.backends), split_list(args.precisions),
                             has_checkpoint=has_ckpt)
    references, ref_notes = implicit_references(plans)
    plans, notes = references + plans, notes + ref_notes
    progress = not args.quiet
    ds, data = load_bench_data(args.data, args.format, args.split, args.max_frames, progress,
                               args.split_policy)
    print(f"edgepose-bench: {len(plans)} rows ({', '.join(p.label for p in plans)}) on {len(data)} "
          f"{args.split} frames of {args.data}", file=sys.stderr)
    sysi = sysinfo.collect()
    if sysi["cpu"].get("vnni") is False and any(p.label == "onnxruntime/int8" for p in plans):
        notes.append("this x86 CPU has no VNNI: ONNX Runtime's u8s8 int8 kernels can saturate, so the "
                     "onnxruntime/int8 row may be less accurate than qdq-reference/int8 (which TensorRT approximates)")
    settings = BenchSettings(batch=args.batch, warmup_s=args.warmup_s, iters=args.iters, max_time_s=args.max_time_s,
                             power_interval_ms=args.power_interval_ms, power=not args.no_power,
                             runner_settings={"threads": args.threads})
    rows = run_rows(plans, view.path, data, settings, progress=progress,
                    log=lambda s: print(s, file=sys.stderr))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    violations = check_gate(rows, gate) if gate else []
    public_rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    notes.append(_int8_projection(view))
    report = {
        "schema": rep.SCHEMA,
        "created": now_iso(),
        "command": "edgepose-bench " + " ".join(shlex.quote(a) for a in argv),
        "bundle": {"path": str(view.path), "backbone": view.manifest.model.backbone,
                   "verified": verified,
                   "input": view.input_spec.to_json(), "precisions": view.precisions("onnx")},
        "data": {"root": str(args.data), "format": ds.format, "split": args.split, "n_frames": len(data)},
        "settings": {"batch": args.batch, "warmup_s": args.warmup_s, "iters": args.iters,
                     "max_time_s": args.max_time_s,
                     "power_interval_ms": args.power_interval_ms, "power": not args.no_power,
                     "threads": args.threads},
        "system": sysi,
        "notes": notes,
        "gate": None if gate is None else {"spec": args.gate, "bounds": gate, "passed": not violations,
                                           "violations": violations},
        "rows": public_rows,
        "baselines": rep.baseline_rows(view.manifest.training_metrics),
        "frames": {
            "image": data.names,
            "truth": {"position": data.position, "rotation": data.rotation},
            "predictions": {r["label"]: r["_pred"] for r in rows if "_pred" in r},
            "errors": {r["label"]: r["_err"] for r in rows if "_err" in r},
        },
    }
    plots = {}
    if not args.no_plots:
        from .plots import write_plots
        try:
            plots = write_plots(out, rows, {r["label"]: r["_err"] for r in rows if "_err" in r}, data.position,
                                {r["label"]: r["_pred"] for r in rows if "_pred" in r})
        except EdgePoseError as exc:  # matplotlib missing: the numbers still matter more
            notes.append(f"plots skipped: {exc}")
    report["plots"] = {k: Path(v).name for k, v in plots.items()}
    rep.write_json(out / "report.json", report)
    rep.write_csv(out / "report.csv", public_rows)
    rep.write_markdown(out / "report.md", report, plots)

    print("\n".join(rep.table_lines(public_rows + report["baselines"])))
    for n in notes:
        print(f"note: {n}")
    print(f"\nwrote {out / 'report.md'}, report.json, report.csv" + (f" and {len(plots)} plots" if plots else ""))
    ok = [r for r in public_rows if r["status"] == "ok" and not r.get("reference_only")]
    if gate is not None:
        if violations:
            print(f"\nGATE FAILED ({args.gate}):")
            for v in violations:
                print(f"  {v}")
            return EXIT_GATE
        print(f"gate passed ({args.gate})")
    if not ok:
        print("no row succeeded; see the reasons above (report.json has the tracebacks)", file=sys.stderr)
        return 1
    timed = [r for r in ok if r["backend"] != "qdq-reference" and r.get("e2e_p50_ms") is not None]
    best = min(timed or ok, key=lambda r: r.get("e2e_p50_ms") or float("inf"))
    print(f"next: edgepose-run {shlex.quote(str(view.path))} --source dataset:{shlex.quote(str(args.data))} "
          f"--split {args.split} --backend {best['backend']} --precision {best['precision']} --strict"
          f"   (fastest ok row, e2e p50 {best.get('e2e_p50_ms') or float('nan'):.2f} ms; "
          f"report: {out / 'report.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _int8_projection(view) -> str:
    """The labelled INT8-vs-FP16 projection for the bundle's backbone (never a measurement)."""
    from edgepose.int8_speed import onnx_gmacs, project

    fp32 = view.listing.find("onnx", "fp32")
    gmacs = onnx_gmacs(Path(view.path) / fp32) if fp32 else None
    return project(view.manifest.model.backbone, gmacs)["label"]

