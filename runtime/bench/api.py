"""``bench_bundle(cfg) -> BenchResult``: the benchmark, for the CLI, the benchmarks and Python.

It checks the settings and the output folder, verifies every file of the bundle, plans the
rows (:mod:`.rows`), reads and decodes the frames, runs every row (:mod:`.runner`), applies
the gate (:mod:`.gate`), and writes ``report.json`` (schema :data:`.report.SCHEMA`),
``report.csv``, ``report.md`` and the plots into ``cfg.out``. Progress lines go to ``log``
(standard error by default); the table and the verdict are the caller's to print
(:class:`BenchResult` has them). Errors of the user's making raise
:class:`~edgepose.errors.EdgePoseError` before anything is written; a failed row does not
raise: it is a row with its reason.
"""
from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from edgepose.bundle import now_iso, verify_files
from edgepose.datasets import load_dataset
from edgepose.errors import ConfigError, EdgePoseError
from edgepose.frame_choice import spread_indices
from edgepose.int8_speed import onnx_gmacs, project
from edgepose.outputs import check_outputs
from edgepose.preprocess import load_image
from edgepose.progress import progress as progress_bar

from ..bundles import open_bundle
from . import report as rep
from . import sysinfo
from .config import BenchConfig
from .gate import EXIT_GATE, check_gate
from .plots import write_plots
from .rows import implicit_references, plan_rows
from .runner import BenchData, run_rows

Log = Callable[[str], None]
EXIT_OK, EXIT_NO_ROW = 0, 1


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class BenchResult:
    """What one benchmark measured.

    Attributes:
        out: the report folder.
        report: everything ``report.json`` holds (arrays as numpy before writing).
        rows: the rows as reported (private ``_pred``/``_err`` arrays left out).
        notes: one line per row left out, per caveat, and the INT8 projection.
        violations: the gate's broken bounds (empty without a gate or when it passed).
        plots: ``{name: path}`` of the PNGs written.
    """

    out: Path
    report: Dict
    rows: List[Dict]
    notes: List[str]
    violations: List[str] = field(default_factory=list)
    plots: Dict[str, Path] = field(default_factory=dict)

    @property
    def gated(self) -> bool:
        return self.report.get("gate") is not None

    @property
    def ok_rows(self) -> List[Dict]:
        """Rows that succeeded, the untimed FP32 references of ``--precisions int8`` left out."""
        return [r for r in self.rows if r["status"] == "ok" and not r.get("reference_only")]

    @property
    def fastest(self) -> Optional[Dict]:
        """The ok row with the lowest end-to-end p50 (timed rows first), or ``None``."""
        ok = self.ok_rows
        timed = [r for r in ok if r["backend"] != "qdq-reference" and r.get("e2e_p50_ms") is not None]
        return min(timed or ok, key=lambda r: r.get("e2e_p50_ms") or float("inf")) if ok else None

    @property
    def exit_code(self) -> int:
        """0 done, 1 no row succeeded, 3 the gate broke (the CLI's exit codes)."""
        if self.violations:
            return EXIT_GATE
        return EXIT_OK if self.ok_rows else EXIT_NO_ROW


def load_bench_data(root: str, fmt: Optional[str], split: str, max_frames: Optional[int], progress: bool,
                    split_policy: Optional[str] = None):
    """``(dataset, BenchData)``: the split's frames, decoded, with ground truth from the reader."""
    ds = load_dataset(root, format=fmt, split_policy=split_policy)
    frames = ds.split(split)
    if max_frames is not None and max_frames < len(frames):
        frames = [frames[i] for i in spread_indices(len(frames), max_frames)]
    bar = progress_bar(total=len(frames), desc="decoding frames", enabled=progress, leave=False)
    images = []
    for f in frames:
        images.append(load_image(f.image))
        bar.update(1)
    bar.close()
    return ds, BenchData(images, np.stack([f.position for f in frames]).astype(np.float64),
                         np.stack([f.rotation for f in frames]).astype(np.float64), [str(f.image) for f in frames])


def verify_bundle_files(view, log: Log = _stderr) -> dict:
    """Check every file the manifest lists (sha256, size, inside the folder, no links) and say
    what it cost; a mismatch is a :class:`~edgepose.errors.BundleError`."""
    t0 = time.perf_counter()
    checked = verify_files(view.path, view.manifest)
    ms = (time.perf_counter() - t0) * 1e3
    mb = sum(view.manifest.files[rel].size for rel in checked) / 1e6
    log(f"edgepose-bench: verified {len(checked)} file(s), {mb:.1f} MB, against edgepose.json in {ms:.0f} ms "
        "(sha256; the runtime checks each file it loads the same way)")
    return {"files": len(checked), "mb": round(mb, 3), "sha256_ms": round(ms, 1)}


def _int8_projection(view) -> str:
    """The labelled INT8-vs-FP16 projection for the bundle's backbone (never a measurement)."""
    fp32 = view.listing.find("onnx", "fp32")
    gmacs = onnx_gmacs(Path(view.path) / fp32) if fp32 else None
    return project(view.manifest.model.backbone, gmacs)["label"]


def _open(cfg: BenchConfig, log: Log):
    """The checked settings: ``(gate, bundle view, verification)``; nothing is written yet."""
    gate = cfg.check()
    check_outputs({"--out": cfg.out}, {"BUNDLE": cfg.bundle, "--data": cfg.data})
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise ConfigError(f"--out {cfg.out} is a file; expected a folder for report.json, report.csv, report.md "
                          "and the plots", hint=f"name a folder, e.g. --out {Path(cfg.out).with_suffix('')}-report")
    view = open_bundle(cfg.bundle)
    verified = verify_bundle_files(view, log)  # every listed file's sha256 before any row loads one
    spec = view.input_spec
    if not spec.batch_min <= cfg.batch <= spec.batch_max:
        raise EdgePoseError(f"--batch {cfg.batch} is outside the bundle's batch range {spec.batch_min}..{spec.batch_max} "
                            f"({spec.describe()})", hint=f"use --batch {spec.batch_max} or less, or re-export with a "
                                                          "larger batch")
    return gate, view, verified


def bench_bundle(cfg: BenchConfig, log: Log = _stderr) -> BenchResult:
    """Run the benchmark ``cfg`` describes and write its report (see the module doc)."""
    gate, view, verified = _open(cfg, log)
    plans, notes = plan_rows(view.precisions("onnx"), cfg.backends, cfg.precisions,
                             has_checkpoint=view.file_for("checkpoint", None) is not None)
    references, ref_notes = implicit_references(plans)
    plans, notes = references + plans, notes + ref_notes
    ds, data = load_bench_data(str(cfg.data), cfg.format, cfg.split, cfg.max_frames, cfg.progress, cfg.split_policy)
    log(f"edgepose-bench: {len(plans)} rows ({', '.join(p.label for p in plans)}) on {len(data)} "
        f"{cfg.split} frames of {cfg.data}")
    sysi = sysinfo.collect()
    if sysi["cpu"].get("vnni") is False and any(p.label == "onnxruntime/int8" for p in plans):
        notes.append("this x86 CPU has no VNNI: ONNX Runtime's u8s8 int8 kernels can saturate, so the "
                     "onnxruntime/int8 row may be less accurate than qdq-reference/int8 (which TensorRT approximates)")
    rows = run_rows(plans, view.path, data, cfg.settings(), progress=cfg.progress, log=log)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    violations = check_gate(rows, gate) if gate else []
    public_rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    preds = {r["label"]: r["_pred"] for r in rows if "_pred" in r}
    errors = {r["label"]: r["_err"] for r in rows if "_err" in r}
    notes.append(_int8_projection(view))
    report = {
        "schema": rep.SCHEMA,
        "created": now_iso(),
        "command": cfg.command or "edgepose-bench " + " ".join(shlex.quote(a) for a in cfg.to_argv()),
        "bundle": {"path": str(view.path), "backbone": view.manifest.model.backbone, "verified": verified,
                   "input": view.input_spec.to_json(), "precisions": view.precisions("onnx")},
        "data": {"root": str(cfg.data), "format": ds.format, "split": cfg.split, "n_frames": len(data)},
        "settings": {"batch": cfg.batch, "warmup_s": cfg.warmup_s, "iters": cfg.iters, "max_time_s": cfg.max_time_s,
                     "power_interval_ms": cfg.power_interval_ms, "power": cfg.power, "threads": cfg.threads},
        "system": sysi,
        "notes": notes,
        "gate": None if gate is None else {"spec": cfg.gate, "bounds": gate, "passed": not violations,
                                           "violations": violations},
        "rows": public_rows,
        "baselines": rep.baseline_rows(view.manifest.training_metrics),
        "frames": {"image": data.names, "truth": {"position": data.position, "rotation": data.rotation},
                   "predictions": preds, "errors": errors},
    }
    plots: Dict[str, Path] = {}
    if cfg.plots:
        try:
            plots = write_plots(out, rows, errors, data.position, preds)
        except EdgePoseError as exc:  # matplotlib missing: the numbers still matter more
            notes.append(f"plots skipped: {exc}")
    report["plots"] = {k: Path(v).name for k, v in plots.items()}
    rep.write_json(out / "report.json", report)
    rep.write_csv(out / "report.csv", public_rows)
    rep.write_markdown(out / "report.md", report, plots)
    return BenchResult(out, report, public_rows, notes, violations, plots)
