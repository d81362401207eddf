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

Sizes (``WIDTHxHEIGHT``) have one reader for synth, train and the benchmarks:

>>> parse_size("160x120")
(160, 120)
>>> parse_size("128X96", multiple_of=8)
(128, 96)
>>> parse_size("100x75", multiple_of=8, what="--input-size")
Traceback (most recent call last):
...
edgepose.errors.ConfigError: --input-size 100x75: both sides must be >= 8 and multiples of 8
  -> e.g. --input-size 128x96
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, Optional, Tuple

from .errors import ConfigError
from .input_spec import MAX_SIDE


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


def _ranged(convert: Callable[[str], float], what: str, name: str, low, high, low_open: bool,
            high_open: bool) -> Callable[[str], float]:
    """An argparse type: ``convert(text)`` then the range check; errors say ``expected WHAT``."""

    def parse(text: str):
        try:
            v = convert(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not check_range(v, low, high, low_open, high_open):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    parse.__name__ = name  # argparse names the type in "invalid <name> value"
    return parse


def number(low: Optional[float] = None, high: Optional[float] = None, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """A finite float within ``[low, high]`` (``low_open``/``high_open`` make a bound strict)."""
    what = "a finite number" + _range(low, high, low_open, high_open)
    return _ranged(float, what, "number", low, high, low_open, high_open)


def integer(low: Optional[int] = None, high: Optional[int] = None) -> Callable[[str], int]:
    """A whole number within ``[low, high]``."""
    what = "a whole number" + _range(low, high, False, False)
    return _ranged(int, what, "integer", low, high, False, False)


#: common shapes
positive_int = integer(low=1)
nonnegative_int = integer(low=0)
positive_float = number(low=0, low_open=True)
nonnegative_float = number(low=0)
#: CPU threads of a runtime (0 = the library's choice); more than 1024 is a typo, and ONNX
#: Runtime would try to start them all
threads = integer(low=0, high=1024)
#: a frame rate (Hz): 5e-324 passes "> 0" and makes every timestamp infinite
frame_rate = number(low=1e-3, high=1e6)
#: a batch size (engines' and the runtime's largest, edgepose.input_spec.MAX_BATCH)
batch_size = integer(low=1, high=1024)


def parse_size(text: str, multiple_of: int = 1, minimum: int = 1, what: str = "--size",
               maximum: int = MAX_SIDE) -> Tuple[int, int]:
    """``"160x120"`` -> ``(160, 120)``; :class:`ConfigError` saying what was expected otherwise
    (each side at most ``maximum``: 100000x100000 would allocate 30 GB per frame)."""
    example = "128x96" if multiple_of > 1 else "160x120"
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        w, h = int(parts[0]), int(parts[1])
    except ValueError:
        raise ConfigError(f"{what} expects WIDTHxHEIGHT in pixels, got {text!r}",
                          hint=f"e.g. {what} {example}") from None
    low = max(minimum, multiple_of)
    if w < low or h < low or w % multiple_of or h % multiple_of:
        rule = f"both sides must be >= {low}" + (f" and multiples of {multiple_of}" if multiple_of > 1 else "")
        raise ConfigError(f"{what} {w}x{h}: {rule}", hint=f"e.g. {what} {example}")
    if w > maximum or h > maximum:
        raise ConfigError(f"{what} {w}x{h}: expected each side <= {maximum} pixels", hint=f"e.g. {what} {example}")
    return w, h


def size(multiple_of: int = 1, minimum: int = 1, what: str = "--size") -> Callable[[str], Tuple[int, int]]:
    """:func:`parse_size` as an argparse ``type=`` (a bad size is a usage error, exit code 2)."""

    def parse(text: str) -> Tuple[int, int]:
        try:
            return parse_size(text, multiple_of, minimum, what)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "WIDTHxHEIGHT"
    return parse
