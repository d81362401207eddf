"""``edgepose-export``: a training run -> a bundle (ONNX FP32/FP16/INT8, TensorRT engines, manifest).

Three ways in:

* ``edgepose-export RUN|CHECKPOINT --out BUNDLE ...``: export ONNX from the checkpoint, derive
  FP16 and INT8 (Q/DQ, calibrated on training frames), measure every precision on the test
  frames, build engines when TensorRT is here, write the bundle atomically.
* ``edgepose-export BUNDLE [--out OTHER] --engine yes``: build engines only, from the ONNX files
  in the bundle (the Jetson path: no torch needed).
* ``edgepose-export --verify BUNDLE``: hashes and ONNX Runtime parity.

Exit codes: 0 success; 1 a check failed (drift over ``--max-drift-*``, ``--verify`` mismatch);
2 a user error (bad option, missing or corrupt input, ``--engine yes`` without TensorRT).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from edgepose.argtypes import integer, nonnegative_float, number
from edgepose.bundle import MANIFEST
from edgepose.bundle_files import CAMERA_CHANNELS
from edgepose.cli.arg_groups import add_batch, add_precision_list
from edgepose.cli.guard import Signals, guarded
from edgepose.errors import BundleError, ConfigError
from edgepose.frame_choice import CALIBRATION_FRAMES
from edgepose.int8_speed import onnx_gmacs, project

from .api import ExportResult, default_argv, export_bundle
from .camera_graph import camera_sizes
from .config import (CALIB_METHODS, DEFAULT_OPSET, DEFAULT_VAL_FRAMES, MAX_DLA_CORE,
                     MAX_WORKSPACE_GB, ExportConfig, parse_batch, parse_precisions)
from .int8.qat import expected_qat_gain
from .onnx_export import NODE_GROUPS
from .tensorrt.inspector import inspect_path
from .verify import verify_bundle

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USER_ERROR = 0, 1, 2

EPILOG = """\
examples:
  edgepose-export runs/dino --out bundles/dino --precision fp32,fp16,int8
  edgepose-export runs/dino --out bundles/dino --precision int8 --int8-max-drift-m 0.02
  edgepose-export bundles/dino --precision fp16,int8 --engine yes        # on the Jetson
  edgepose-export --verify bundles/dino

what you get (BUNDLE/):
  edgepose.json      manifest: model, input/output spec, normalisation, calibration,
                     per-precision accuracy and drift vs FP32, every file's sha256
  model.onnx         FP32 (always written: the source of the other precisions)
  model.fp16.onnx    FP16 weights/activations, FP32 pre/post-processing
  model.int8.onnx    INT8 Q/DQ (explicit quantization, symmetric) for TensorRT and ORT
  model.pt           the checkpoint (the runtime's torch backend)
  parity.npz         a few frames + every graph's outputs on them (--verify re-runs them)
  model.<trt>.<gpu>.<sm>.<gpu|dlaN>.<precision>.engine   when built with TensorRT

TensorRT: engines only load on the TensorRT version and GPU that built them, so they are
built on the device. Without TensorRT, --engine auto (default) writes the ONNX files and
prints the command to run on the Jetson; --engine yes fails; --engine no skips engines.

exit codes: 0 ok, 1 a check failed (drift bound, --verify), 2 user error.
"""


# --------------------------------------------------------------------------- arguments
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgepose-export", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Export a trained pose regressor to a bundle: ONNX FP32/FP16/INT8 with measured "
                    "drift, and TensorRT engines where TensorRT is installed.")
    p.add_argument("source", nargs="?", help="a training run folder (RUN/final.pt), a checkpoint file, or an "
                                             "existing bundle (then only engines are built)")
    p.add_argument("--out", type=Path, help="bundle folder to write (default: SOURCE when it is a bundle)")
    p.add_argument("--overwrite", action="store_true",
                   help="export into an --out folder that holds files no export wrote; they are kept (one named "
                        "like a bundle file is moved to OUT/kept-by-edgepose-export-TIME/), never deleted")
    p.add_argument("--verify", metavar="BUNDLE", type=Path,
                   help="check a bundle's hashes and re-run ONNX Runtime parity, then exit")
    p.add_argument("--inspect", metavar="BUNDLE", type=Path,
                   help="print each engine's per-layer report (layers per precision and device, whether the "
                        "post-processing is FP32), from the engine where TensorRT is here, else as recorded at "
                        "build; also takes an IEngineInspector JSON file. Exit 1 if post-processing is not FP32")
    g = p.add_argument_group("precision")
    add_precision_list(g, "fp32,fp16 from a run; every ONNX precision of a bundle. model.onnx (fp32) is always "
                          "written")
    g.add_argument("--allow-slow-precision", action="store_true",
                   help="build FP16/INT8 engines even where TensorRT reports them as not fast")
    g = p.add_argument_group("INT8 calibration (training frames only)")
    g.add_argument("--calib", metavar="DATA", type=Path,
                   help="dataset folder for calibration and validation (default: the run's dataset)")
    g.add_argument("--calib-frames", type=integer(1, 100000), default=CALIBRATION_FRAMES,
                   help=f"calibration frames from the training split (default {CALIBRATION_FRAMES}; "
                        "fewer than 300 warns)")
    g.add_argument("--calib-method", choices=CALIB_METHODS, default="minmax",
                   help="activation range method of the Q/DQ pass (default minmax)")
    g.add_argument("--int8-max-drift-m", type=nonnegative_float, default=None,
                   help="guided mixed precision: keep layers in float until the INT8 median position "
                        "drift vs FP32 is at most this (m)")
    g.add_argument("--int8-max-drift-deg", type=nonnegative_float, default=None,
                   help="same for the median rotation drift (deg)")
    g.add_argument("--int8-engine", choices=("qdq", "calibrator"), default="qdq",
                   help="TensorRT INT8 from the Q/DQ model (default; TRT 8.5-11) or by implicit "
                        "calibration with IInt8EntropyCalibrator2 (TRT 8.x; cache in the bundle)")
    g = p.add_argument_group("graph")
    add_batch(g)  # frames per inference: the graph's fixed batch
    g.add_argument("--dynamic-batch", metavar="MIN:OPT:MAX", default=None,
                   help="dynamic batch axis with this TensorRT optimization profile, e.g. 1:4:8")
    g.add_argument("--input", choices=("uint8", "float32"), default="uint8",
                   help="uint8 NHWC (default: 4x fewer bytes, normalisation in the graph) or float32 NCHW 0..255")
    g.add_argument("--opset", type=integer(7, 20), default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET}, at most 20)")
    g.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    g.add_argument("--camera-size", metavar="WxH", action="append", default=None,
                   help="also write graphs whose input is the camera frame itself (uint8 HxWx3), with the "
                        "preprocessing rule's crop and anti-aliased resize inside: the device then only copies "
                        "frames of that size. Repeat for several cameras, e.g. --camera-size 1920x1080 "
                        "--camera-size 640x480. With a BUNDLE as SOURCE they are added to it (no torch needed)")
    g.add_argument("--camera-channels", choices=CAMERA_CHANNELS, default="rgb",
                   help="channel order of those camera frames (bgr: OpenCV and many ROS drivers; default rgb)")
    g = p.add_argument_group("validation (test split)")
    g.add_argument("--val-frames", type=integer(1, 100000), default=DEFAULT_VAL_FRAMES,
                   help=f"test frames for accuracy and drift (default {DEFAULT_VAL_FRAMES}, spread over the split)")
    g.add_argument("--max-drift-m", type=nonnegative_float, default=None,
                   help="fail (exit 1) when an FP16/INT8 median position drift vs FP32 exceeds this (m)")
    g.add_argument("--max-drift-deg", type=nonnegative_float, default=None,
                   help="fail (exit 1) when an FP16/INT8 median rotation drift vs FP32 exceeds this (deg)")
    g = p.add_argument_group("TensorRT")
    g.add_argument("--engine", choices=("auto", "yes", "no"), default="auto",
                   help="build engines: auto = when TensorRT is importable (default), yes = required, no = never")
    g.add_argument("--dla-core", type=integer(0, MAX_DLA_CORE), default=None,
                   help="build for this DLA core, 0 or 1 on Orin (GPU fallback on)")
    g.add_argument("--workspace-gb", type=number(0, MAX_WORKSPACE_GB, low_open=True), default=1.0,
                   help="builder workspace limit (default 1 GB)")
    g.add_argument("--timing-cache-dir", type=Path, default=None,
                   help="where tensorrt.<version>.<gpu>.sm<cc>.timingcache lives (default $EDGEPOSE_CACHE or ~/.cache/edgepose)")
    return p


def config_from_args(args: argparse.Namespace) -> ExportConfig:
    """The :class:`ExportConfig` of parsed flags (text flags parsed, nothing checked yet)."""
    if args.source is None:
        raise ConfigError("SOURCE is missing: pass a training run, a checkpoint or a bundle",
                          hint="see edgepose-export --help")
    (lo, opt, hi), dynamic = parse_batch(args.batch, args.dynamic_batch)
    return ExportConfig(
        source=Path(args.source), out=args.out,
        precisions=None if args.precision is None else parse_precisions(args.precision, ()),
        allow_slow_precision=args.allow_slow_precision, calib=args.calib, calib_frames=args.calib_frames,
        calib_method=args.calib_method, int8_max_drift_m=args.int8_max_drift_m,
        int8_max_drift_deg=args.int8_max_drift_deg, int8_engine=args.int8_engine, batch=opt,
        dynamic_batch=(lo, opt, hi) if dynamic else None, input=args.input, opset=args.opset,
        simplify=not args.no_simplify, val_frames=args.val_frames, max_drift_m=args.max_drift_m,
        max_drift_deg=args.max_drift_deg, engine=args.engine, overwrite=args.overwrite, dla_core=args.dla_core,
        workspace_gb=args.workspace_gb, timing_cache_dir=args.timing_cache_dir,
        camera_sizes=camera_sizes(args.camera_size), camera_channels=args.camera_channels, argv=default_argv())


# --------------------------------------------------------------------------- entry point
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    with Signals():  # SIGTERM (a service manager, a CI timeout) stops it like Ctrl-C: the bundle is built aside
        return guarded("edgepose-export", lambda: _main(args),
                       on_interrupt=f"{args.out or args.source} was left as it was")


def _main(args) -> int:
    if args.verify is not None:
        return run_verify(args.verify)
    if args.inspect is not None:
        return 0 if inspect_path(args.inspect, NODE_GROUPS["post"]) else EXIT_CHECK_FAILED
    return report(export_bundle(config_from_args(args)))


def run_verify(bundle: Path) -> int:
    try:
        verify_bundle(bundle)
    except BundleError as exc:
        if not (Path(bundle) / MANIFEST).is_file():
            raise
        print(f"edgepose-export: verification FAILED: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(f"bundle {bundle}: verified")
    print(f"next: edgepose-bench {shlex.quote(str(bundle))} --data DATA --out report")
    return EXIT_OK


# --------------------------------------------------------------------------- printing
def report(result: ExportResult) -> int:
    """Print what an export did and the next commands; return the exit code."""
    if result.from_bundle:
        if not result.engines and result.manifest is None:
            print(result.engine_note or "")
            return EXIT_OK
        print(f"bundle {result.out}: {len(result.engines)} engine(s) built: {', '.join(result.engines)}")
        print_next(result.out, result.precisions)
        return EXIT_OK
    print_table(result.out, result.validation, result.onnx_files)
    if "int8" in result.precisions:
        fp32 = Path(result.out) / result.onnx_files["fp32"]
        print(project(result.manifest.model.backbone, onnx_gmacs(fp32))["label"] + "\n")
    print(f"bundle written: {result.out} ({result.seconds:.0f} s)")
    if result.engine_note:
        print(result.engine_note)
    if result.failures:
        print("edgepose-export: drift check FAILED:\n    " + "\n    ".join(result.failures), file=sys.stderr)
        print("  -> the bundle is written and records the drift; loosen the bound, keep more layers in float "
              "(--int8-max-drift-m), or drop the precision", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print_next(result.out, result.precisions, result.data_root)
    print_qat_hint(result)
    return EXIT_OK


def print_qat_hint(result: ExportResult) -> None:
    """After a post-training INT8 export: how much QAT is expected to help, and its command."""
    v = result.validation
    if "int8" not in v or result.qat or not v.get("fp32", {}).get("median_position_m"):
        return

    ckpt = result.checkpoint
    run = ckpt.parent if ckpt is not None and ckpt.name == "final.pt" else result.source
    share = v["int8"]["drift_p50_m"] / v["fp32"]["median_position_m"]
    print(expected_qat_gain(str(run), str(result.data_root or "DATA"), share))


def print_table(out: Path, validation: dict, onnx_files: dict) -> None:
    """The one-screen summary: file, size, accuracy, drift vs FP32."""
    head = f"{'precision':<10}{'file':<18}{'MB':>7}{'med pos m':>11}{'med rot °':>11}" \
           f"{'drift p50 m':>13}{'p95 m':>10}{'p50 °':>9}{'p95 °':>9}{'1/2σ pos %':>12}{'1/2σ rot %':>12}"
    print("\n" + head + "\n" + "-" * len(head))
    keys = list(validation) or list(onnx_files)
    for key in keys:
        row = validation.get(key, {})
        rel = row.get("file") or onnx_files.get(key, "")
        size = (Path(out) / rel).stat().st_size / 1e6 if rel and (Path(out) / rel).is_file() else float("nan")
        f = lambda k, w, fmt: (format(row[k], fmt) if k in row else "-").rjust(w)  # noqa: E731
        print(f"{key:<10}{rel:<18}{size:>7.2f}{f('median_position_m', 11, '.4f')}{f('median_rotation_deg', 11, '.2f')}"
              f"{f('drift_p50_m', 13, '.2e')}{f('drift_p95_m', 10, '.2e')}{f('drift_p50_deg', 9, '.3f')}"
              f"{f('drift_p95_deg', 9, '.3f')}{_within(row, 'position')}{_within(row, 'rotation')}")
    if "int8-ort" in validation:
        print("int8 = Q/DQ in float (TensorRT-like); int8-ort = ONNX Runtime int8 kernels on this CPU")
    if not validation:
        print("(no validation frames: accuracy and drift not measured)")
    elif any("within_1sigma_position" in r for r in validation.values()):
        print("1/2σ: test frames whose error is within 1 / 2 sigma (nominal 53 / 98 %: the chi-3 error model)")
    print()


def _within(row: dict, output: str) -> str:
    """``"55/98"``: the row's coverage of ``output`` at 1 and 2 sigma in percent, right-aligned."""
    keys = (f"within_1sigma_{output}", f"within_2sigma_{output}")
    cell = "/".join(f"{100 * row[k]:.0f}" for k in keys) if all(k in row for k in keys) else "-"
    return cell.rjust(12)


def print_next(out: Path, precisions: Sequence[str], data: Optional[Path] = None) -> None:
    q = shlex.quote(str(out))
    best = precisions[-1] if precisions else "fp32"
    print("next:")
    print(f"  edgepose-export --verify {q}")
    print(f"  edgepose-bench {q} --data {shlex.quote(str(data)) if data else 'DATA'} --out report")
    print(f"  edgepose-run {q} --source VIDEO_OR_FOLDER --precision {best}")


if __name__ == "__main__":
    sys.exit(main())
