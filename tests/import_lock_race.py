"""A real SIGINT made to land inside importlib's module-lock callback, on demand (stdlib only).

importlib frees a module's lock through a weakref callback (``cb`` in
``importlib._bootstrap._get_module_lock``) whose first statement takes CPython's global import
lock, before the ``try`` that releases it. A signal handler that raises there leaves that lock
held by the main thread and its exception is dropped ("Exception ignored in ... cb"): the race
behind a lost Ctrl-C (edgepose/interrupts.py). :func:`arm` makes it happen every time, with a
real signal and nothing of edgepose: when ``target`` is first imported, it registers a weakref
on that module's lock, which CPython calls just before importlib's ``cb`` (newest weakref
first). That callback has a helper thread take the global import lock, so ``cb`` blocks on it;
the helper sees the main thread waiting inside ``cb``, sends it SIGINT, and lets go: the main
thread gets the lock and runs its Python-level signal handler at ``cb``'s next instruction.
The helper appends one line to ``log`` when it sent the signal (a harness that never fired
proves nothing).

Used in-process (``tests/core/test_interrupts.py``) and, as the ``sitecustomize.py`` of a
command under test, through :func:`sitecustomize` (``tests/runtime/test_interrupted_imports.py``).
"""
import _imp
import signal
import sys
import threading
import time
import weakref

import importlib._bootstrap as _bootstrap


def _main_thread_in_cb() -> bool:
    frame = sys._current_frames().get(threading.main_thread().ident)
    return frame is not None and frame.f_code.co_name == "cb"


def _helper(target: str, log: str, go: threading.Event, held: threading.Event) -> None:
    go.wait()
    _imp.acquire_lock()
    held.set()
    deadline = time.monotonic() + 10
    while not _main_thread_in_cb() and time.monotonic() < deadline:
        time.sleep(0.001)
    if _main_thread_in_cb():
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.05)  # the C-level handler has run; the Python-level one waits for cb's next instruction
        with open(log, "a") as fh:
            fh.write(f"SIGINT sent while the main thread waited inside cb for {target}\n")
    _imp.release_lock()


class _Finder:
    """Finds nothing; arms the race the first time ``target`` is imported (not merely looked up)."""

    def __init__(self, target: str, log: str):
        self.target, self.log, self.armed = target, log, []

    def find_spec(self, name, path=None, target=None):
        ref = _bootstrap._module_locks.get(name) if name == self.target and not self.armed else None
        lock = ref() if ref is not None else None  # none: only looked up (importlib.util.find_spec)
        if lock is not None:
            go, held = threading.Event(), threading.Event()
            threading.Thread(target=_helper, args=(name, self.log, go, held), name="import-lock-race",
                             daemon=True).start()

            def before_cb(_ref):
                go.set()
                held.wait(10)

            self.armed.append(weakref.ref(lock, before_cb))
        return None


def arm(target: str, log: str) -> _Finder:
    """Make a SIGINT land inside ``cb`` at the end of ``target``'s first import; returns the
    finder put first on ``sys.meta_path`` (remove it when done)."""
    finder = _Finder(target, log)
    sys.meta_path.insert(0, finder)
    return finder


def sitecustomize(target_env: str = "EP_SIGINT_IMPORT", log_env: str = "EP_SIGINT_LOG") -> str:
    """The text of a ``sitecustomize.py`` that arms the race for the module named in the
    environment variable ``target_env``, logging to the file named in ``log_env``."""
    with open(__file__) as fh:
        here = fh.read()
    return f"{here}\n\nimport os\narm(os.environ[{target_env!r}], os.environ[{log_env!r}])\n"
