"""What every CLI does at its top level with Ctrl-C, SIGTERM and a full disk.

:func:`guarded` runs a CLI body: :class:`~edgepose.errors.EdgePoseError` prints
``PROG: error: ...`` (exit 2); Ctrl-C / SIGTERM print ``PROG: interrupted ...`` (exit
``128 + signal``); a full disk prints which file could not be written and what to do (exit 2);
a path the system refuses (read-only file system, permission, a name too long, a link loop)
prints the path and the reason (exit 2); output piped into a reader that stopped (``| head``)
ends quietly with 141 (``128 + SIGPIPE``), like other Unix tools. Names that are not UTF-8
are printed with backslash escapes instead of failing on a strict UTF-8 terminal. No traceback
in any case. The signal and disk-full pieces live in :mod:`edgepose.interrupts`
(the library uses them too) and are re-exported here for the CLIs.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Callable

from ..errors import EdgePoseError
from ..interrupts import Interrupt, SignalHandlers, Signals, disk_full_message, is_disk_full  # noqa: F401

EXIT_ERROR = 2
EXIT_PIPE = 128 + 13  # SIGPIPE: what a shell reports for `cmd | head`
#: OS errors on a path the user gave, said in words (the path is in the exception)
PATH_ERRORS = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted", errno.ENAMETOOLONG: "a name longer than the file system allows",
               errno.ELOOP: "a symbolic-link loop", errno.ENOTDIR: "a part of the path is a file, not a folder",
               errno.EISDIR: "it is a folder, a file was expected", errno.ENOENT: "no such file or folder",
               errno.EEXIST: "it exists already", errno.ENOTEMPTY: "the folder is not empty"}


def tolerant_output() -> None:
    """Print names that are not UTF-8 (undecodable bytes held as surrogates) with backslash
    escapes instead of raising ``UnicodeEncodeError`` on a strict UTF-8 terminal."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a closed or exotic stream
                pass


def _stdout_to_devnull() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stdout without a descriptor
        pass


def path_error_message(exc: OSError) -> str:
    """``reason: path`` of an OS error on a user's path (:data:`PATH_ERRORS`)."""
    where = " -> ".join(str(p) for p in (exc.filename, getattr(exc, "filename2", None)) if p)
    return f"{PATH_ERRORS.get(exc.errno, exc.strerror or str(exc))}: {where or '(no path given)'}"


def guarded(prog: str, body: Callable[[], int], on_interrupt: str = "nothing was written") -> int:
    """Run ``body`` and turn the expected failures into a message and an exit code."""
    tolerant_output()
    try:
        return body()
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_PIPE
    except EdgePoseError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"\n{prog}: interrupted ({signal.Signals(signum).name}); {on_interrupt}", file=sys.stderr)
        return 128 + int(signum)
    except OSError as exc:
        if is_disk_full(exc):
            print(f"{prog}: error: {disk_full_message(exc)}\n  -> free some space (or raise the limit) and run "
                  "the command again; files written atomically were left as they were", file=sys.stderr)
            return EXIT_ERROR
        if exc.errno not in PATH_ERRORS:
            raise
        print(f"{prog}: error: {path_error_message(exc)}\n  -> pick a path this user can write (or read), and run "
              "the command again; files written atomically were left as they were", file=sys.stderr)
        return EXIT_ERROR
