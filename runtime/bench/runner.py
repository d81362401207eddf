"""The row loop: for every planned backend x precision, one try/except, never a stopped run.

Per row, inside ``with open_runner(...)``:

1. accuracy pass: every frame of the split, preprocessed once per input spec and batched
   (the last batch padded by repeating its last frame, the padding dropped);
2. timing pass: warm-up for ``warmup_s`` seconds, then ``iters`` iterations over decoded
   frames, each timed end to end (preprocess into a reused buffer + the runner's copies +
   inference + postprocess into float64 arrays) and for inference alone (the runner's own
   ``last_timing["compute"]`` when it reports one, else the wall time of ``infer``);
3. power, when a Jetson sampler is available, over the timed window only;
4. memory: the process's resident set sampled before, during and after the row.

Drift against the FP32 reference rows is computed after all rows ran (:func:`add_drift`).
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from edgepose.metrics import DRIFT_KEYS
from edgepose.progress import progress as progress_bar

from . import metrics
from ..runners import open_runner
from ..spec import preprocess_batch
from .rows import RowPlan, drift_reference
from .tegrastats import energy_per_frame_mj, open_power_sampler
from .timing import StageTimer, latency_stats, warm_up

#: keys of ``runner.last_timing`` that time inference alone, most specific first
COMPUTE_KEYS = ("compute", "gpu_compute", "infer", "inference")


@dataclass
class BenchData:
    """The frames a bench runs on.

    Attributes:
        images: decoded ``uint8 (h, w, 3)`` frames (all of the split, in order).
        position: ``(N, 3)`` true camera centres, metres.
        rotation: ``(N, 4)`` true camera-to-world quaternions wxyz.
        names: image paths (for the report).
    """

    images: List[np.ndarray]
    position: np.ndarray
    rotation: np.ndarray
    names: List[str]

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class BenchSettings:
    batch: int = 1
    warmup_s: float = 2.0
    iters: int = 200
    max_time_s: float = 60.0  # the timed loop of a row stops early after this long (>= 10 iterations)
    power_interval_ms: int = 100
    power: bool = True
    #: generic runner settings (``{"threads": 2}``); each row's runner class maps them to its
    #: own options (:meth:`Runner.options_for`), recorded in the row as ``runner_options``
    runner_settings: Optional[dict] = None


def rss_mb() -> Optional[float]:
    """Current resident set size of this process in MiB (Linux ``/proc``; else ``None``)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def runner_options(plan: RowPlan, settings: BenchSettings) -> dict:
    """The options of ``plan``'s runner for the generic ``settings.runner_settings``."""
    cls = plan.runner_class
    if cls is None:
        return {}
    options, _ = cls.options_for(**dict(settings.runner_settings or {}))
    return options


def _open_runner(plan: RowPlan, bundle, options: dict):

    return open_runner(bundle, backend=plan.backend, precision=plan.precision, strict=True, **options)


def _model_file(runner, bundle_path: Path, plan: RowPlan):
    for attr in ("model_path", "engine_path", "checkpoint", "path"):
        p = getattr(runner, attr, None)
        if p is not None and Path(p).is_file():
            return Path(p)
    return None


def batches_for(preprocessed: np.ndarray, batch: int):
    """Yield ``(batch_array, n_real)``; the last one padded with copies of its last frame."""
    n = preprocessed.shape[0]
    for s in range(0, n, batch):
        b = preprocessed[s : s + batch]
        k = b.shape[0]
        if k < batch:
            b = np.concatenate([b, np.repeat(b[-1:], batch - k, axis=0)], axis=0)
        yield np.ascontiguousarray(b), k


def run_row(plan: RowPlan, bundle, data: BenchData, settings: BenchSettings,
            preprocessed_cache: Dict[tuple, np.ndarray], progress: bool = True) -> dict:
    """Run one row; returns the row dict plus ``_pred`` (predictions) and ``_err`` (errors)."""
    row = {"label": plan.label, "backend": plan.backend, "precision": plan.precision, "family": plan.family,
           "note": plan.note, "status": "failed", "error": None}
    options = row["runner_options"] = runner_options(plan, settings)
    rss0 = rss_mb()
    rss_peak = rss0 or 0.0
    B = int(settings.batch)
    with _open_runner(plan, bundle, options) as r:
        spec = r.input_spec
        row["runner"] = r.name
        mf = _model_file(r, Path(str(bundle)), plan)
        row["model_file"] = mf.name if mf else None
        row["model_size_mb"] = mf.stat().st_size / 1e6 if mf else None
        row["input"] = spec.describe(B)
        # 1. accuracy over the whole split
        key = (spec.dtype, spec.layout, tuple(spec.shape[1:]))
        if key not in preprocessed_cache:
            preprocessed_cache[key] = preprocess_batch(data.images, spec)
        pre = preprocessed_cache[key]
        pos, rot, sig = [], [], []
        bar = progress_bar(total=len(data), desc=f"{plan.label} accuracy", enabled=progress, leave=False)
        for b, k in batches_for(pre, B):
            pb = r.infer(b)
            pos.append(pb.position[:k].copy())
            rot.append(pb.rotation[:k].copy())
            sig.append(pb.sigma[:k].copy())
            bar.update(k)
        bar.close()
        pos, rot, sig = np.concatenate(pos), np.concatenate(rot), np.concatenate(sig)
        rss_peak = max(rss_peak, rss_mb() or 0.0)
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(rot)) and np.all(np.isfinite(sig))):
            bad = int(np.sum(~np.all(np.isfinite(np.hstack([pos, rot, sig])), axis=1)))
            raise FloatingPointError(f"{bad} of {len(pos)} frames gave non-finite outputs (NaN/inf); "
                                     "an fp16 overflow or int8 saturation is likely")
        err = metrics.per_frame_errors(pos, rot, data.position, data.rotation)
        row.update(metrics.accuracy(pos, rot, data.position, data.rotation))
        row.update(metrics.calibration(sig, err["position_m"], err["rotation_deg"]))
        if plan.reference_only:  # the FP32 drift reference nobody asked for: no timing pass
            row.update({"reference_only": True, "status": "ok", "_err": err,
                        "_pred": {"position": pos, "rotation": rot, "sigma": sig}})
            return row

        # 2. timing on decoded frames (preprocess included in e2e)
        n_t = min(len(data), max(4 * B, 16))
        groups = [[data.images[(s + j) % len(data)] for j in range(B)] for s in range(0, n_t, B)]
        buf = r.allocate_input(B) if hasattr(r, "allocate_input") else None
        state = {"i": 0}
        timer = StageTimer()

        def one(record: bool):
            imgs = groups[state["i"] % len(groups)]
            state["i"] += 1
            t0 = time.perf_counter()
            x = preprocess_batch(imgs, spec, out=buf)
            t1 = time.perf_counter()
            pb = r.infer(x)
            t2 = time.perf_counter()
            out = (np.array(pb.position, np.float64), np.array(pb.rotation, np.float64),
                   np.array(pb.sigma, np.float64))
            t3 = time.perf_counter()
            if record:
                lt = dict(getattr(r, "last_timing", {}) or {})
                timer.add("e2e", (t3 - t0) * 1e3)
                timer.add("preprocess", (t1 - t0) * 1e3)
                timer.add("infer_call", (t2 - t1) * 1e3)
                timer.add("postprocess", (t3 - t2) * 1e3)
                ck = next((k for k in COMPUTE_KEYS if k in lt), None)
                timer.add("infer", lt[ck] if ck else (t2 - t1) * 1e3)
                state["source"] = f"runner.last_timing['{ck}']" if ck else "wall clock around runner.infer()"
                timer.add_many({f"runner_{k}": v for k, v in lt.items()})
            return out

        row["warmup_calls"] = warm_up(lambda: one(False), settings.warmup_s)
        sampler, power_error = None, None
        if settings.power:
            try:
                sampler = open_power_sampler(settings.power_interval_ms)
            except Exception as exc:  # e.g. tegrastats not permitted: the row still runs, without power
                power_error = f"power sampler did not start: {type(exc).__name__}: {exc}"
        bar = progress_bar(total=settings.iters, desc=f"{plan.label} timing", enabled=progress, leave=False)
        try:
            tw0 = time.perf_counter()
            tm0 = time.monotonic()
            done = 0
            for done in range(1, int(settings.iters) + 1):
                one(True)
                bar.update(1)
                if state["i"] % 16 == 0:
                    rss_peak = max(rss_peak, rss_mb() or 0.0)
                if done >= 10 and time.perf_counter() - tw0 > settings.max_time_s:
                    break
            wall = time.perf_counter() - tw0
            tm1 = time.monotonic()
        finally:
            bar.close()
            if sampler is not None:
                sampler.stop()
        rss_peak = max(rss_peak, rss_mb() or 0.0)

    frames = done * B
    stats = timer.stats()
    if done < int(settings.iters):
        row["note"] = (row["note"] + "; " if row["note"] else "") + \
            f"timing stopped after {done} of {settings.iters} iterations (--max-time-s {settings.max_time_s:g})"
    row.update({
        "batch": B, "iters": done, "warmup_s": float(settings.warmup_s),
        "inference_timing_source": state.get("source"),
        "timing_ms": stats,
        "throughput_fps": frames / wall if wall > 0 else None,
        "peak_rss_mb": rss_peak or None,
        "rss_increase_mb": (rss_peak - rss0) if rss0 is not None else None,
    })
    for name, prefix in (("infer", "infer"), ("e2e", "e2e")):
        s = stats.get(name, latency_stats([]))
        for p in (50, 90, 99):
            row[f"{prefix}_p{p}_ms"] = s[f"p{p}"]
    if sampler is not None:
        ps = sampler.summary(tm0, tm1)
        row.update(ps)
        if ps.get("mean_power_w") is not None:
            row["energy_per_frame_mj"] = energy_per_frame_mj(ps["mean_power_w"], wall, frames)
    else:
        row.update({"power_source": None, "mean_power_w": None, "energy_per_frame_mj": None,
                    "power_error": power_error})
    row["status"] = "ok"
    row["_pred"] = {"position": pos, "rotation": rot, "sigma": sig}
    row["_err"] = err
    return row


def failed_row(plan: RowPlan, exc: BaseException) -> dict:
    msg = f"{type(exc).__name__}: {exc}".strip()
    row = {"label": plan.label, "backend": plan.backend, "precision": plan.precision, "family": plan.family,
           "note": plan.note, "status": "failed", "error": msg.splitlines()[0] if msg else type(exc).__name__,
           "error_detail": msg, "traceback": traceback.format_exc(limit=8)}
    if plan.reference_only:
        row["reference_only"] = True
    return row


def run_rows(plans: Sequence[RowPlan], bundle, data: BenchData, settings: BenchSettings,
             progress: bool = True, log: Callable[[str], None] = lambda s: None) -> List[dict]:
    """Run every row (a failure becomes a ``failed`` row), then add drift columns."""
    rows: List[dict] = []
    cache: Dict[tuple, np.ndarray] = {}
    for plan in plans:
        log(f"edgepose-bench: {plan.label} ...")
        try:
            row = run_row(plan, bundle, data, settings, cache, progress)
            timed = "" if plan.reference_only else f", e2e p50 {row['e2e_p50_ms']:.2f} ms"
            log(f"edgepose-bench: {plan.label} ok: median {row['median_position_m']:.4f} m / "
                f"{row['median_rotation_deg']:.3f} deg{timed}")
        except Exception as exc:  # one row's failure never stops the run
            row = failed_row(plan, exc)
            log(f"edgepose-bench: {plan.label} FAILED: {row['error']}")
        rows.append(row)
    add_drift(rows)
    return rows


def add_drift(rows: List[dict]) -> None:
    """Fill the drift columns of every ok row from its FP32 reference row's predictions."""
    ok_fp32 = {r["backend"]: r["label"] for r in rows if r["status"] == "ok" and r["precision"] == "fp32"}
    by_label = {r["label"]: r for r in rows}
    for r in rows:
        for k in DRIFT_KEYS:
            r.setdefault(k, None)
        r.setdefault("drift_reference", None)
        if r["status"] != "ok":
            continue
        ref_label = drift_reference(RowPlan(r["backend"], r["precision"]), ok_fp32)
        if ref_label is None:
            continue
        ref = by_label[ref_label]["_pred"]
        r["drift_reference"] = ref_label
        r.update(metrics.drift(r["_pred"]["position"], r["_pred"]["rotation"], ref["position"], ref["rotation"]))
