"""INT8 side by side on one trained run: PTQ with ORT's placement (what edgepose shipped before),
PTQ at TensorRT's placement (MinMax, entropy, percentile), NVIDIA ModelOpt ONNX PTQ, and QAT.

    .venv/bin/python benchmarks/int8_qat.py RUN [--qat-epochs 1] [--label TEXT]
        [--out benchmarks/results/int8_qat.md]

RUN is a finished run (final.pt) or an unfinished one (its best checkpoint). Frames: calibration
from the training split only, the whole test split for the report. Every INT8 row is the Q/DQ
graph evaluated in float by ONNX Runtime (optimisations off: what TensorRT's INT8 approximates);
drift is per frame against the FP32 graph of the *same weights* (for QAT: the QAT weights), and
the last column compares each row's median error with the original FP32 model's. QAT runs on a
copy of RUN (stage 3, ``edgepose.train.trainer.fine_tune_qat``); its wall time is recorded with the
machine's load. Appends a section to the results file.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import append_section  # noqa: E402

from edgepose.frame_choice import CALIBRATION_FRAMES  # noqa: E402



def _ort_placement(f32, dst, calib):
    """edgepose's earlier INT8 pass: ORT quantize_static, symmetric QDQ (Q/DQ on Conv outputs too)."""
    import onnx
    from onnxruntime import quantization as q

    from edgepose.export.int8.qdq import default_exclusions, make_reader

    q.quantize_static(str(f32), str(dst), make_reader("image", "uint8", calib, 8), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                      nodes_to_exclude=default_exclusions(onnx.load(str(f32))),
                      extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})


def _modelopt(f32, dst, calib, method):
    from modelopt.onnx.quantization import quantize

    quantize(str(f32), quantize_mode="int8", calibration_data={"image": calib}, calibration_method=method,
             calibration_eps=["cpu"], high_precision_dtype="fp32", output_path=str(dst))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/int8_qat.md"))
    p.add_argument("--label", default=None)
    p.add_argument("--calib-frames", type=int, default=CALIBRATION_FRAMES)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--qat-lr", type=float, default=1e-5)
    p.add_argument("--skip", default="", help="comma list of rows to skip: ort,entropy,percentile,modelopt,guided,qat")
    p.add_argument("--guided-share", type=float, default=0.05,
                   help="guided PTQ's drift bound as a share of the FP32 median error (default 0.05: the target)")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    import onnxruntime
    import torch

    from edgepose.datasets import load_dataset
    from edgepose.export.int8.calibration import load_calibration_images, select_calibration_frames
    from edgepose.export.drift import drift_row
    from edgepose.export.int8.qdq import quantize_int8
    from edgepose.export.onnx_export import export_onnx
    from edgepose.export.parity import evaluate_onnx
    from edgepose.export.int8.qat import quantize_from_qat
    from edgepose.export.int8.placement import placement_problems
    from edgepose.train.model import load_model, read_checkpoint, resolve_checkpoint

    warnings.simplefilter("ignore")
    t0 = time.time()
    load0 = os.getloadavg()
    ckpt_path = resolve_checkpoint(args.run)
    ckpt = read_checkpoint(ckpt_path)
    model = load_model(ckpt_path)
    W, H = model.config["input_size"]
    data = ckpt.get("data") or {}
    ds = load_dataset(data["root"], data.get("format"), data.get("split_policy"))
    train, test = ds.split("train"), ds.split("test")
    calib = load_calibration_images(select_calibration_frames(train, args.calib_frames), (W, H))
    val = load_calibration_images(test, (W, H))
    tp, tq = np.stack([r.position for r in test]), np.stack([r.rotation for r in test])
    print(f"frames: calib {len(calib)} test {len(val)}", flush=True)

    rows, notes = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        f32 = tmp / "model.onnx"
        export_onnx(model, f32, dynamic=(1, 8, 32), parity_images=val[:8])
        ref = evaluate_onnx(f32, val, optimization="disable")
        rows["fp32"] = drift_row(ref, ref, tp, tq)
        err = rows["fp32"]["median_position_m"]

        def add(name, path, ref_out=ref, ref_err=err):
            out = evaluate_onnx(path, val, optimization="disable")
            rows[name] = drift_row(out, ref_out, tp, tq, ref_err)
            import onnx

            rows[name]["placement_problems"] = len(placement_problems(onnx.load(str(path))))
            print(f"{name}: drift p50 {rows[name]['drift_p50_m']:.4f} m ({time.time() - t0:.0f} s)", flush=True)

        if "ort" not in skip:
            _ort_placement(f32, tmp / "ort.onnx", calib)
            add("PTQ minmax, ORT quantize_static placement (edgepose before)", tmp / "ort.onnx")
        quantize_int8(f32, tmp / "mm.onnx", calib, method="minmax")
        add("PTQ minmax, TensorRT placement", tmp / "mm.onnx")
        for method in ("entropy", "percentile"):
            if method not in skip:
                quantize_int8(f32, tmp / f"{method}.onnx", calib, method=method)
                add(f"PTQ {method}, TensorRT placement", tmp / f"{method}.onnx")
        if "guided" not in skip:
            from edgepose.export.int8.sensitivity import guided_int8

            # guide frames: every 10th training frame (as the trainer's validation), calibration: the rest
            guide_idx = np.arange(0, len(train), 10)
            rest = [r for i, r in enumerate(train) if i % 10]
            g_calib = load_calibration_images(select_calibration_frames(rest, args.calib_frames), (W, H))
            g_val = load_calibration_images([train[i] for i in guide_idx], (W, H))
            bound = args.guided_share * err
            g = guided_int8(f32, tmp / "guided.onnx", g_calib, g_val, max_drift_m=bound)
            add(f"guided PTQ minmax (bound {100 * args.guided_share:.0f} % of FP32 error = {bound:.4f} m on "
                f"{len(g_val)} training frames; {len(g['float_units'])} units left in float: "
                f"{', '.join(g['float_units']) or 'none'})", tmp / "guided.onnx")
        if "modelopt" not in skip:
            for method in ("max", "entropy"):
                try:
                    _modelopt(f32, tmp / f"mo_{method}.onnx", calib, method)
                    add(f"ModelOpt ONNX PTQ ({method})", tmp / f"mo_{method}.onnx")
                except Exception as exc:  # noqa: BLE001 - recorded as a note, the table goes on
                    notes.append(f"ModelOpt {method}: {type(exc).__name__}: {str(exc)[:200]}")
        qat_line = ""
        if "qat" not in skip:
            from edgepose.train.recipe import TrainConfig
            from edgepose.train.trainer import fine_tune_qat

            run = tmp / "run"
            (run / "checkpoints").mkdir(parents=True)
            shutil.copyfile(ckpt_path, run / "final.pt")
            s1 = Path(args.run) / "checkpoints" / "stage1_best.pt"
            if s1.is_file():
                shutil.copyfile(s1, run / "checkpoints" / "stage1_best.pt")
            cfg = TrainConfig.from_recipe(ckpt.get("recipe"), data=str(data["root"]), out=str(run), progress=False,
                                          qat_epochs=args.qat_epochs, qat_lr=args.qat_lr)
            tq0, l0 = time.time(), os.getloadavg()
            qm = fine_tune_qat(cfg)
            wall = time.time() - tq0
            qck = read_checkpoint(run / "final.pt")
            qmodel = load_model(run / "final.pt")
            qf32 = tmp / "qat_fp32.onnx"
            export_onnx(qmodel, qf32, dynamic=(1, 8, 32), parity_images=val[:8])
            qref = evaluate_onnx(qf32, val, optimization="disable")
            rows["QAT weights, FP32"] = drift_row(qref, ref, tp, tq, err)
            quantize_from_qat(qf32, tmp / "qat.onnx", qck)
            add(f"QAT ({args.qat_epochs} epoch(s)), INT8 from its own ranges", tmp / "qat.onnx", qref,
                rows["QAT weights, FP32"]["median_position_m"])
            qat_line = (f"QAT stage: {args.qat_epochs} epoch(s) at lr {args.qat_lr:g}, best epoch {qm['qat.best_epoch']} "
                        f"(0 = calibration only), wall {wall:.0f} s incl. data loading and evaluation "
                        f"(train loop {qm['qat.train_seconds']:.0f} s), load average {l0[0]:.1f} -> "
                        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.  ")

    cmd = "python benchmarks/int8_qat.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"\n## {args.label or args.run.name}\n", f"Command: `{cmd}`  ",
             f"Checkpoint: `{ckpt_path}` ({model.config['backbone']}, {W}x{H}); data `{data['root']}`; "
             f"calibration {len(calib)} training frames; report: all {len(val)} test frames  ",
             f"Versions: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
             f"{platform.machine()}; {time.time() - t0:.0f} s; load average at start {load0[0]:.1f}  ", qat_line, "",
             "| INT8 variant (Q/DQ run in float) | median pos err (m) | median rot err (deg) | drift p50 (m) | "
             "drift p95 (m) | drift p50 (deg) | drift p50 / FP32 err | median err vs FP32 | placement problems |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['median_position_m']:.4f} | {r['median_rotation_deg']:.2f} | "
                     f"{r['drift_p50_m']:.4f} | {r['drift_p95_m']:.4f} | {r['drift_p50_deg']:.3f} | "
                     f"{100 * r.get('drift_p50_rel', 0.0):.1f} % | {100 * (r['median_position_m'] / err - 1):+.1f} % | "
                     f"{r.get('placement_problems', '-')} |")
    lines += [""] + [f"- {n}" for n in notes]
    append_section(args.out, "# INT8: PTQ placements and calibrators, ModelOpt ONNX PTQ and QAT, side by side\n\n"
                            "Written by `benchmarks/int8_qat.py` (see its docstring for the frames and what each "
                            "row is). Drift p50 / FP32 err: median per-frame position drift against the FP32 graph "
                            "of the same weights, as a share of that FP32 graph's median error (target <= 5 %); "
                            "median err vs FP32: the row's median position error against the original FP32 "
                            "model's (target within 5 %).\n",
                   "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
