"""``edgepose-bench``: accuracy vs latency for every backend x precision of a bundle.

This module only parses the flags into a :class:`~edgepose.runtime.bench.config.BenchConfig`,
calls :func:`~edgepose.runtime.bench.api.bench_bundle` and prints its result."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import List, Optional

from edgepose.argtypes import nonnegative_float, positive_int
from edgepose.cli.arg_groups import (add_batch, add_backend_list, add_bundle, add_dataset_options, add_max_frames,
                                     add_precision_list, add_split, add_threads, check_data_folder)
from edgepose.cli.guard import Signals, guarded
from edgepose.datasets import FORMATS

from . import report as rep
from .api import BenchResult, bench_bundle
from .config import BenchConfig
from .rows import known_backends, split_list

EPILOG = """\
what it does:
  For every row (backend x precision) it runs the whole --split through the bundle to
  measure accuracy against ground truth, drift against the FP32 row of the same backend
  family (run implicitly, untimed, when --precision leaves it out) and how well the
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
  edgepose-bench BUNDLE --data 7scenes/chess --backend onnxruntime,qdq-reference \\
      --precision fp32,int8 --iters 500 --gate max-drift-m=0.05,max-drift-deg=1 --out bench/
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgepose-bench", description="Benchmark a bundle: accuracy, drift, uncertainty calibration, "
        "latency, throughput, memory and power, one row per backend x precision.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle(p)
    p.add_argument("--data", required=True, help="dataset root with ground-truth poses (any format "
                   "edgepose-inspect reads: 7-Scenes, Cambridge, COLMAP, ...)")
    add_dataset_options(p, FORMATS)
    add_split(p, "which split to evaluate")
    add_max_frames(p, "use N frames evenly spread over the split (default: all)")
    add_backend_list(p, known_backends())
    add_precision_list(p, "every precision in the bundle")
    add_batch(p)
    p.add_argument("--warmup-s", type=nonnegative_float, default=2.0, metavar="S", help="warm-up time per row, seconds (default 2)")
    p.add_argument("--iters", type=positive_int, default=200, metavar="N", help="timed iterations per row (default 200)")
    p.add_argument("--max-time-s", type=nonnegative_float, default=60.0, metavar="S",
                   help="stop a row's timed loop after S seconds (at least 10 iterations; default 60): "
                        "keeps a slow backend from stalling the run; the row says so")
    add_threads(p, "intra-op CPU threads of ONNX Runtime and torch rows (default 0 = the library's choice)")
    p.add_argument("--gate", default=None, metavar="BOUNDS",
                   help="CI bounds, e.g. max-drift-m=0.05,max-drift-deg=1 (p95 drift vs FP32); also "
                        "max-median-m, max-median-deg, allow-failed=1. Exit code 3 when broken")
    p.add_argument("--power-interval-ms", type=positive_int, default=100, help="tegrastats sampling interval (default 100)")
    p.add_argument("--no-power", action="store_true", help="do not sample power even on a Jetson")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, metavar="REPORT", help="folder for report.json/.csv/.md and plots")
    return p


def config_from_args(args: argparse.Namespace, argv: List[str]) -> BenchConfig:
    """The :class:`BenchConfig` of parsed flags (``argv`` recorded as the report's command)."""
    check_data_folder(args.data, "--data")
    return BenchConfig(args.bundle, args.data, args.out, format=args.format, split_policy=args.split_policy,
                       split=args.split, max_frames=args.max_frames, backends=split_list(args.backend),
                       precisions=split_list(args.precision), batch=args.batch, warmup_s=args.warmup_s,
                       iters=args.iters, max_time_s=args.max_time_s, threads=args.threads, gate=args.gate,
                       power_interval_ms=args.power_interval_ms, power=not args.no_power, plots=not args.no_plots,
                       progress=not args.quiet,
                       command="edgepose-bench " + " ".join(shlex.quote(a) for a in argv))


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    with Signals():  # SIGTERM stops it like Ctrl-C, and neither is lost inside an import (edgepose/interrupts.py)
        return guarded("edgepose-bench", lambda: print_result(bench_bundle(config_from_args(args, argv))),
                       on_interrupt="no report was written")


def print_result(result: BenchResult) -> int:
    """The table, the notes, the gate's verdict and the next command; returns the exit code."""
    print("\n".join(rep.table_lines(result.rows + result.report["baselines"])))
    for n in result.notes:
        print(f"note: {n}")
    out, plots = result.out, result.plots
    print(f"\nwrote {out / 'report.md'}, report.json, report.csv" + (f" and {len(plots)} plots" if plots else ""))
    spec = (result.report.get("gate") or {}).get("spec")
    if result.violations:
        print(f"\nGATE FAILED ({spec}):")
        for v in result.violations:
            print(f"  {v}")
        return result.exit_code
    if result.gated:
        print(f"gate passed ({spec})")
    best = result.fastest
    if best is None:
        print("no row succeeded; see the reasons above (report.json has the tracebacks)", file=sys.stderr)
        return result.exit_code
    data, split = result.report["data"]["root"], result.report["data"]["split"]
    print(f"next: edgepose-run {shlex.quote(result.report['bundle']['path'])} --source dataset:{shlex.quote(data)} "
          f"--split {split} --backend {best['backend']} --precision {best['precision']} --strict"
          f"   (fastest ok row, e2e p50 {best.get('e2e_p50_ms') or float('nan'):.2f} ms; "
          f"report: {out / 'report.md'})")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
