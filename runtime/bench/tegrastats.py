"""Jetson power during the timed run: a ``tegrastats`` line parser and a sampler thread.

``tegrastats`` prints one line per interval. Orin Nano / NX (JetPack 6)::

    07-29-2026 18:00:27 RAM 2272/7620MB (lfb 4x4MB) SWAP 221/3810MB (cached 0MB)
    CPU [0%@729,0%@1036,...] GR3D_FREQ 0% cpu@54.937C ... VDD_IN 4673mW/4673mW
    VDD_CPU_GPU_CV 527mW/527mW VDD_SOC 1339mW/1339mW

AGX Orin has other rails (``VDD_GPU_SOC``, ``VDD_CPU_CV``, ``VIN_SYS_5V0``, ``VDDQ_VDD2_1V8AO``).
A rail reads ``<name> <instant>mW/<average>mW``; older L4T has no timestamp and prints rails
without the unit: ``POM_5V_IN 2431/2431`` (Nano, TX2) and, on AGX Xavier with JetPack 4,
``GPU 0/0 CPU 311/311 SOC 932/932 CV 0/0 VDDRQ 621/621 SYS5V 1482/1482`` (sample lines of
public Jetson monitoring code, e.g. DataDog/datadog-agent's Jetson check tests).

Total board power: ``VDD_IN`` (Orin Nano / NX), else ``POM_5V_IN`` (older Nano / TX), else the
sum of the rails (AGX Orin, AGX Xavier) without the rails another one already includes:
``VDDQ_VDD2_1V8AO`` is part of ``VIN_SYS_5V0`` on AGX Orin (rail description as quoted in
public code; deployment-facts.md section 7), so adding both counted it twice. Energy per
frame (mJ) = mean power (W) x timed seconds / frames x 1000.

When ``tegrastats`` is absent, :func:`open_power_sampler` tries jtop (``jetson-stats``) and
otherwise returns ``None``: the report then says power was not measured.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

RAIL_MW = re.compile(r"\b([A-Za-z][\w]*) (\d+)mW/(\d+)mW")
RAIL_OLD = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)/(\d+)(?=\s|$)")  # unitless mW: "SYS5V 1482/1482"
#: rails whose power another rail of the same line already includes: {sub-rail: the rail including it}
INCLUDED_IN = {"VDDQ_VDD2_1V8AO": "VIN_SYS_5V0"}
RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")
TEMP = re.compile(r"\b([A-Za-z][\w]*)@(-?[\d.]+)C\b")
CPU = re.compile(r"\bCPU \[([^\]]*)\]")
STAMP = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s")


def parse_line(line: str) -> Optional[Dict[str, object]]:
    """Parse one tegrastats line; ``None`` if it holds neither RAM nor a power rail.

    Returns ``{"timestamp": str|None, "ram_used_mb", "ram_total_mb", "swap_used_mb",
    "swap_total_mb", "cpu": [(load %, MHz) or None when off], "gr3d_pct", "temps_c": {name: C},
    "rails_mw": {name: (instant mW, average mW)}, "total_mw": float|None,
    "total_source": rail name or "sum"}`` (absent figures are ``None``).
    """
    rails: Dict[str, Tuple[float, float]] = {}
    for m in RAIL_MW.finditer(line):
        rails[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    if not rails:
        for m in RAIL_OLD.finditer(line):
            rails[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    ram = RAM.search(line)
    if ram is None and not rails:
        return None
    swap = SWAP.search(line)
    gr3d = GR3D.search(line)
    stamp = STAMP.search(line)
    cpu: List[Optional[Tuple[float, float]]] = []
    cm = CPU.search(line)
    if cm:
        for tok in cm.group(1).split(","):
            tok = tok.strip()
            mm = re.fullmatch(r"(\d+)%@(\d+)", tok)
            cpu.append((float(mm.group(1)), float(mm.group(2))) if mm else None)
    total, source = total_power_mw(rails)
    return {
        "timestamp": stamp.group(1) if stamp else None,
        "ram_used_mb": float(ram.group(1)) if ram else None,
        "ram_total_mb": float(ram.group(2)) if ram else None,
        "swap_used_mb": float(swap.group(1)) if swap else None,
        "swap_total_mb": float(swap.group(2)) if swap else None,
        "cpu": cpu,
        "gr3d_pct": float(gr3d.group(1)) if gr3d else None,
        "temps_c": {m.group(1): float(m.group(2)) for m in TEMP.finditer(line)},
        "rails_mw": rails,
        "total_mw": total,
        "total_source": source,
    }


def total_power_mw(rails: Dict[str, Tuple[float, float]]) -> Tuple[Optional[float], Optional[str]]:
    """``(instant total mW, which rail or "sum")`` by the VDD_IN / POM_5V_IN / sum rule; the sum
    leaves out the rails :data:`INCLUDED_IN` another rail of the line."""
    for name in ("VDD_IN", "POM_5V_IN"):
        if name in rails:
            return rails[name][0], name
    if rails:
        parts = [k for k in rails if INCLUDED_IN.get(k) not in rails]
        return float(sum(rails[k][0] for k in parts)), "sum"
    return None, None


def energy_per_frame_mj(mean_power_w: float, seconds: float, frames: int) -> Optional[float]:
    """Energy per frame in millijoules: ``mean_power_w * seconds / frames * 1000``.

    >>> energy_per_frame_mj(5.0, 2.0, 100)
    100.0
    """
    if frames <= 0 or seconds <= 0:
        return None
    return float(mean_power_w * seconds / frames * 1000.0)


class TegrastatsSampler:
    """Runs ``tegrastats --interval MS`` in the background and keeps the parsed lines.

    ``command`` overrides the program (argv list) for tests or a non-standard install; the
    ``--interval`` argument is appended. Use as a context manager, or ``start()``/``stop()``,
    then :meth:`summary` over the time window of the timed run (``time.monotonic`` seconds).
    """

    source = "tegrastats"

    def __init__(self, interval_ms: int = 100, command: Optional[Sequence[str]] = None):
        self.interval_ms = int(interval_ms)
        self.command = list(command) if command else [shutil.which("tegrastats") or "tegrastats"]
        self.samples: List[Tuple[float, Dict[str, object]]] = []
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None
        self.error: Optional[str] = None

    def start(self) -> "TegrastatsSampler":
        self._proc = subprocess.Popen(self.command + ["--interval", str(self.interval_ms)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, name="tegrastats-reader", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        if self._proc is None or self._proc.stdout is None:
            return
        for line in self._proc.stdout:
            sample = parse_line(line)
            if sample is not None:
                self.samples.append((time.monotonic(), sample))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung tool
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.returncode not in (0, None, -15) and not self.samples:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            self.error = f"{' '.join(self.command)} exited with {self._proc.returncode}: {err.strip()[:200]}"
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "TegrastatsSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def summary(self, t0: Optional[float] = None, t1: Optional[float] = None) -> Dict[str, object]:
        """Mean/max total power (W) of the samples taken in ``[t0, t1]`` (monotonic s)."""
        window = [s for t, s in self.samples if (t0 is None or t >= t0) and (t1 is None or t <= t1)]
        vals = [s["total_mw"] for s in window if s.get("total_mw") is not None]
        ram = [s["ram_used_mb"] for s in window if s.get("ram_used_mb") is not None]
        rail = next((s["total_source"] for _, s in self.samples if s.get("total_source")), None)
        out = {"power_source": self.source, "power_samples": len(vals), "power_rail": rail,
               "mean_power_w": None, "max_power_w": None, "power_error": self.error,
               # system-wide RAM in use; on a Jetson CPU and GPU share it, so GPU buffers count
               "ram_used_peak_mb": float(max(ram)) if ram else None}
        if vals:
            out["mean_power_w"] = float(sum(vals) / len(vals) / 1000.0)
            out["max_power_w"] = float(max(vals) / 1000.0)
        return out


class JtopSampler(TegrastatsSampler):
    """Polls ``jtop`` (jetson-stats) for ``power["tot"]["power"]`` (mW). Needs the jtop service."""

    source = "jtop"

    def __init__(self, interval_ms: int = 100):
        super().__init__(interval_ms, command=["jtop"])
        self._stop = threading.Event()

    def start(self) -> "JtopSampler":
        from jtop import jtop  # lazy: only on a Jetson with jetson-stats

        def poll() -> None:
            try:
                with jtop(interval=self.interval_ms / 1000.0) as jetson:
                    while not self._stop.is_set() and jetson.ok():
                        tot = jetson.power.get("tot", {})
                        mw = tot.get("power")
                        if mw is not None:
                            self.samples.append((time.monotonic(), {"total_mw": float(mw),
                                                                    "total_source": tot.get("name", "tot")}))
            except Exception as exc:  # the jtop service may be down; report it, do not fail the row
                self.error = f"jtop: {exc}"

        self._thread = threading.Thread(target=poll, name="jtop-poll", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def open_power_sampler(interval_ms: int = 100):
    """A started sampler (tegrastats, else jtop), or ``None`` when neither is available."""
    if shutil.which("tegrastats"):
        return TegrastatsSampler(interval_ms).start()
    try:
        import jtop  # noqa: F401
    except ImportError:
        return None
    return JtopSampler(interval_ms).start()
