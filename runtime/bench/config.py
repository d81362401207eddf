"""``BenchConfig``: every setting of one benchmark run, for the CLI, the benchmarks and Python.

``edgepose-bench``'s flags map one to one onto the fields (``--no-power`` is ``power=False``,
``--no-plots`` ``plots=False``, ``--quiet`` ``progress=False``); :meth:`BenchConfig.check`
refuses what cannot run before anything is read, and :meth:`BenchConfig.to_argv` gives the
command line that runs the same benchmark (recorded in ``report.json``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Union

from edgepose.errors import ConfigError

from .gate import parse_gate
from .runner import BenchSettings

SPLITS = ("train", "test")


@dataclass
class BenchConfig:
    """One benchmark: the bundle, the dataset with ground truth, the rows and the timing.

    Attributes:
        bundle: bundle folder (``edgepose.json`` inside), as ``edgepose-export`` writes it.
        data: dataset root with ground-truth poses (any format ``edgepose-inspect`` reads).
        out: report folder (``report.json``/``.csv``/``.md`` and the plots; created).
        format, split_policy, split: how the dataset is read; ``split`` is ``train`` or ``test``.
        max_frames: that many frames spread evenly over the split (``None``: all).
        backends, precisions: the rows asked (``None``: every available backend, every
            precision in the bundle).
        batch: frames per inference; warmup_s: warm-up time per row (s); iters: timed
            iterations per row; max_time_s: a row's timed loop stops after this long (s).
        threads: intra-op CPU threads of ONNX Runtime and torch rows (0: the library's choice).
        gate: CI bounds, e.g. ``"max-drift-m=0.05,max-drift-deg=1"`` (``None``: no gate).
        power_interval_ms, power: Jetson power sampling (tegrastats / jtop).
        plots: write the PNG plots (needs matplotlib); progress: progress bars.
        command: the command line recorded in the report (default: :meth:`to_argv`'s).
    """

    bundle: Union[str, Path]
    data: Union[str, Path]
    out: Union[str, Path]
    format: Optional[str] = None
    split_policy: Optional[str] = None
    split: str = "test"
    max_frames: Optional[int] = None
    backends: Optional[List[str]] = None
    precisions: Optional[List[str]] = None
    batch: int = 1
    warmup_s: float = 2.0
    iters: int = 200
    max_time_s: float = 60.0
    threads: int = 0
    gate: Optional[str] = None
    power_interval_ms: int = 100
    power: bool = True
    plots: bool = True
    progress: bool = True
    command: Optional[str] = field(default=None, compare=False)

    def check(self) -> Optional[Dict[str, float]]:
        """Raise :class:`ConfigError` for settings that cannot run; returns the parsed gate."""
        if self.batch < 1 or self.iters < 1 or self.warmup_s < 0 or self.max_time_s < 0:
            raise ConfigError(f"--batch and --iters must be >= 1, --warmup-s and --max-time-s >= 0; got "
                              f"{self.batch}, {self.iters}, {self.warmup_s}, {self.max_time_s}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if self.threads < 0 or self.power_interval_ms < 1:
            raise ConfigError(f"--threads must be >= 0 and --power-interval-ms >= 1; got {self.threads}, "
                              f"{self.power_interval_ms}")
        return parse_gate(self.gate)

    def settings(self) -> BenchSettings:
        """The row loop's settings (:class:`~edgepose.runtime.bench.runner.BenchSettings`)."""
        return BenchSettings(batch=self.batch, warmup_s=self.warmup_s, iters=self.iters, max_time_s=self.max_time_s,
                             power_interval_ms=self.power_interval_ms, power=self.power,
                             runner_settings={"threads": self.threads})

    def to_argv(self) -> List[str]:
        """``edgepose-bench`` arguments that run this benchmark (defaults left out)."""
        argv = [str(self.bundle), "--data", str(self.data)]
        default = {f.name: f.default for f in fields(self)}
        flags = {"format": "--format", "split_policy": "--split-policy", "split": "--split",
                 "max_frames": "--max-frames", "batch": "--batch", "warmup_s": "--warmup-s", "iters": "--iters",
                 "max_time_s": "--max-time-s", "threads": "--threads", "gate": "--gate",
                 "power_interval_ms": "--power-interval-ms"}
        for name, flag in flags.items():
            if getattr(self, name) != default[name]:
                argv += [flag, str(getattr(self, name))]
        for name, flag in (("backends", "--backend"), ("precisions", "--precision")):
            if getattr(self, name):
                argv += [flag, ",".join(getattr(self, name))]
        argv += [flag for name, flag in (("power", "--no-power"), ("plots", "--no-plots"), ("progress", "--quiet"))
                 if not getattr(self, name)]
        return argv + ["--out", str(self.out)]
