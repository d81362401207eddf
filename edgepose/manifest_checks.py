"""Field checks for :mod:`edgepose.manifest`: each reads one JSON value by type and range.

A :class:`Checker` walks a parsed ``edgepose.json`` and collects one line per problem, each
naming the key (``input.shape[1]``, ``files['model.onnx'].size``), what it found and what it
expected, so :meth:`edgepose.manifest.Manifest.from_json` can refuse a manifest with every
problem listed at once instead of failing later, one frame at a time.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

#: a value is shown in a message at most this many characters long
_SHOWN = 80


def shown(value: Any) -> str:
    """``repr(value)``, shortened for a message (a manifest may hold megabytes)."""
    try:
        text = repr(value)
    except RecursionError:  # pragma: no cover - only for values nested deeper than Python's limit
        text = f"<{type(value).__name__} nested too deeply>"
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def kind(value: Any) -> str:
    """The JSON name of ``value``'s type: object, array, string, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def is_number(v: Any) -> bool:
    """A finite JSON number (not a boolean)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_whole(v: Any) -> bool:
    """A JSON integer (not a boolean, not ``2.0``)."""
    return isinstance(v, int) and not isinstance(v, bool)


#: the value of a key that is absent (``parent.get(key, MISSING)``)
MISSING = _MISSING = object()


class Checker:
    """Collects ``"KEY is FOUND, expected EXPECTED"`` lines; each reader returns a usable
    default when the value is wrong, so one pass finds every problem."""

    def __init__(self) -> None:
        self.problems: List[str] = []

    def bad(self, key: str, value: Any, expected: str) -> None:
        found = "missing" if value is _MISSING else f"{shown(value)} (a JSON {kind(value)})"
        self.problems.append(f"{key} is {found}, expected {expected}")

    def note(self, line: str) -> None:
        self.problems.append(line)

    # ----------------------------------------------------------------- containers
    def obj(self, parent: dict, name: str, key: str, required: bool = True, nullable: bool = False) -> Optional[dict]:
        """``parent[name]`` when it is an object; ``None`` (and a problem unless allowed) otherwise."""
        v = parent.get(name, _MISSING)
        if v is _MISSING and not required:
            return None
        if v is None and nullable:
            return None
        if not isinstance(v, dict):
            self.bad(key, v, "an object" + (" or null" if nullable else ""))
            return None
        return v

    # ----------------------------------------------------------------- scalars
    def text(self, parent: dict, name: str, key: str, choices: Optional[Sequence[str]] = None,
             default: Any = _MISSING) -> Optional[str]:
        """A non-empty string without NUL (one of ``choices`` when given)."""
        v = parent.get(name, _MISSING)
        if v is _MISSING and default is not _MISSING:
            return default
        ok = isinstance(v, str) and v.strip() != "" and "\x00" not in v
        if ok and choices is not None and v not in choices:
            ok = False
        if not ok:
            self.bad(key, v, f"one of {', '.join(choices)}" if choices is not None else "a non-empty string")
            return None
        return v

    def whole(self, parent: dict, name: str, key: str, lo: int, hi: int, default: Any = _MISSING) -> Optional[int]:
        """An integer in ``[lo, hi]``."""
        v = parent.get(name, _MISSING)
        if v is _MISSING and default is not _MISSING:
            return default
        if not (is_whole(v) and lo <= v <= hi):
            self.bad(key, v, f"a whole number in {lo}..{hi}")
            return None
        return int(v)

    def number(self, parent: dict, name: str, key: str, lo: float, hi: float, lo_open: bool = False,
               default: Any = _MISSING) -> Optional[float]:
        """A finite number in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""
        v = parent.get(name, _MISSING)
        if v is _MISSING and default is not _MISSING:
            return default
        if not (is_number(v) and (v > lo if lo_open else v >= lo) and v <= hi):
            self.bad(key, v, f"a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}]")
            return None
        return float(v)

    def numbers(self, parent: dict, name: str, key: str, n: int, lo: float, hi: float, lo_open: bool = False,
                default: Any = _MISSING) -> Optional[List[float]]:
        """A list of ``n`` finite numbers, each in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""
        v = parent.get(name, _MISSING)
        if v is _MISSING and default is not _MISSING:
            return default
        ok = isinstance(v, list) and len(v) == n and all(
            is_number(x) and (x > lo if lo_open else x >= lo) and x <= hi for x in v)
        if not ok:
            self.bad(key, v, f"{n} finite numbers in {'(' if lo_open else '['}{lo:g}, {hi:g}]")
            return None
        return [float(x) for x in v]
