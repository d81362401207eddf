"""``--gate``: bounds a user's CI checks; exit code 3 when a row breaks one.

Syntax: ``key=value`` pairs separated by commas, e.g. ``max-drift-m=0.05,max-drift-deg=1``.

* ``max-drift-m``   bound on a row's p95 position drift vs its FP32 reference (metres)
* ``max-drift-deg`` bound on a row's p95 rotation drift vs its FP32 reference (degrees)
* ``max-median-m`` / ``max-median-deg``  bounds on the median error vs ground truth
* ``allow-failed=1``  failed rows do not break the gate (by default a failed row does:
  a precision that cannot run cannot be shown to stay within bounds)

A row without a drift figure (its FP32 reference failed) breaks a drift bound for the same
reason. FP32 rows the bench ran only as drift references (``reference_only``) are not gated.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from edgepose.argtypes import check_range
from edgepose.errors import ConfigError

KEYS = {  # gate key -> (row field, unit)
    "max-drift-m": ("drift_p95_m", "m"),
    "max-drift-deg": ("drift_p95_deg", "deg"),
    "max-median-m": ("median_position_m", "m"),
    "max-median-deg": ("median_rotation_deg", "deg"),
}
EXIT_GATE = 3


def parse_gate(text: Optional[str]) -> Optional[Dict[str, float]]:
    """``"max-drift-m=0.05,max-drift-deg=1"`` -> ``{"max-drift-m": 0.05, "max-drift-deg": 1.0}``."""
    if text is None:
        return None
    out: Dict[str, float] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        key, sep, val = part.partition("=")
        key = key.strip()
        if not sep or (key not in KEYS and key != "allow-failed"):
            raise ConfigError(f"--gate: cannot read {part!r}; expected key=value with key in "
                              f"{sorted(KEYS) + ['allow-failed']}",
                              hint="example: --gate max-drift-m=0.05,max-drift-deg=1")
        try:
            v = float(val)
        except ValueError:
            raise ConfigError(f"--gate: {key} needs a number, got {val!r}") from None
        if not check_range(v, low=0):  # NaN would pass every comparison: "gate passed"
            raise ConfigError(f"--gate: {key} must be a finite number >= 0, got {val.strip()!r}",
                              hint="example: --gate max-drift-m=0.05,max-drift-deg=1")
        out[key] = v
    if not any(k in KEYS for k in out):
        raise ConfigError(f"--gate {text!r} sets no bound", hint="example: --gate max-drift-m=0.05,max-drift-deg=1")
    return out


def check_gate(rows: List[dict], gate: Dict[str, float]) -> List[str]:
    """One line per broken bound (empty when every row passes)."""
    problems: List[str] = []
    allow_failed = bool(gate.get("allow-failed", 0))
    for row in rows:
        if row.get("reference_only"):
            continue
        if row.get("status") != "ok":
            if not allow_failed:
                problems.append(f"{row['label']}: row failed ({row.get('error')}); "
                                "add allow-failed=1 to the gate to ignore failed rows")
            continue
        for key, bound in gate.items():
            if key not in KEYS:
                continue
            field, unit = KEYS[key]
            value = row.get(field)
            if value is None:
                problems.append(f"{row['label']}: {field} is unknown (no FP32 reference row succeeded), "
                                f"bound {key}={bound:g}")
            elif value > bound:
                problems.append(f"{row['label']}: {field} = {value:.4g} {unit} > {key}={bound:g}")
    return problems
