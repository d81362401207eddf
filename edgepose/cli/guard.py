"""What every CLI does at its top level with Ctrl-C, SIGTERM and a full disk.

:func:`guarded` runs a CLI body: :class:`~edgepose.errors.EdgePoseError` prints
``PROG: error: ...`` (exit 2); Ctrl-C / SIGTERM print ``PROG: interrupted ...`` (exit
``128 + signal``); a full disk prints which file could not be written and what to do (exit 2).
No traceback in any case. The signal and disk-full pieces live in :mod:`edgepose.interrupts`
(the library uses them too) and are re-exported here for the CLIs.
"""
from __future__ import annotations

import signal
import sys
from typing import Callable

from ..errors import EdgePoseError
from ..interrupts import Interrupt, SignalHandlers, Signals, disk_full_message, is_disk_full  # noqa: F401

EXIT_ERROR = 2


def guarded(prog: str, body: Callable[[], int], on_interrupt: str = "nothing was written") -> int:
    """Run ``body`` and turn the expected failures into a message and an exit code."""
    try:
        return body()
    except EdgePoseError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"\n{prog}: interrupted ({signal.Signals(signum).name}); {on_interrupt}", file=sys.stderr)
        return 128 + int(signum)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        print(f"{prog}: error: {disk_full_message(exc)}\n  -> free some space (or raise the limit) and run "
              "the command again; files written atomically were left as they were", file=sys.stderr)
        return EXIT_ERROR
