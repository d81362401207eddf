"""Latency measurement: warm up by time, then time many iterations, report percentiles.

Means hide the tail that a real-time loop cares about, so the figures reported are
percentiles (p50 / p90 / p99) of per-iteration latencies in milliseconds, as trtexec does.
Warm-up runs for a fixed *time* (not a count): first calls allocate buffers, pick kernels
and fill caches, and how long that takes depends on the device, not on the model.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np

from edgepose.errors import ConfigError

PERCENTILES = (50, 90, 99)


def warm_up(fn: Callable[[], object], seconds: float, min_calls: int = 1,
            clock: Callable[[], float] = time.perf_counter) -> int:
    """Call ``fn()`` until ``seconds`` have passed on ``clock`` (seconds) and at least
    ``min_calls`` were made.

    Returns the number of calls made.
    """
    if seconds < 0:
        raise ConfigError(f"warm-up time must be >= 0 s, got {seconds}")
    calls = 0
    end = clock() + seconds
    while calls < min_calls or clock() < end:
        fn()
        calls += 1
    return calls


def latency_stats(samples_ms: Iterable[float]) -> Dict[str, Optional[float]]:
    """Percentile summary of latencies in milliseconds.

    Keys: ``n, p50, p90, p99, min, max, mean, std`` (ms; ``n`` a count). An empty input gives
    ``n = 0`` and ``None`` elsewhere, so a failed row still has the same columns.

    >>> s = latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    >>> s["p50"], s["max"], s["n"]
    (3.0, 100.0, 5)
    """
    a = np.asarray(list(samples_ms), dtype=np.float64)
    if a.size == 0:
        return {"n": 0, **{f"p{p}": None for p in PERCENTILES}, "min": None, "max": None,
                "mean": None, "std": None}
    out: Dict[str, Optional[float]] = {"n": int(a.size)}
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(a, p))
    out.update(min=float(a.min()), max=float(a.max()), mean=float(a.mean()), std=float(a.std()))
    return out


class StageTimer:
    """Collects per-iteration durations (ms) under named stages.

    >>> t = StageTimer()
    >>> t.add("infer", 2.0); t.add("infer", 4.0)
    >>> t.stats()["infer"]["p50"]
    3.0
    """

    def __init__(self) -> None:
        self.samples: Dict[str, List[float]] = {}

    def add(self, stage: str, ms: float) -> None:
        self.samples.setdefault(stage, []).append(float(ms))

    def add_many(self, timings: Dict[str, float]) -> None:
        for k, v in timings.items():
            if isinstance(v, (int, float)) and np.isfinite(v):
                self.add(k, v)

    def stats(self) -> Dict[str, Dict[str, Optional[float]]]:
        return {k: latency_stats(v) for k, v in self.samples.items()}


def now_ms() -> float:
    """A monotonic clock in milliseconds (``time.perf_counter``)."""
    return time.perf_counter() * 1e3
