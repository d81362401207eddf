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
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgepose.bundle import MANIFEST, PRECISIONS, load_manifest, verify_files
from edgepose.errors import ConfigError, EdgePoseError
from edgepose.progress import progress

from .bundle_writer import (CHECKPOINT_NAME, ONNX_NAMES, PARITY_NAME, assemble, input_spec, model_section,
                            normalization, outputs_spec)
from .engines import build_engines, jetson_instructions, require_tensorrt

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USER_ERROR = 0, 1, 2
CALIB_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIB_FRAMES = 300
DEFAULT_VAL_FRAMES = 200
GUIDE_EVERY = 10  # guided INT8 ranks layers on every 10th training frame ...
GUIDE_MAX_FRAMES = 64  # ... at most this many (each guided step evaluates them all)
PARITY_FRAMES = 8

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
    g = p.add_argument_group("precision")
    g.add_argument("--precision", default=None,
                   help="comma list of fp32,fp16,int8 (default: fp32,fp16 from a run; every ONNX "
                        "precision of a bundle). model.onnx (fp32) is always written")
    g.add_argument("--allow-slow-precision", action="store_true",
                   help="build FP16/INT8 engines even where TensorRT reports them as not fast")
    g = p.add_argument_group("INT8 calibration (training frames only)")
    g.add_argument("--calib", metavar="DATA", type=Path,
                   help="dataset folder for calibration and validation (default: the run's dataset)")
    g.add_argument("--calib-frames", type=int, default=DEFAULT_CALIB_FRAMES,
                   help=f"calibration frames from the training split (default {DEFAULT_CALIB_FRAMES}; "
                        "fewer than 300 warns)")
    g.add_argument("--calib-method", choices=CALIB_METHODS, default="minmax",
                   help="activation range method of the Q/DQ pass (default minmax)")
    g.add_argument("--int8-max-drift-m", type=float, default=None,
                   help="guided mixed precision: keep layers in float until the INT8 median position "
                        "drift vs FP32 is at most this (m)")
    g.add_argument("--int8-max-drift-deg", type=float, default=None,
                   help="same for the median rotation drift (deg)")
    g.add_argument("--int8-engine", choices=("qdq", "calibrator"), default="qdq",
                   help="TensorRT INT8 from the Q/DQ model (default; TRT 8.5-11) or by implicit "
                        "calibration with IInt8EntropyCalibrator2 (TRT 8.x; cache in the bundle)")
    g = p.add_argument_group("graph")
    g.add_argument("--batch", type=int, default=1, help="fixed batch size (default 1)")
    g.add_argument("--dynamic-batch", metavar="MIN:OPT:MAX", default=None,
                   help="dynamic batch axis with this TensorRT optimization profile, e.g. 1:4:8")
    g.add_argument("--input", choices=("uint8", "float32"), default="uint8",
                   help="uint8 NHWC (default: 4x fewer bytes, normalisation in the graph) or float32 NCHW 0..255")
    g.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17, at most 20)")
    g.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    g = p.add_argument_group("validation (test split)")
    g.add_argument("--val-frames", type=int, default=DEFAULT_VAL_FRAMES,
                   help=f"test frames for accuracy and drift (default {DEFAULT_VAL_FRAMES}, spread over the split)")
    g.add_argument("--max-drift-m", type=float, default=None,
                   help="fail (exit 1) when an FP16/INT8 median position drift vs FP32 exceeds this (m)")
    g.add_argument("--max-drift-deg", type=float, default=None,
                   help="fail (exit 1) when an FP16/INT8 median rotation drift vs FP32 exceeds this (deg)")
    g = p.add_argument_group("TensorRT")
    g.add_argument("--engine", choices=("auto", "yes", "no"), default="auto",
                   help="build engines: auto = when TensorRT is importable (default), yes = required, no = never")
    g.add_argument("--dla-core", type=int, default=None, help="build for this DLA core (GPU fallback on)")
    g.add_argument("--workspace-gb", type=float, default=1.0, help="builder workspace limit (default 1 GB)")
    g.add_argument("--timing-cache-dir", type=Path, default=None,
                   help="where tensorrt.<version>.<gpu>.sm<cc>.timingcache lives (default $EDGEPOSE_CACHE or ~/.cache/edgepose)")
    return p


def parse_precisions(text: Optional[str], default: Sequence[str]) -> List[str]:
    """``"fp16,int8"`` -> ``["fp16", "int8"]`` in canonical order; unknown names raise :class:`ConfigError`."""
    if text is None:
        return list(default)
    asked = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in asked if t not in PRECISIONS]
    if unknown or not asked:
        raise ConfigError(f"--precision {text!r}: unknown precision {', '.join(unknown) or '(empty)'}; "
                          f"expected a comma list of {', '.join(PRECISIONS)}", hint="e.g. --precision fp32,fp16,int8")
    return [p for p in PRECISIONS if p in asked]


def parse_batch(batch: int, dynamic: Optional[str]) -> Tuple[Tuple[int, int, int], bool]:
    """``((min, opt, max), dynamic)`` from ``--batch`` / ``--dynamic-batch MIN:OPT:MAX``."""
    if dynamic is None:
        if batch < 1:
            raise ConfigError(f"--batch must be >= 1; got {batch}")
        return (batch, batch, batch), False
    try:
        lo, opt, hi = (int(v) for v in dynamic.split(":"))
    except ValueError:
        raise ConfigError(f"--dynamic-batch {dynamic!r}: expected MIN:OPT:MAX integers, e.g. 1:4:8") from None
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"--dynamic-batch {dynamic!r}: needs 1 <= MIN <= OPT <= MAX")
    return (lo, opt, hi), True


# --------------------------------------------------------------------------- entry point
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.verify is not None:
            return run_verify(args.verify)
        if args.source is None:
            raise ConfigError("SOURCE is missing: pass a training run, a checkpoint or a bundle",
                              hint="see edgepose-export --help")
        source = Path(args.source)
        if (source / MANIFEST).is_file():
            return export_from_bundle(source, args)
        return export_from_checkpoint(source, args)
    except EdgePoseError as exc:
        print(f"edgepose-export: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # pragma: no cover
        print("edgepose-export: interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk: the bundle is built aside, --out is left as it was
        from edgepose.cli.guard import disk_full_message, is_disk_full

        if not is_disk_full(exc):
            raise
        print(f"edgepose-export: error: {disk_full_message(exc)}; {args.out or args.source} was left as it was\n"
              "  -> free some space and export again", file=sys.stderr)
        return EXIT_USER_ERROR


def run_verify(bundle: Path) -> int:
    from edgepose.errors import BundleError

    from .verify import verify_bundle

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


# --------------------------------------------------------------------------- bundle -> engines
def export_from_bundle(source: Path, args) -> int:
    """Build engines from the ONNX files of an existing bundle (no torch)."""
    manifest = load_manifest(source)
    verify_files(source, manifest)
    have = [e.get("precision") for e in manifest["files"].values() if e.get("role") == "onnx"]
    precisions = parse_precisions(args.precision, [p for p in PRECISIONS if p in have])
    out = args.out or source
    trt = require_tensorrt(args.engine, str(out), precisions, manifest["input"])
    if trt is None:
        if args.engine == "no":
            print("--engine no: nothing to do for an existing bundle")
        else:
            print(jetson_instructions(str(out), precisions, manifest["input"], args.int8_engine, args.dla_core,
                                      args.workspace_gb))
        return EXIT_OK
    calib = _calib_frames_only(args, manifest) if args.int8_engine == "calibrator" and "int8" in precisions else None
    with assemble(out, overwrite=args.overwrite) as asm:
        asm.start_from(source, manifest)
        built = build_engines(trt, asm, manifest["input"], precisions, int8_mode=args.int8_engine,
                              dla_core=args.dla_core, workspace_gb=args.workspace_gb,
                              allow_slow=args.allow_slow_precision, calib_images=calib,
                              cache_dir=args.timing_cache_dir)
        new = {k: v for k, v in manifest.items() if k != "files"}
        asm.finish(new)
    print(f"bundle {out}: {len(built)} engine(s) built: {', '.join(built)}")
    _print_next(out, precisions)
    return EXIT_OK


def _calib_frames_only(args, manifest) -> Optional[np.ndarray]:
    if args.calib is None:
        return None
    from edgepose.datasets import load_dataset

    from .calibration import load_calibration_images, select_calibration_frames

    ds = load_dataset(args.calib)
    recs = select_calibration_frames(ds.split("train"), args.calib_frames)
    W, H = manifest["model"]["input_size"]
    return load_calibration_images(recs, (W, H), progress=True)


# --------------------------------------------------------------------------- run -> bundle
class Frames:
    """Calibration (training split) and validation (test split) frames of one dataset."""

    def __init__(self):
        self.calib: Optional[np.ndarray] = None
        self.calib_info: Optional[dict] = None
        self.val: Optional[np.ndarray] = None
        # every 10th training frame: ranks layers for guided INT8 (never the test split)
        self.guide: Optional[np.ndarray] = None
        self.val_position: Optional[np.ndarray] = None
        self.val_rotation: Optional[np.ndarray] = None
        self.source = "none"
        self.root: Optional[Path] = None  # the dataset the frames came from


def load_frames(args, data_info: dict, size: Tuple[int, int], need_calib: bool) -> Frames:
    """Frames for calibration and drift; a missing dataset is an error only when INT8 needs it."""
    from edgepose.datasets import load_dataset

    from .calibration import calibration_info, frame_names, load_calibration_images, select_calibration_frames

    frames = Frames()
    root = args.calib or (Path(data_info["root"]) if data_info.get("root") else None)
    if root is None or not Path(root).exists():
        where = "--calib DATA" if args.calib else "the checkpoint's data root"
        msg = f"dataset not found ({where}: {root})"
        if need_calib:
            raise EdgePoseError(msg + "; INT8 needs calibration frames from the training split",
                                hint="pass --calib DATA (the dataset the model was trained on)")
        print(f"warning: {msg}; accuracy and drift are not measured (pass --calib DATA to measure them)")
        return frames
    fmt = None if args.calib else data_info.get("format")
    policy = None if args.calib else data_info.get("split_policy")
    ds = load_dataset(root, fmt, policy, allow_outside=not args.calib and bool(data_info.get("allow_outside_images")))
    frames.source = f"{ds.format} dataset {root}"
    frames.root = Path(root)
    if need_calib:
        recs = select_calibration_frames(ds.split("train"), args.calib_frames)
        frames.calib = load_calibration_images(recs, size, progress=True)
        frames.calib_info = calibration_info(frame_names(recs, root), args.calib_method, 1, source=f"train split of {root}")
        if args.int8_max_drift_m is not None or args.int8_max_drift_deg is not None:
            guide = ds.split("train")[::GUIDE_EVERY][:GUIDE_MAX_FRAMES]
            frames.guide = load_calibration_images(guide, size, progress=True, desc="guide frames (train split)")
    test = ds.split("test")
    if args.val_frames < 1:
        raise ConfigError(f"--val-frames must be >= 1; got {args.val_frames}")
    idx = np.unique(np.linspace(0, len(test) - 1, min(args.val_frames, len(test))).round().astype(int))
    recs = [test[i] for i in idx]
    frames.val = load_calibration_images(recs, size, progress=True, desc="validation frames (test split)")
    frames.val_position = np.stack([r.position for r in recs])
    frames.val_rotation = np.stack([r.rotation for r in recs])
    return frames


def export_from_checkpoint(source: Path, args) -> int:
    if args.out is None:
        raise ConfigError("--out BUNDLE is required when SOURCE is a run or a checkpoint",
                          hint=f"e.g. edgepose-export {source} --out bundles/{source.name or 'model'}")
    precisions = parse_precisions(args.precision, ("fp32", "fp16"))
    batch, dynamic = parse_batch(args.batch, args.dynamic_batch)
    if args.calib_frames < 1:
        raise ConfigError(f"--calib-frames must be >= 1; got {args.calib_frames}")
    for name in ("max_drift_m", "max_drift_deg", "int8_max_drift_m", "int8_max_drift_deg"):
        v = getattr(args, name)
        if v is not None and not v >= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be a number >= 0; got {v}")
    from .bundle_writer import check_out_dir

    check_out_dir(args.out, overwrite=args.overwrite)  # before any work: export never deletes a user's file
    trt = require_tensorrt(args.engine, str(args.out), precisions)  # fail fast, before any work

    from edgepose.train.model import load_model, read_checkpoint, resolve_checkpoint

    ckpt_path = resolve_checkpoint(source)
    ckpt = read_checkpoint(ckpt_path)
    model = load_model(ckpt_path)
    config = model.config
    size = tuple(int(v) for v in config["input_size"])
    t0 = time.perf_counter()
    frames = load_frames(args, ckpt.get("data") or {}, size, need_calib="int8" in precisions and not ckpt.get("qat"))
    spec = input_spec(args.input, size, batch, dynamic)

    from .onnx_export import export_onnx
    from .verify import record_parity

    with assemble(args.out, overwrite=args.overwrite) as asm:
        parity_images = frames.val[:PARITY_FRAMES] if frames.val is not None else None
        print(f"exporting {ckpt_path} ({config['backbone']}, {size[0]}x{size[1]}) to ONNX ...")
        info: Dict[str, dict] = {}
        info["fp32"] = export_onnx(model, asm.path(ONNX_NAMES["fp32"]), input=args.input, batch=batch[1],
                                   dynamic=batch if dynamic else None, opset=args.opset,
                                   simplify=not args.no_simplify, parity_images=parity_images)
        onnx_files = {"fp32": ONNX_NAMES["fp32"]}
        if "fp16" in precisions:
            from .fp16 import to_fp16

            info["fp16"] = to_fp16(asm.path(ONNX_NAMES["fp32"]), asm.path(ONNX_NAMES["fp16"]))
            onnx_files["fp16"] = ONNX_NAMES["fp16"]
        if "int8" in precisions:
            info["int8"] = _int8(args, asm, frames, ckpt)
            onnx_files["int8"] = ONNX_NAMES["int8"]
        for prec, rel in onnx_files.items():
            asm.register(rel, "onnx", prec, input=args.input)
        asm.add_file(ckpt_path, CHECKPOINT_NAME, "checkpoint", "fp32", format=ckpt.get("format"))

        validation, rows_ok, failures = {}, True, []
        if frames.val is not None:
            validation, failures = measure(asm, onnx_files, frames, args)
            rows_ok = not failures
        if parity_images is None:
            from .onnx_export import example_images

            parity_images, parity_source = example_images(size, n=4), "synthetic (no dataset)"
        else:
            parity_source = f"test split of {frames.source}"
        parity = record_parity(asm.dir, parity_images, onnx_files, parity_source)
        asm.register(PARITY_NAME, "parity", None)

        if trt is not None:
            build_engines(trt, asm, spec, precisions, int8_mode=args.int8_engine, dla_core=args.dla_core,
                          workspace_gb=args.workspace_gb, allow_slow=args.allow_slow_precision,
                          calib_images=frames.calib, cache_dir=args.timing_cache_dir)
        manifest = {
            "model": model_section(config),
            "input": spec,
            "outputs": outputs_spec(dynamic, batch[1]),
            "normalization": normalization(config),
            "training": {"checkpoint": str(Path(ckpt_path).resolve()), "metrics": ckpt.get("metrics") or {},
                         "data": ckpt.get("data") or {}},
            "calibration": frames.calib_info,
            "validation": validation,
            "validation_frames": {"n": 0 if frames.val is None else int(len(frames.val)), "split": "test",
                                  "source": frames.source, "passed": rows_ok,
                                  "max_drift_m": args.max_drift_m, "max_drift_deg": args.max_drift_deg},
            "parity": parity,
            "export": {"tool": "edgepose-export", "argv": list(sys.argv[1:]) if sys.argv else [],
                       "precisions": precisions, "opset": args.opset, "engine": args.engine,
                       "int8_engine": args.int8_engine, "onnx": _jsonable(info)},
        }
        asm.finish(manifest)
    print_table(args.out, validation, onnx_files)
    if "int8" in precisions:
        from edgepose.int8_speed import onnx_gmacs, project

        print(project(config["backbone"], onnx_gmacs(Path(args.out) / ONNX_NAMES["fp32"]))["label"] + "\n")
    print(f"bundle written: {args.out} ({time.perf_counter() - t0:.0f} s)")
    if trt is None and args.engine == "auto":
        print(jetson_instructions(str(args.out), precisions, spec, args.int8_engine, args.dla_core, args.workspace_gb))
    if failures:
        print("edgepose-export: drift check FAILED:\n    " + "\n    ".join(failures), file=sys.stderr)
        print("  -> the bundle is written and records the drift; loosen the bound, keep more layers in float "
              "(--int8-max-drift-m), or drop the precision", file=sys.stderr)
        return EXIT_CHECK_FAILED
    _print_next(args.out, precisions, frames.root)
    if "int8" in validation and not ckpt.get("qat") and validation.get("fp32", {}).get("median_position_m"):
        from .qat_int8 import expected_qat_gain

        share = validation["int8"]["drift_p50_m"] / validation["fp32"]["median_position_m"]
        print(expected_qat_gain(str(Path(ckpt_path).parent if Path(ckpt_path).name == "final.pt" else source),
                                str(frames.root or "DATA"), share))
    return EXIT_OK


def _int8(args, asm, frames: Frames, ckpt: Optional[dict] = None) -> dict:
    src, dst = asm.path(ONNX_NAMES["fp32"]), asm.path(ONNX_NAMES["int8"])
    if ckpt and ckpt.get("qat"):  # quantization-aware fine-tuned: its own ranges, no calibration
        from .qat_int8 import quantize_from_qat

        print("int8: Q/DQ from the QAT stage's ranges (no re-calibration)")
        info = quantize_from_qat(src, dst, ckpt)
        frames.calib_info = {"method": "qat", "frames": 0, "batch": None,
                             "source": "the QAT stage's activation ranges (checkpoint 'qat'), no calibration"}
        return info
    if args.int8_max_drift_m is not None or args.int8_max_drift_deg is not None:
        if frames.guide is None:
            raise EdgePoseError("guided INT8 (--int8-max-drift-*) needs training frames to rank layers on; "
                                "the dataset was not found", hint="pass --calib DATA")
        from .sensitivity import guided_int8

        # layers are ranked on held-out training frames; the test split only reports the result
        info = guided_int8(src, dst, frames.calib, frames.guide, max_drift_m=args.int8_max_drift_m,
                           max_drift_deg=args.int8_max_drift_deg, method=args.calib_method,
                           progress=lambda line: print(f"  guided int8: {line}"))
        if not info.get("met", True):
            print(f"warning: guided INT8 did not reach the bound {info.get('bound')} within its steps; "
                  f"kept in float: {info.get('float_units')}")
    else:
        from .int8_qdq import quantize_int8

        info = quantize_int8(src, dst, frames.calib, method=args.calib_method)
    if frames.calib_info is not None and info.get("batch"):
        frames.calib_info["batch"] = int(info["batch"])
    return info


def measure(asm, onnx_files: Dict[str, str], frames: Frames, args) -> Tuple[dict, List[str]]:
    """Accuracy and drift vs FP32 of every precision on the validation frames.

    INT8 is run twice: Q/DQ in float (``int8``: the numerics TensorRT approximates) and through
    ONNX Runtime's own int8 kernels (``int8-ort``, labelled as such).
    """
    from .drift import drift_row, within_bounds
    from .parity import evaluate_onnx

    runs = [(p, rel, "disable") for p, rel in onnx_files.items()]
    if "int8" in onnx_files:
        runs.append(("int8-ort", onnx_files["int8"], "all"))
    outs = {}
    for key, rel, opt in progress(runs, desc="drift evaluation", unit="graph"):
        outs[key] = evaluate_onnx(asm.path(rel), frames.val, optimization=opt)
    ref = outs["fp32"]
    rows, failures = {}, []
    labels = {"int8": "INT8 Q/DQ run in float (TensorRT-like numerics)",
              "int8-ort": "INT8 through ONNX Runtime's int8 kernels (CPU; not what TensorRT runs)"}
    for key, out in outs.items():
        row = drift_row(out, ref, frames.val_position, frames.val_rotation)
        row["file"] = onnx_files[key.split("-")[0]]
        row["label"] = labels.get(key, f"{key.upper()} in ONNX Runtime")
        rows[key] = row
        if key != "fp32":
            d = {"position_p50_m": row["drift_p50_m"], "rotation_p50_deg": row["drift_p50_deg"]}
            if not within_bounds(d, args.max_drift_m, args.max_drift_deg):
                failures.append(f"{key}: median drift {row['drift_p50_m']:.4g} m / {row['drift_p50_deg']:.4g} deg "
                                f"exceeds --max-drift-m {args.max_drift_m} / --max-drift-deg {args.max_drift_deg}")
    return rows, failures


def print_table(out: Path, validation: dict, onnx_files: Dict[str, str]) -> None:
    """The one-screen summary: file, size, accuracy, drift vs FP32."""
    head = f"{'precision':<10}{'file':<18}{'MB':>7}{'med pos m':>11}{'med rot °':>11}" \
           f"{'drift p50 m':>13}{'p95 m':>10}{'p50 °':>9}{'p95 °':>9}"
    print("\n" + head + "\n" + "-" * len(head))
    keys = list(validation) or list(onnx_files)
    for key in keys:
        row = validation.get(key, {})
        rel = row.get("file") or onnx_files.get(key, "")
        size = (Path(out) / rel).stat().st_size / 1e6 if rel and (Path(out) / rel).is_file() else float("nan")
        f = lambda k, w, fmt: (format(row[k], fmt) if k in row else "-").rjust(w)  # noqa: E731
        print(f"{key:<10}{rel:<18}{size:>7.2f}{f('median_position_m', 11, '.4f')}{f('median_rotation_deg', 11, '.2f')}"
              f"{f('drift_p50_m', 13, '.2e')}{f('drift_p95_m', 10, '.2e')}{f('drift_p50_deg', 9, '.3f')}"
              f"{f('drift_p95_deg', 9, '.3f')}")
    if "int8-ort" in validation:
        print("int8 = Q/DQ in float (TensorRT-like); int8-ort = ONNX Runtime int8 kernels on this CPU")
    if not validation:
        print("(no validation frames: accuracy and drift not measured)")
    print()


def _print_next(out: Path, precisions: Sequence[str], data: Optional[Path] = None) -> None:
    q = shlex.quote(str(out))
    best = precisions[-1] if precisions else "fp32"
    print("next:")
    print(f"  edgepose-export --verify {q}")
    print(f"  edgepose-bench {q} --data {shlex.quote(str(data)) if data else 'DATA'} --out report")
    print(f"  edgepose-run {q} --source VIDEO_OR_FOLDER --precision {best}")


def _jsonable(obj):
    """Keep only JSON types (numpy scalars -> float/int)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


if __name__ == "__main__":
    sys.exit(main())
