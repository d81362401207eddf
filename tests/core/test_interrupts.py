"""Signals.protect(): a signal inside is raised when the outermost section ends, and an import
inside one completes (runtime/preload.py: a Ctrl-C raised inside importlib can leave the global
import lock held); a signal handled inside importlib's own code is raised right after it. Real
signals, raised with ``signal.raise_signal`` (handled before it returns) or sent by
``tests/import_lock_race.py`` to land inside importlib's module-lock callback."""
from __future__ import annotations

import _imp
import signal
import sys
import threading
import time
import traceback

import pytest

from edgepose.interrupts import Interrupt, Signals


def test_a_signal_inside_nested_sections_waits_for_the_outermost_end():
    steps = []
    with Signals() as signals:
        with pytest.raises(Interrupt) as caught:
            with signals.protect():
                with signals.protect():
                    signal.raise_signal(signal.SIGTERM)
                    steps.append("inner")
                steps.append("after inner")  # the inner end does not raise yet
            steps.append("never")
    assert steps == ["inner", "after inner"] and caught.value.signum == signal.SIGTERM


def test_an_import_interrupted_inside_a_section_completes_and_the_signal_follows(tmp_path, monkeypatch):
    (tmp_path / "ep_sigint_mod.py").write_text("import signal\nsignal.raise_signal(signal.SIGINT)\nDONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ep_sigint_mod", raising=False)
    with Signals() as signals:
        with pytest.raises(Interrupt) as caught:
            with signals.protect():
                import ep_sigint_mod
        assert ep_sigint_mod.DONE and caught.value.signum == signal.SIGINT
        assert not _imp.lock_held()
        del sys.modules["ep_sigint_mod"]  # unprotected, the same import is cut by the interrupt
        with pytest.raises(Interrupt):
            import ep_sigint_mod  # noqa: F401,F811
    assert "ep_sigint_mod" not in sys.modules and not _imp.lock_held()


@pytest.fixture()
def cb_race(tmp_path, monkeypatch):
    """``arm(name)``: a real SIGINT lands inside importlib's module-lock callback at the end of
    the first import of a fresh module ``name`` (tests/import_lock_race.py); yields ``arm`` and
    the exceptions Python dropped as unraisable meanwhile."""
    import import_lock_race

    monkeypatch.syspath_prepend(str(tmp_path))
    dropped, finders, log = [], [], tmp_path / "race.log"
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_value))

    def arm(name: str) -> None:
        (tmp_path / f"{name}.py").write_text("DONE = True\n")
        finders.append(import_lock_race.arm(name, str(log)))

    yield arm, dropped
    for f in finders:
        sys.meta_path.remove(f)
        sys.modules.pop(f.target, None)
    assert log.is_file() and len(log.read_text().splitlines()) == len(finders), "the race harness did not fire"


def wait_for_the_signal(seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.001)


def test_a_signal_inside_importlibs_lock_callback_is_raised_right_after(cb_race):
    """Raised there, the Interrupt was dropped ("Exception ignored in ... cb") and the import
    lock left held; now the import completes and the Interrupt follows, outside importlib."""
    arm, dropped = cb_race
    arm("ep_cb_race_mod")
    with Signals():
        with pytest.raises(Interrupt) as caught:
            import ep_cb_race_mod
            wait_for_the_signal()
    assert ep_cb_race_mod.DONE and caught.value.signum == signal.SIGINT
    assert not any("importlib" in f.filename for f in traceback.extract_tb(caught.value.__traceback__))
    assert not dropped and not _imp.lock_held()
    assert not [t.name for t in threading.enumerate() if t.name == "signal-redelivery"]


def test_a_signal_deferred_out_of_importlib_waits_for_a_section_opened_meanwhile(cb_race):
    arm, dropped = cb_race
    arm("ep_cb_race_mod2")
    steps = []
    with Signals() as signals:
        with pytest.raises(Interrupt):
            import ep_cb_race_mod2  # noqa: F401
            with signals.protect():
                wait_for_the_signal(0.2)
                steps.append("section done")
            steps.append("never")
    assert steps == ["section done"] and not dropped and not _imp.lock_held()
