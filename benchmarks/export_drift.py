"""Accuracy and drift of every precision of one trained run: FP32, FP16, INT8 (naive, per
calibration method, guided), INT8 both as Q/DQ in float and through ONNX Runtime's int8 kernels.

    .venv/bin/python benchmarks/export_drift.py RUN [--out benchmarks/results/export_drift.md]

Frames (no test frame influences any choice):
* calibration: up to --calib-frames training-split frames, minus the guide frames;
* guide: every 10th training-split frame, used only by the guided search to rank layers;
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

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="training run folder (RUN/final.pt) or a checkpoint")
    p.add_argument("--data", type=Path, default=None, help="dataset (default: the checkpoint's data root)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/export_drift.md"))
    p.add_argument("--label", default=None, help="section title (default: the run folder name)")
    p.add_argument("--calib-frames", type=int, default=300)
    p.add_argument("--guided-rel", type=float, default=0.10,
                   help="guided INT8 bound as a fraction of the FP32 median position error (default 0.10)")
    p.add_argument("--max-steps", type=int, default=18)
    args = p.parse_args(argv)

    import onnxruntime
    import torch

    from edgepose.datasets import load_dataset
    from edgepose.export.calibration import frame_list_sha256, frame_names, load_calibration_images, select_calibration_frames
    from edgepose.export.drift import drift_row
    from edgepose.export.fp16 import to_fp16
    from edgepose.export.int8_qdq import quantize_int8
    from edgepose.export.onnx_export import export_onnx
    from edgepose.export.parity import evaluate_onnx
    from edgepose.export.sensitivity import guided_int8
    from edgepose.train.model import load_model, read_checkpoint, resolve_checkpoint

    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    t0 = time.time()
    ckpt_path = resolve_checkpoint(args.run)
    ckpt = read_checkpoint(ckpt_path)
    model = load_model(ckpt_path)
    W, H = model.config["input_size"]
    data = ckpt.get("data") or {}
    root = args.data or Path(data["root"])
    ds = load_dataset(root, None if args.data else data.get("format"), None if args.data else data.get("split_policy"))
    train, test = ds.split("train"), ds.split("test")
    guide_recs = train[::10]
    calib_pool = [r for i, r in enumerate(train) if i % 10]
    calib_recs = select_calibration_frames(calib_pool, args.calib_frames)
    calib = load_calibration_images(calib_recs, (W, H))
    guide = load_calibration_images(guide_recs, (W, H))
    val = load_calibration_images(test, (W, H))
    tp = np.stack([r.position for r in test])
    tq = np.stack([r.rotation for r in test])
    print(f"frames: calib {len(calib)} guide {len(guide)} test {len(val)}", flush=True)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        f32 = tmp / "model.onnx"
        exp = export_onnx(model, f32, dynamic=(1, 8, 32), parity_images=val[:8])
        ref = evaluate_onnx(f32, val, optimization="disable")
        rows["fp32 (ORT)"] = drift_row(ref, ref, tp, tq)
        err = rows["fp32 (ORT)"]["median_position_m"]
        to_fp16(f32, tmp / "fp16.onnx")
        rows["fp16 (ORT, FP32 pre/post)"] = drift_row(evaluate_onnx(tmp / "fp16.onnx", val), ref, tp, tq, err)
        to_fp16(f32, tmp / "fp16h.onnx", keep_heads_fp32=True)
        rows["fp16, FC+heads FP32"] = drift_row(evaluate_onnx(tmp / "fp16h.onnx", val), ref, tp, tq, err)
        for method in ("minmax", "entropy", "percentile"):
            q = tmp / f"int8_{method}.onnx"
            quantize_int8(f32, q, calib, method=method)
            rows[f"int8 naive {method} (Q/DQ in float)"] = drift_row(evaluate_onnx(q, val, "disable"), ref, tp, tq, err)
            if method == "minmax":
                rows["int8 naive minmax (ORT int8 kernels)"] = drift_row(evaluate_onnx(q, val, "all"), ref, tp, tq, err)
            print(f"{method} done ({time.time() - t0:.0f} s)", flush=True)
        bound = args.guided_rel * err
        g = guided_int8(f32, tmp / "guided.onnx", calib, guide, max_drift_m=bound, max_steps=args.max_steps,
                        progress=lambda s: print("  " + s, flush=True))
        rows["int8 guided minmax (Q/DQ in float)"] = drift_row(evaluate_onnx(tmp / "guided.onnx", val, "disable"),
                                                               ref, tp, tq, err)
        rows["int8 guided minmax (ORT int8 kernels)"] = drift_row(evaluate_onnx(tmp / "guided.onnx", val, "all"),
                                                                  ref, tp, tq, err)

    cmd = "python benchmarks/export_drift.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"\n## {args.label or args.run.name}\n",
             f"Command: `{cmd}`  ",
             f"Checkpoint: `{ckpt_path}` ({model.config['backbone']}, {W}x{H}); data: `{root}`  ",
             f"Frames: calibration {len(calib)} (training split, sha256 {frame_list_sha256(frame_names(calib_recs, root))[:12]}), "
             f"guide {len(guide)} (every 10th training frame, ranks layers), report: all {len(val)} test frames  ",
             f"Versions: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {platform.processor() or platform.machine()}, "
             f"{time.time() - t0:.0f} s  ",
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
              f"met: {g['met']}; naive guide drift {g['naive']['position_p50_m']:.4f} m -> guided {g['guided']['position_p50_m']:.4f} m; "
              f"left in float: {', '.join(g['float_units']) or 'none'}.  ",
              "Most sensitive units (alone quantized, guide drift p50 m): "
              + ", ".join(f"{k} {v['position_p50_m']:.4f}" for k, v in list(g["sensitivity"].items())[:6]) + "\n"]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.out.exists():
        args.out.write_text("# Export drift: accuracy and drift vs FP32 of each precision\n\n"
                            "Drift = per-frame distance between a precision's outputs and the FP32 graph's on the same "
                            "frame. 'Q/DQ in float' = ONNX Runtime with graph optimisations disabled (quantize -> "
                            "dequantize -> float arithmetic: what TensorRT INT8 approximates); 'ORT int8 kernels' = the "
                            "same file with ORT's fused int8 CPU kernels (only what an ORT CPU user gets).\n")
    with args.out.open("a") as fh:
        fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
