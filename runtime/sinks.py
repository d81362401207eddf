"""Where results go: JSON lines (one object per frame), CSV, and a top-down trajectory plot
(PNG, with each frame's sigma drawn as an ellipse; matplotlib imported lazily, Agg backend:
required when the plot is opened, so a run without it stops before its first frame).

Every sink has ``write(result)`` and ``close()`` and is a context manager. ``"-"`` as a
path writes JSON lines / CSV to stdout.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from edgepose.errors import EdgePoseError, require
from edgepose.jsonsafe import dumps

from .results import PoseResult

CSV_COLUMNS = ("index", "ok", "error", "source", "capture_time", "timestamp", "x_m", "y_m", "z_m",
               "qw", "qx", "qy", "qz", "sigma_position_m", "sigma_rotation_deg", "filter", "latency_ms")


class Sink:
    def write(self, result: PoseResult) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_output_path(path: Union[str, Path], option: str, example: str) -> Path:
    """Refuse an output path that is a folder (a file is written there)."""
    p = Path(path)
    if p.is_dir():
        raise EdgePoseError(f"{option} {p} is a folder; expected a file path to write",
                            hint=f"name a file, e.g. {option} {p / example}")
    return p


class _FileSink(Sink):
    """Each :meth:`_emit` is one complete record: written whole with ``os.write`` or, when
    the disk fills up half-way, cut back to the previous record before the error is raised,
    so the file never ends mid-object."""

    def __init__(self, path: Union[str, Path], option: str = "--out", example: str = "poses.jsonl"):
        self.path = str(path)
        self._fd: Optional[int] = None
        self.fh = sys.stdout if self.path == "-" else None
        if self.fh is None:
            p = check_output_path(self.path, option, example)
            p.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(str(p), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            self._good = 0  # bytes of complete records

    def _emit(self, text: str) -> None:
        if self.fh is not None:
            self.fh.write(text)
            self.fh.flush()
            return
        if self._fd is None:
            raise EdgePoseError(f"{self.path} is closed")
        data = memoryview(text.encode("utf-8"))
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._good)
            exc.filename = exc.filename or self.path
            raise
        self._good += len(text.encode("utf-8"))

    def close(self) -> None:
        if self.fh is not None:
            self.fh.flush()
            self.fh = None
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class JsonlSink(_FileSink):
    """One JSON object per line and frame (:meth:`PoseResult.to_json`), written per line;
    non-finite numbers are ``null`` (strict JSON, never ``NaN``)."""

    def write(self, result: PoseResult) -> None:
        self._emit(dumps(result.to_json(), separators=(",", ":")) + "\n")


class CsvSink(_FileSink):
    """One row per frame, columns :data:`CSV_COLUMNS` (positions in m, sigma rotation in deg)."""

    def __init__(self, path):
        super().__init__(path, "--csv", "poses.csv")
        self._row(CSV_COLUMNS)

    def _row(self, values) -> None:
        buf = io.StringIO()
        csv.writer(buf).writerow(values)
        self._emit(buf.getvalue())

    def write(self, r: PoseResult) -> None:
        pos = list(r.position) if r.position is not None else [""] * 3
        rot = list(r.rotation) if r.rotation is not None else [""] * 4
        f = lambda v: "" if v == "" or v is None or not np.isfinite(v) else f"{float(v):.6f}"  # noqa: E731
        self._row([r.index, int(r.ok), r.error or "", r.source, f"{r.capture_time:.6f}",
                   f"{r.timestamp:.6f}", *[f(v) for v in pos], *[f(v) for v in rot],
                   f(r.sigma_position_m), f(r.sigma_rotation_deg), r.filtered, f(r.latency_ms)])


class TrajectoryPlot(Sink):
    """A top-down view of the trajectory written to ``path`` (PNG) on :meth:`close`.

    ``plane`` names the two world axes drawn (``"xy"``, ``"xz"``, ``"yz"``) or ``"auto"``
    (the two with the most spread). Circles of radius ``sigma_position_m`` (the per-frame
    expected error) are drawn every ``ellipse_every`` frames; ground truth, when the source
    has it, is drawn too. matplotlib is required here, not when the plot is drawn: without it
    the sink cannot be opened (:class:`~edgepose.errors.MissingDependencyError`).
    """

    def __init__(self, path: Union[str, Path], plane: str = "auto", ellipse_every: int = 5, title: str = ""):
        check_output_path(path, "--plot", "trajectory.png")
        self._mpl = require("matplotlib", "the trajectory plot", "pip install matplotlib")
        self.path, self.plane, self.every, self.title = Path(path), plane, max(1, int(ellipse_every)), title
        self.pos: List[np.ndarray] = []
        self.sig: List[float] = []
        self.truth: List[np.ndarray] = []

    def write(self, r: PoseResult) -> None:
        if r.ok and r.position is not None:
            self.pos.append(np.asarray(r.position, float))
            self.sig.append(float(r.sigma_position_m))
            if r.truth_position is not None:
                self.truth.append(np.asarray(r.truth_position, float))

    def _axes(self, P: np.ndarray) -> Sequence[int]:
        if self.plane != "auto":
            return ["xyz".index(c) for c in self.plane]
        return sorted(np.argsort(P.std(axis=0))[-2:].tolist())

    def close(self) -> None:
        if not self.pos:
            return
        self._mpl.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.patches import Ellipse

        P = np.stack(self.pos)
        a, b = self._axes(P)
        fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
        try:
            if self.truth:
                T = np.stack(self.truth)
                ax.plot(T[:, a], T[:, b], "-", color="0.6", lw=1, label="ground truth")
            ax.plot(P[:, a], P[:, b], "-", color="tab:blue", lw=1, label="estimate")
            for i in range(0, len(P), self.every):
                s = self.sig[i]
                if np.isfinite(s) and s > 0:
                    ax.add_patch(Ellipse((P[i, a], P[i, b]), 2 * s, 2 * s, fill=False, color="tab:orange",
                                         alpha=0.5, lw=0.8))
            ax.plot([], [], color="tab:orange", label="1-sigma expected error")
            ax.set_xlabel(f"{'xyz'[a]} (m)")
            ax.set_ylabel(f"{'xyz'[b]} (m)")
            ax.set_aspect("equal", adjustable="datalim")
            ax.legend(loc="best", fontsize=8)
            ax.set_title(self.title or f"trajectory, {len(P)} frames")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp.png")
            fig.savefig(tmp)
            tmp.replace(self.path)
        finally:
            plt.close(fig)
        self.pos = []
