"""Accuracy and drift of every precision of one trained run: FP32, FP16, INT8 (naive, per
calibration method, guided), INT8 both as Q/DQ in float and through ONNX Runtime's int8 kernels.

    .venv/bin/python benchmarks/export_drift.py RUN [--out benchmarks/results/export_drift.md]

Each variant is one :func:`edgepose.export.export_bundle` call (the exporter users run, into a
temporary bundle), so the figures are the ones ``edgepose-export`` writes into a manifest.
Frames (no test frame influences any choice), as the exporter picks them:
* calibration: up to --calib-frames training-split frames;
* guide: every 10th training-split frame (at most 64), used only by the guided search to rank layers;
* report: the whole test split (accuracy and drift vs FP32 below).
Appends a section to the results file with the command, versions and the table.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import append_section  # noqa: E402

from edgepose.frame_choice import CALIBRATION_FRAMES  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="training run folder (RUN/final.pt) or a checkpoint")
    p.add_argument("--data", type=Path, default=None, help="dataset (default: the checkpoint's data root)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/export_drift.md"))
    p.add_argument("--label", default=None, help="section title (default: the run folder name)")
    p.add_argument("--calib-frames", type=int, default=CALIBRATION_FRAMES)
    p.add_argument("--guided-rel", type=float, default=0.10,
                   help="guided INT8 bound as a fraction of the FP32 median position error (default 0.10)")
    p.add_argument("--max-steps", type=int, default=18)
    args = p.parse_args(argv)

    import onnxruntime
    import torch

    from edgepose.export import ExportConfig, export_bundle

    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    t0 = time.time()
    quiet = lambda line: None  # noqa: E731
    rows, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        def export(name, **kw):
            cfg = ExportConfig(args.run, out=Path(tmp) / name, calib=args.data, calib_frames=args.calib_frames,
                               dynamic_batch=(1, 8, 32), val_frames=10**9, engine="no", **kw)
            results[name] = r = export_bundle(cfg, log=quiet)
            print(f"{name} done ({time.time() - t0:.0f} s)", flush=True)
            return r.validation

        v = export("minmax", precisions=["fp32", "fp16", "int8"], calib_method="minmax")
        rows["fp32 (ORT)"] = v["fp32"]
        rows["fp16 (ORT, FP32 pre/post)"] = v["fp16"]
        rows["fp16, FC+heads FP32"] = export("fp16h", precisions=["fp32", "fp16"], fp16_keep_heads_fp32=True)["fp16"]
        rows["int8 naive minmax (Q/DQ in float)"] = v["int8"]
        rows["int8 naive minmax (ORT int8 kernels)"] = v["int8-ort"]
        for method in ("entropy", "percentile"):
            rows[f"int8 naive {method} (Q/DQ in float)"] = export(method, precisions=["int8"], calib_method=method)["int8"]
        err = rows["fp32 (ORT)"]["median_position_m"]
        bound = args.guided_rel * err
        v = export("guided", precisions=["int8"], int8_max_drift_m=bound, guided_max_steps=args.max_steps)
        rows["int8 guided minmax (Q/DQ in float)"] = v["int8"]
        rows["int8 guided minmax (ORT int8 kernels)"] = v["int8-ort"]

    typed = results["minmax"].manifest
    m = typed.to_json()
    g = results["guided"].manifest.extra["export"]["onnx"]["int8"]
    exp = m["export"]["onnx"]["fp32"]
    cal, val = m["calibration"], m["validation_frames"]
    W, H = typed.input_size
    cmd = "python benchmarks/export_drift.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"\n## {args.label or args.run.name}\n",
             f"Command: `{cmd}`  ",
             f"Checkpoint: `{m['training']['checkpoint']}` ({m['model']['backbone']}, {W}x{H}); "
             f"data: `{results['minmax'].data_root}`  ",
             f"Frames: calibration {cal['frames']} (training split, sha256 {cal['frames_sha256'][:12]}), "
             "guide: every 10th training frame, at most 64 (ranks layers), report: all {val['n']} test frames  ",
             f"Versions: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
             f"{platform.processor() or platform.machine()}, {time.time() - t0:.0f} s  ",
             f"ONNX: simplified={exp['simplified']}, parity vs PyTorch max {exp['parity']['max_position_m']:.2g} m / "
             f"{exp['parity']['max_rotation_deg']:.2g} deg\n",
             "| precision | median pos err (m) | median rot err (deg) | drift p50 (m) | drift p95 (m) | "
             "drift p50 (deg) | drift p95 (deg) | drift p50 / FP32 err |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        rel = r.get("drift_p50_rel", 0.0)
        lines.append(f"| {name} | {r['median_position_m']:.4f} | {r['median_rotation_deg']:.2f} | {r['drift_p50_m']:.4f} | "
                     f"{r['drift_p95_m']:.4f} | {r['drift_p50_deg']:.3f} | {r['drift_p95_deg']:.3f} | {100 * rel:.1f}% |")
    lines += ["", f"Guided search: bound {bound:.4f} m ({100 * args.guided_rel:.0f}% of the FP32 error) on the guide frames; "
              f"met: {g['met']}; naive guide drift {g['naive']['drift_p50_m']:.4f} m -> guided {g['guided']['drift_p50_m']:.4f} m; "
              f"left in float: {', '.join(g['float_units']) or 'none'}.  ",
              "Most sensitive units (alone quantized, guide drift p50 m): "
              + ", ".join(f"{k} {v['drift_p50_m']:.4f}" for k, v in list(g["sensitivity"].items())[:6]) + "\n"]
    append_section(args.out, "# Export drift: accuracy and drift vs FP32 of each precision\n\n"
                            "Drift = per-frame distance between a precision's outputs and the FP32 graph's on the same "
                            "frame. 'Q/DQ in float' = ONNX Runtime with graph optimisations disabled (quantize -> "
                            "dequantize -> float arithmetic: what TensorRT INT8 approximates); 'ORT int8 kernels' = the "
                            "same file with ORT's fused int8 CPU kernels (only what an ORT CPU user gets).\n",
                   "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
