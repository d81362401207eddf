"""The one reader of ``WIDTHxHEIGHT`` sizes for every command line (synth, train, benchmarks).

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
from typing import Callable, Tuple

from edgepose.errors import ConfigError


def parse_size(text: str, multiple_of: int = 1, minimum: int = 1, what: str = "--size") -> Tuple[int, int]:
    """``"160x120"`` -> ``(160, 120)``; :class:`ConfigError` saying what was expected otherwise."""
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
    return w, h


def size_type(multiple_of: int = 1, minimum: int = 1, what: str = "--size") -> Callable[[str], Tuple[int, int]]:
    """:func:`parse_size` as an argparse ``type=`` (a bad size is a usage error, exit code 2)."""

    def parse(text: str) -> Tuple[int, int]:
        try:
            return parse_size(text, multiple_of, minimum, what)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "WIDTHxHEIGHT"
    return parse
