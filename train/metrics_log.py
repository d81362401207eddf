"""``RUN/metrics.csv`` (one row per epoch) and ``RUN/metrics.json`` (flat dotted keys).

The CSV is rewritten atomically after every epoch from the rows held in memory, so its
header can grow when stage 2 logs other quantities than stage 1 and a crash never leaves a
half-written line. On ``--resume`` the rows after the checkpoint being resumed are dropped
(a run killed after writing a row but before its checkpoint would otherwise repeat it).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Dict, List, Union

from edgepose.atomic import atomic_write_json, atomic_write_text

#: columns that always come first, in this order
LEADING = ("stage", "epoch", "lr", "loss", "total", "sp", "sq", "val_median_position_m",
           "val_median_rotation_deg", "val_score", "images_per_s", "seconds")


class MetricsLog:
    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.rows: List[Dict[str, object]] = []

    def load(self) -> "MetricsLog":
        """Read the rows of an existing file (``--resume``)."""
        if self.path.is_file():
            with open(self.path, newline="") as fh:
                self.rows = [dict(r) for r in csv.DictReader(fh)]
        return self

    def keep_done(self, done: Dict[str, int]) -> "MetricsLog":
        """Keep the rows of each stage up to its epoch in ``done`` (the epochs its checkpoint
        holds); rows of stages not in ``done`` are dropped."""
        self.rows = [r for r in self.rows if str(r.get("stage")) in done and int(r["epoch"]) <= done[str(r["stage"])]]
        return self

    def append(self, row: Dict[str, object]) -> None:
        self.rows.append(dict(row))

    def columns(self) -> List[str]:
        cols = [c for c in LEADING if any(c in r for r in self.rows)]
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        return cols

    def write(self) -> Path:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns(), restval="", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _fmt(v) for k, v in r.items()})
        return atomic_write_text(self.path, buf.getvalue())


def _fmt(v) -> object:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def flatten(prefix: str, summary: Dict[str, object]) -> Dict[str, object]:
    """``{"median_position_m": 1}`` -> ``{"test.median_position_m": 1}``."""
    return {f"{prefix}.{k}": v for k, v in summary.items()}


def write_metrics_json(path: Union[str, Path], metrics: Dict[str, object]) -> Path:
    return atomic_write_json(path, metrics)


def read_metrics_json(path: Union[str, Path]) -> Dict[str, object]:
    return json.loads(Path(path).read_text())
