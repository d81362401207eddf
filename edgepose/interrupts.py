"""Ctrl-C, SIGTERM and a full disk, for the library and the CLIs alike.

* :class:`SignalHandlers` routes SIGINT/SIGTERM to a handler while it is open (the trainer's
  stop request subclasses it).
* :func:`is_disk_full` / :func:`disk_full_message`: ``ENOSPC``, ``EFBIG`` from ``ulimit -f``,
  ``EDQUOT``, said as which file could not be written.
* :class:`Signals` turns SIGTERM into the same exception as Ctrl-C (:class:`Interrupt`) and
  offers :meth:`Signals.protect`, a section a signal cannot cut in half: a signal arriving
  inside it is raised when the section ends (so one result is written to every sink or to
  none).
"""
from __future__ import annotations

import contextlib
import errno
import signal
import threading
from typing import Dict, Iterator, Optional

#: errno values that mean "the disk (or the file size limit) is full"
DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class Interrupt(KeyboardInterrupt):
    """Ctrl-C or SIGTERM; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def disk_full_message(exc: OSError) -> str:
    where = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
    reason = "file size limit reached (ulimit -f)" if exc.errno == errno.EFBIG else "no space left on the device"
    return f"{reason}{where} ({errno.errorcode.get(exc.errno, exc.errno)})"


class SignalHandlers:
    """Context manager that routes SIGINT and SIGTERM to ``self._handle`` while it is open and
    restores the previous handlers on exit. Handlers can only be installed from the main
    thread; elsewhere the object is inert. Subclasses define ``_handle(signum, frame)``."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, object] = {}

    def _handle(self, signum, frame) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, prev in self._previous.items():
            signal.signal(s, prev)
        self._previous.clear()


class Signals(SignalHandlers):
    """Context manager: SIGINT and SIGTERM raise :class:`Interrupt` in the main thread, except
    inside :meth:`protect`, where they are held until the section ends.

    Imports belong inside a protected section when other threads may import: an
    :class:`Interrupt` raised inside importlib between its ``_imp.acquire_lock()`` and the
    ``try`` that releases it leaves CPython's global import lock held by the main thread (in
    the lock's weakref callback the exception is even swallowed, "Exception ignored in ...
    cb"), and the first import in any other thread then waits forever."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0  # open protect() sections (they nest)
        self._pending: Optional[int] = None

    @property
    def _held(self) -> bool:
        return self._depth > 0

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal API
        self.signum = signum
        if self._held:
            self._pending = signum
            return
        raise Interrupt(signum)

    @contextlib.contextmanager
    def protect(self) -> Iterator[None]:
        """A section a signal cannot cut: one arriving inside is raised as :class:`Interrupt`
        when the outermost open section ends (sections nest)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None:
                signum, self._pending = self._pending, None
                raise Interrupt(signum)


