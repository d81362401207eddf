"""Report writers: ``report.json`` (every figure), ``report.csv`` (one line per row) and
``report.md`` (the table). All writes are atomic. The JSON schema is in ``README.md`` beside
this file (``edgepose.bench/1``)."""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from edgepose.atomic import atomic_write_json, atomic_write_text
from edgepose.jsonsafe import json_safe

SCHEMA = "edgepose.bench/1"

#: scalar row fields, in CSV column order (see README.md for units)
CSV_FIELDS: Sequence[str] = (
    "label", "backend", "precision", "status", "error", "note", "model_file", "model_size_mb",
    "n_frames", "median_position_m", "median_rotation_deg", "mean_position_m", "mean_rotation_deg",
    "p90_position_m", "p90_rotation_deg",
    "drift_reference", "drift_p50_m", "drift_p95_m", "drift_max_m", "drift_p50_deg", "drift_p95_deg",
    "drift_max_deg",
    "sigma_spearman_position", "sigma_spearman_rotation", "within_1sigma_position", "within_2sigma_position",
    "within_3sigma_position", "within_1sigma_rotation", "within_2sigma_rotation", "within_3sigma_rotation",
    "median_sigma_position_m", "median_sigma_rotation_deg",
    "batch", "iters", "warmup_s", "warmup_calls", "inference_timing_source",
    "infer_p50_ms", "infer_p90_ms", "infer_p99_ms", "e2e_p50_ms", "e2e_p90_ms", "e2e_p99_ms",
    "throughput_fps", "peak_rss_mb", "rss_increase_mb",
    "power_source", "mean_power_w", "max_power_w", "energy_per_frame_mj", "ram_used_peak_mb",
)


def readable(path: Path) -> Path:
    """Make a report file world-readable (atomic writes create 0600 temporary files)."""
    try:
        os.chmod(path, 0o644)
    except OSError:  # pragma: no cover - e.g. a filesystem without modes
        pass
    return Path(path)


def write_json(path: Path, report: dict) -> Path:
    return readable(atomic_write_json(path, report))  # NaN -> null, listed under null_reasons


def _clean(obj):
    """JSON-safe copy: NaN/inf become ``null`` (JSON has no NaN), tuples become lists."""
    return json_safe(obj)


def write_csv(path: Path, rows: List[dict]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else _clean(r.get(k))) for k in CSV_FIELDS})
    return readable(atomic_write_text(path, buf.getvalue()))


def _f(v, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        if v != 0 and abs(v) < 10 ** (-nd):
            return f"{v:.1e}"
        return f"{v:.{nd}f}"
    return str(v)


def _pair(a, b, nd: int = 3) -> str:
    return "-" if a is None and b is None else f"{_f(a, nd)} / {_f(b, nd)}"


def _triple(r: dict, prefix: str) -> str:
    vals = [r.get(f"{prefix}_p{p}_ms") for p in (50, 90, 99)]
    return "-" if all(v is None for v in vals) else " / ".join(_f(v, 2) for v in vals)


MD_HEADER = ("row", "status", "size MB", "median pos m", "median rot deg", "drift p50/p95 m",
             "drift p50/p95 deg", "sigma rho pos/rot", "within 1/2/3 sigma pos", "infer p50/p90/p99 ms",
             "e2e p50/p90/p99 ms", "FPS", "peak RSS MB", "W", "mJ/frame")


def table_lines(rows: List[dict]) -> List[str]:
    """The Markdown table (also printed by the CLI)."""
    out = ["| " + " | ".join(MD_HEADER) + " |", "|" + "|".join("---" for _ in MD_HEADER) + "|"]
    for r in rows:
        status = r["status"] if r.get("status") in ("ok", "baseline") else f"failed: {str(r.get('error') or '')[:120]}"
        if r.get("reference_only"):
            status += " (FP32 drift reference only)"
        status = status.replace("|", "/").replace("\n", " ")
        cells = [
            r["label"], status, _f(r.get("model_size_mb"), 2), _f(r.get("median_position_m"), 4),
            _f(r.get("median_rotation_deg"), 3), _pair(r.get("drift_p50_m"), r.get("drift_p95_m"), 4),
            _pair(r.get("drift_p50_deg"), r.get("drift_p95_deg"), 3),
            _pair(r.get("sigma_spearman_position"), r.get("sigma_spearman_rotation"), 2),
            _pair(r.get("within_1sigma_position"), r.get("within_2sigma_position"), 2)
            + ("" if r.get("within_3sigma_position") is None else f" / {_f(r.get('within_3sigma_position'), 2)}"),
            _triple(r, "infer"), _triple(r, "e2e"), _f(r.get("throughput_fps"), 1), _f(r.get("peak_rss_mb"), 0),
            _f(r.get("mean_power_w"), 2), _f(r.get("energy_per_frame_mj"), 1),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


#: baselines a training run records (``metrics.json``, copied into the manifest's ``training``)
BASELINES = (("mean_pose", "baseline: mean training pose"),
             ("retrieval", "baseline: retrieval (pose of the nearest training image)"))


def baseline_rows(training_metrics: Optional[dict]) -> List[dict]:
    """Table rows of the baselines measured when the model was trained, on that run's test
    split: the mean-pose answer and nearest-neighbour retrieval (ImageNet features, cosine).
    A model that does not beat retrieval has learnt little beyond looking up training images."""
    m = training_metrics or {}
    rows = []
    for key, label in BASELINES:
        if m.get(f"baseline.{key}.median_position_m") is None:
            continue
        rows.append({"label": label, "backend": "baseline", "precision": "-", "status": "baseline",
                     **{k: m.get(f"baseline.{key}.{k}") for k in ("median_position_m", "median_rotation_deg",
                                                                 "mean_position_m", "mean_rotation_deg",
                                                                 "n_frames")}})
    if rows and m.get("test.median_position_m") is not None:
        rows.append({"label": "model at training (same split as the baselines)", "backend": "baseline",
                     "precision": "-", "status": "baseline",
                     **{k: m.get(f"test.{k}") for k in ("median_position_m", "median_rotation_deg", "n_frames",
                                                         "sigma_spearman_position", "sigma_spearman_rotation",
                                                         "within_1sigma_position", "within_2sigma_position",
                                                         "within_3sigma_position")}})
    return rows


def render_markdown(report: dict, plots: Optional[Dict[str, str]] = None) -> str:
    s = report.get("settings", {})
    d = report.get("data", {})
    sysinfo = report.get("system", {})
    cpu = (sysinfo.get("cpu") or {}).get("model")
    sw = sysinfo.get("software") or {}
    lines = [
        "# edgepose-bench report", "",
        f"- bundle: `{report.get('bundle', {}).get('path')}`",
        f"- data: `{d.get('root')}` ({d.get('format')}), split `{d.get('split')}`, {d.get('n_frames')} frames",
        f"- batch {s.get('batch')}, warm-up {s.get('warmup_s')} s, {s.get('iters')} timed iterations",
        f"- device: {cpu or 'unknown CPU'}; GPU: {sysinfo.get('gpu') or 'none'}; "
        f"onnxruntime {sw.get('onnxruntime') or sw.get('onnxruntime-gpu') or '-'}; tensorrt {sw.get('tensorrt') or '-'}",
    ]
    jet = sysinfo.get("jetson")
    if jet:
        lines.append(f"- Jetson: {jet.get('model')}; L4T {jet.get('l4t')}; JetPack {jet.get('jetpack')}; "
                     f"nvpmodel: {str(jet.get('nvpmodel') or '-').splitlines()[0] if jet.get('nvpmodel') else '-'}")
    lines.append(f"- command: `{report.get('command')}`")
    lines += ["", *table_lines(report.get("rows", []) + report.get("baselines", [])), ""]
    lines += [
        "Columns: errors are medians over the split against ground truth; drift is the per-frame distance "
        "to the FP32 row of the same backend family (p50 / p95); sigma rho is the Spearman correlation of the "
        "model's sigma with the actual error; within 1/2/3 sigma is the fraction of frames whose position error "
        "is at most 1 / 2 / 3 sigma (nominal 53 / 98 / 100 % for the chi-3 error model that sigma is "
        "calibrated to); baseline rows come from the training run's test split (the bundle manifest), "
        "which is this split only when the data and split are the same; infer = the runner's inference alone, e2e = preprocess (resize + crop from a "
        "decoded frame) + copies + inference + postprocess; percentiles over the timed iterations; FPS = frames "
        "/ wall time of the timed loop; peak RSS = the process's resident-memory high-water during the row "
        "(host memory only; not GPU memory).", ""]
    notes = report.get("notes") or []
    if notes:
        lines += ["Notes:", *[f"- {n}" for n in notes], ""]
    gate = report.get("gate")
    if gate:
        lines += [f"Gate `{gate.get('spec')}`: " + ("passed" if gate.get("passed") else "FAILED"),
                  *[f"- {v}" for v in gate.get("violations", [])], ""]
    if plots:
        lines += ["Plots:", *[f"- {k}: ![]({Path(v).name})" for k, v in plots.items()], ""]
    return "\n".join(lines)


def write_markdown(path: Path, report: dict, plots: Optional[Dict[str, str]] = None) -> Path:
    return readable(atomic_write_text(path, render_markdown(report, plots)))
