"""PNG plots of a bench report (matplotlib, imported lazily with the Agg backend).

* ``accuracy_vs_latency.png``: one point per ok row, end-to-end p50 latency vs median
  position and rotation error, the pareto front (rows no other row beats on both) joined.
  ``qdq-reference`` rows are drawn hollow and kept off the front: their speed means nothing.
* ``error_cdf.png``: cumulative distribution of per-frame position and rotation errors, one
  curve per row (line style by precision).
* ``trajectory.png``: top-down view (the two principal axes of the true positions) of true
  vs predicted positions per row, with circles of radius sigma (the model's expected
  position error) around each prediction.
* ``sigma_reliability.png``: the reliability of sigma, per row: the fraction of frames whose
  error is within k sigma, against k, beside the nominal coverage of the chi-3 error model
  sigma is calibrated to (:mod:`edgepose.uncertainty`); above the nominal curve
  sigma is too large, below it too small.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from edgepose.atomic import atomic_write_bytes
from edgepose.errors import require
from edgepose.uncertainty import chi3_coverage

from .report import readable

STYLE = {"fp32": "-", "fp16": "--", "int8": ":"}
ACCURACY_ONLY = ("qdq-reference",)


def pareto_front(x: Sequence[float], y: Sequence[float]) -> List[int]:
    """Indices of points not dominated (lower-or-equal in both, lower in one), sorted by x.

    >>> pareto_front([1, 2, 3, 2.5], [5, 3, 1, 4])
    [0, 1, 2]
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    keep = []
    for i in range(x.size):
        dominated = np.any((x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i])))
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (x[i], y[i]))


def _plt():
    mpl = require("matplotlib", "bench plots", "pip install 'edgepose[plots]'")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return readable(atomic_write_bytes(path, buf.getvalue()))


def plot_accuracy_vs_latency(rows: List[dict], path: Path) -> Optional[Path]:
    ok = [r for r in rows if r.get("status") == "ok" and r.get("median_position_m") is not None]
    if not ok:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, unit in ((axes[0], "median_position_m", "median position error (m)"),
                          (axes[1], "median_rotation_deg", "median rotation error (deg)")):
        timed = [r for r in ok if r["backend"] not in ACCURACY_ONLY and r.get("e2e_p50_ms") is not None]
        for r in ok:
            lat = r.get("e2e_p50_ms")
            if lat is None:
                continue
            hollow = r["backend"] in ACCURACY_ONLY
            ax.scatter([lat], [r[key]], s=50, facecolors="none" if hollow else None,
                       edgecolors="C0" if hollow else None, color=None if hollow else "C0", zorder=3)
            ax.annotate(r["label"] + (" (accuracy only)" if hollow else ""), (lat, r[key]),
                        textcoords="offset points", xytext=(5, 4), fontsize=8)
        if timed:
            idx = pareto_front([r["e2e_p50_ms"] for r in timed], [r[key] for r in timed])
            ax.plot([timed[i]["e2e_p50_ms"] for i in idx], [timed[i][key] for i in idx], "C3-", lw=1.5,
                    label="pareto front", zorder=2)
            ax.legend(fontsize=8)
        ax.set_xlabel("end-to-end latency p50 (ms)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    fig.suptitle("accuracy vs latency (lower-left is better)")
    return _save(fig, path)


def plot_error_cdfs(rows: List[dict], errors: Dict[str, Dict[str, np.ndarray]], path: Path) -> Optional[Path]:
    """``errors[label] = {"position_m": (N,), "rotation_deg": (N,)}``."""
    labels = [r["label"] for r in rows if r.get("status") == "ok" and r["label"] in errors]
    if not labels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    prec = {r["label"]: r["precision"] for r in rows}
    for i, lab in enumerate(labels):
        for ax, key in ((axes[0], "position_m"), (axes[1], "rotation_deg")):
            e = np.sort(np.asarray(errors[lab][key], float))
            ax.step(e, np.arange(1, e.size + 1) / e.size, where="post", ls=STYLE.get(prec[lab], "-"),
                    color=f"C{i % 10}", label=lab)
    axes[0].set_xlabel("position error (m)")
    axes[1].set_xlabel("rotation error (deg)")
    for ax in axes:
        ax.set_ylabel("fraction of frames")
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("per-frame error CDF")
    return _save(fig, path)


def principal_plane(points: np.ndarray) -> np.ndarray:
    """``(3, 2)`` orthonormal basis of the two directions of largest spread of ``points (N, 3)``."""
    p = np.asarray(points, float)
    c = p - p.mean(axis=0)
    if p.shape[0] < 2 or not np.any(c):
        return np.eye(3)[:, :2]
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    basis = vt[:2].T
    if vt.shape[0] < 2:  # pragma: no cover - degenerate
        return np.eye(3)[:, :2]
    return basis


def plot_trajectory(rows: List[dict], truth_position: np.ndarray, predictions: Dict[str, dict],
                    path: Path, max_panels: int = 6) -> Optional[Path]:
    """``predictions[label] = {"position": (N, 3), "sigma": (N, 2)}``."""
    labels = [r["label"] for r in rows if r.get("status") == "ok" and r["label"] in predictions][:max_panels]
    if not labels:
        return None
    plt = _plt()
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Circle

    truth = np.asarray(truth_position, float)
    basis = principal_plane(truth)
    origin = truth.mean(axis=0)
    t2 = (truth - origin) @ basis
    n = len(labels)
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 4.4 * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, lab in zip(axes.ravel(), labels):
        pred = np.asarray(predictions[lab]["position"], float)
        sig = np.asarray(predictions[lab]["sigma"], float)[:, 0]
        p2 = (pred - origin) @ basis
        ax.plot(t2[:, 0], t2[:, 1], "k.-", ms=3, lw=0.5, alpha=0.7, label="true (frame order)")
        ax.plot(p2[:, 0], p2[:, 1], "C1.", ms=4, label="predicted")
        ax.add_collection(LineCollection(np.stack([t2, p2], axis=1), colors="0.6", lw=0.5))
        for (x, y), s in zip(p2, sig):
            if np.isfinite(s) and s > 0:
                ax.add_patch(Circle((x, y), s, fill=False, ec="C0", lw=0.4, alpha=0.5))
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(lab, fontsize=9)
        ax.set_xlabel("principal axis 1 (m)")
        ax.set_ylabel("principal axis 2 (m)")
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=7, loc="best")
    fig.suptitle("top-down trajectory: true vs predicted, circles = 1 sigma position")
    return _save(fig, path)


def plot_sigma_reliability(rows: List[dict], errors: Dict[str, Dict[str, np.ndarray]],
                           predictions: Dict[str, dict], path: Path) -> Optional[Path]:
    labels = [r["label"] for r in rows if r.get("status") == "ok" and r["label"] in predictions
              and r["label"] in errors]
    if not labels:
        return None
    plt = _plt()
    k = np.linspace(0.0, 3.5, 71)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, (what, col, to_err_unit) in zip(axes, (("position", 0, 1.0), ("rotation", 1, 180.0 / np.pi))):
        ax.plot(k, [chi3_coverage(v) for v in k], "k-", lw=2, alpha=0.4, label="nominal (chi-3 error model)")
        for lab in labels:
            err = np.asarray(errors[lab][f"{what}_m" if col == 0 else f"{what}_deg"], float)
            sig = np.asarray(predictions[lab]["sigma"], float)[:, col] * to_err_unit
            ok = np.isfinite(err) & np.isfinite(sig) & (sig > 0)
            if ok.any():
                ratio = err[ok] / sig[ok]
                ax.plot(k, [(ratio <= v).mean() for v in k], STYLE.get(lab.rsplit("/", 1)[-1], "-"), lw=1, label=lab)
        ax.set_xlabel("k (error within k sigma)")
        ax.set_ylabel("fraction of frames")
        ax.set_title(f"{what} sigma")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1.02)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("sigma reliability: observed coverage vs the error model's")
    return _save(fig, path)


def write_plots(out_dir: Path, rows: List[dict], errors: Dict[str, Dict[str, np.ndarray]],
                truth_position: np.ndarray, predictions: Dict[str, dict]) -> Dict[str, str]:
    """All four PNGs; returns ``{name: path}`` of those written (rows without data are skipped)."""
    out_dir = Path(out_dir)
    written = {}
    for name, fn in (
        ("accuracy_vs_latency", lambda p: plot_accuracy_vs_latency(rows, p)),
        ("error_cdf", lambda p: plot_error_cdfs(rows, errors, p)),
        ("trajectory", lambda p: plot_trajectory(rows, truth_position, predictions, p)),
        ("sigma_reliability", lambda p: plot_sigma_reliability(rows, errors, predictions, p)),
    ):
        p = fn(out_dir / f"{name}.png")
        if p is not None:
            written[name] = str(p)
    return written
