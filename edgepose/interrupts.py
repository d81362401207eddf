"""Ctrl-C, SIGTERM and a full disk, for the library and the CLIs alike.

* :class:`SignalHandlers` routes SIGINT/SIGTERM to a handler while it is open (the trainer's
  stop request subclasses it).
* :func:`is_disk_full` / :func:`disk_full_message`: ``ENOSPC``, ``EFBIG`` from ``ulimit -f``,
  ``EDQUOT``, said as which file could not be written.
* :class:`Signals` turns SIGTERM into the same exception as Ctrl-C (:class:`Interrupt`) and
  offers :meth:`Signals.protect`, a section a signal cannot cut in half: a signal arriving
  inside it is raised when the section ends (so one result is written to every sink or to
  none). importlib's own code is such a section wherever it runs (see :class:`Signals`).
"""
from __future__ import annotations

import contextlib
import errno
import importlib._bootstrap
import importlib._bootstrap_external
import signal
import threading
import time
import types
from typing import Dict, Iterator, Optional

#: errno values that mean "the disk (or the file size limit) is full"
DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: the code files of importlib's machinery ("<frozen importlib._bootstrap>", its _external twin,
#: or their .py files where Python runs them unfrozen): a signal is never raised inside them
IMPORTLIB_FILES = frozenset(f.__code__.co_filename for m in (importlib._bootstrap, importlib._bootstrap_external)
                            for f in vars(m).values() if isinstance(f, types.FunctionType) and f.__globals__ is vars(m))
#: how often a signal deferred out of importlib is sent again until it lands outside it (s)
REDELIVER_EVERY_S = 0.002


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


def _in_importlib(frame) -> bool:
    """Whether ``frame`` (where a signal handler runs) is importlib's code; inside a running
    :meth:`Signals._handle` (a second signal while the first is handled), the frame that the
    first one interrupted decides."""
    interrupted = frame
    while frame is not None:
        if frame.f_code is Signals._handle.__code__:
            interrupted = frame.f_back
        frame = frame.f_back
    return interrupted is not None and interrupted.f_code.co_filename in IMPORTLIB_FILES


class Signals(SignalHandlers):
    """Context manager: SIGINT and SIGTERM raise :class:`Interrupt` in the main thread, except
    inside :meth:`protect`, where they are held until the section ends, and inside importlib.

    A signal whose handler runs while importlib's own code executes (:data:`IMPORTLIB_FILES`;
    not the body of the module being imported, which an interrupt cuts cleanly) is not raised
    there: raised between importlib's ``_imp.acquire_lock()`` and the ``try`` that releases it
    (in the weakref callback that frees a module's lock, ``cb``, on every first import) it left
    CPython's global import lock held by the main thread and was itself dropped ("Exception
    ignored in ... cb"): the command went on as if no Ctrl-C had come, and the first import in
    any other thread waited forever. It is sent again to the main thread every
    :data:`REDELIVER_EVERY_S` by a short-lived thread (it never imports) until the handler runs
    outside importlib and raises it, or a :meth:`protect` section holds it; the delay is that of
    the importlib code running then, not of a whole import.
    """

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0  # open protect() sections (they nest)
        self._pending: Optional[int] = None  # a signal held by protect() or deferred out of importlib
        self._resent = False  # a redelivery of the pending signal is on its way to the handler
        self._courier: Optional[threading.Thread] = None
        self._lock = threading.RLock()  # the handler may run again inside itself: reentrant

    @property
    def _held(self) -> bool:
        return self._depth > 0

    def _handle(self, signum, frame) -> None:
        with self._lock:
            resent, self._resent = self._resent, False
            if resent and self._pending is None:
                return  # a redelivery of a signal that was raised meanwhile
            self.signum = signum
            if self._held or _in_importlib(frame):
                self._pending = signum
                if not self._held and self._courier is None:
                    self._courier = threading.Thread(target=self._redeliver, name="signal-redelivery", daemon=True)
                    self._courier.start()
                return
            self._pending = None
        raise Interrupt(signum)

    def _redeliver(self) -> None:
        """The courier thread: send the pending signal again while no protect() section holds it."""
        main = threading.main_thread().ident
        while True:
            time.sleep(REDELIVER_EVERY_S)
            with self._lock:
                if self._pending is None or self._held or not self._previous:
                    self._courier = None
                    return
                if not self._resent:
                    self._resent = True
                    signal.pthread_kill(main, self._pending)

    def __exit__(self, *exc) -> None:
        """Restores the handlers once the courier is done. A signal still deferred out of
        importlib then (it came as the body ended) is dropped: what it would have stopped is done."""
        try:
            with self._lock:
                self._pending = None  # the courier stops
            courier = self._courier
            if courier is not None:
                courier.join()
            end = time.monotonic() + 0.5
            while self._resent and time.monotonic() < end:  # sent, not handled yet: our handler takes it
                time.sleep(0.001)
        finally:
            super().__exit__(*exc)

    @contextlib.contextmanager
    def protect(self) -> Iterator[None]:
        """A section a signal cannot cut: one arriving inside is raised as :class:`Interrupt`
        when the outermost open section ends (sections nest). Imports belong inside one when a
        signal must not cut them at all (importlib's own code is protected anyway)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None:
                signum, self._pending = self._pending, None
                raise Interrupt(signum)
