"""Progress bars: tqdm on a terminal, a silent stand-in otherwise.

One helper for every long loop (rendering, calibration, validation, training epochs,
benchmark rows), so a missing tqdm never breaks a command and bars look the same everywhere.
Bars go to stderr, and only when it is a terminal: in a log file or a pipe a bar is a stream of
carriage returns, and the commands print plain lines of their own (per epoch, per row).
"""
from __future__ import annotations

import sys
from typing import Iterable, Optional


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes and closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _Silent:
    """What :func:`progress` returns without tqdm: iterates and counts, prints nothing."""

    def __init__(self, iterable: Optional[Iterable] = None):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def progress(iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: str = "",
             unit: str = "it", enabled: bool = True, **kwargs):
    """A tqdm bar over ``iterable`` (or a manual one with ``total`` and ``update``) when
    ``enabled`` and the bar's file (stderr) is a terminal; else the silent stand-in."""
    if enabled and is_terminal(kwargs.get("file", sys.stderr)):
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            kwargs.setdefault("file", sys.stderr)
            return tqdm(iterable, total=total, desc=desc, unit=unit, **kwargs)
    return _Silent(iterable)
