"""Where a benchmark ran: device, clocks and software versions, recorded with every report.

Everything here is best effort and never raises: a missing tool is recorded as ``None``.
On a Jetson it adds the L4T release, the JetPack package version, ``nvpmodel -q`` and the
``jetson_clocks --show`` output (which may need root; the error is recorded instead).
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _run(argv: List[str], timeout: float = 5.0) -> Optional[str]:
    """stdout (+stderr) of a tool, or ``None`` when it is not installed."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    out = (p.stdout + p.stderr).strip()
    return out if p.returncode == 0 else f"error (exit {p.returncode}): {out[:300]}"


def cpu_info(cpuinfo_text: Optional[str] = None) -> Dict[str, object]:
    """``{"model": str|None, "flags": {...}}`` from ``/proc/cpuinfo`` (or the text given).

    x86 has ``model name``; ARM boards have ``Hardware``/``Model`` or only ``CPU part``.
    ``vnni`` tells whether ONNX Runtime's int8 kernels can avoid the u8s8 saturation of
    pre-VNNI x86 CPUs.
    """
    text = cpuinfo_text if cpuinfo_text is not None else (_read("/proc/cpuinfo") or "")
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    model = fields.get("model name") or fields.get("hardware") or fields.get("model") or fields.get("cpu part")
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    return {
        "model": model or platform.processor() or None,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}) if "flags" in fields else None,
        "avx2": ("avx2" in flags) if "flags" in fields else None,
    }


def _version(dist: str) -> Optional[str]:
    """Installed version of a distribution without importing it."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def software_versions() -> Dict[str, Optional[str]]:
    out = {"python": platform.python_version()}
    for dist in ("edgepose", "numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "tensorrt", "torch",
                 "cuda-python", "jetson-stats"):
        out[dist] = _version(dist)
    if out["tensorrt"] is None and "tensorrt" in sys.modules:  # JetPack's apt package has no dist-info
        out["tensorrt"] = getattr(sys.modules["tensorrt"], "__version__", None)
    return out


def gpu_info() -> Optional[str]:
    return _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])


def jetson_info(root: str = "/") -> Optional[Dict[str, Optional[str]]]:
    """L4T/JetPack/power-mode facts, or ``None`` when this is not a Jetson (``root``: the
    file system to read ``etc/nv_tegra_release`` and ``proc/device-tree/model`` from)."""
    l4t = _read(str(Path(root) / "etc" / "nv_tegra_release"))
    model = _read(str(Path(root) / "proc" / "device-tree" / "model"))
    if l4t is None and (model is None or "jetson" not in model.lower()):
        return None
    return {
        "model": model,
        "l4t": l4t.splitlines()[0] if l4t else None,
        "jetpack": _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"]),
        "nvpmodel": _run(["nvpmodel", "-q"]),
        "jetson_clocks": _run(["jetson_clocks", "--show"]),
    }


def collect() -> Dict[str, object]:
    """All of the above, for ``report.json["system"]``."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "gpu": gpu_info(),
        "jetson": jetson_info(),
        "software": software_versions(),
    }
