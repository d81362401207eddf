"""Argument types for every edgepose CLI: numbers are checked where they are parsed.

``float("nan")``, ``"inf"`` and out-of-range values would otherwise pass argparse and surface
much later (NaN weights after an epoch, a division by zero in a timestamp, a gate that
"passes" because every comparison with NaN is false). Each factory returns a callable for
``add_argument(type=...)`` that raises :class:`argparse.ArgumentTypeError` with the range it
expects, so argparse prints ``error: argument --lr: ...`` and exits 2.

>>> number(low=0, low_open=True)("1e-3")
0.001
>>> number(low=0, low_open=True)("nan")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a finite number > 0, got 'nan'
>>> integer(low=1)("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a whole number >= 1, got '0'
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, Optional


def _range(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return (" " + " and ".join(parts)) if parts else ""


def check_range(value: float, low=None, high=None, low_open: bool = False, high_open: bool = False) -> bool:
    """``True`` when ``value`` is finite and inside the bounds."""
    if not math.isfinite(value):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    if high is not None and (value >= high if high_open else value > high):
        return False
    return True


def number(low: Optional[float] = None, high: Optional[float] = None, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """A finite float within ``[low, high]`` (``low_open``/``high_open`` make a bound strict)."""
    what = "a finite number" + _range(low, high, low_open, high_open)

    def parse(text: str) -> float:
        try:
            v = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not check_range(v, low, high, low_open, high_open):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    parse.__name__ = "number"  # argparse names the type in "invalid <name> value"
    return parse


def integer(low: Optional[int] = None, high: Optional[int] = None) -> Callable[[str], int]:
    """A whole number within ``[low, high]``."""
    what = "a whole number" + _range(low, high, False, False)

    def parse(text: str) -> int:
        try:
            v = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not check_range(v, low, high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    parse.__name__ = "integer"
    return parse


#: common shapes
positive_int = integer(low=1)
nonnegative_int = integer(low=0)
positive_float = number(low=0, low_open=True)
nonnegative_float = number(low=0)
