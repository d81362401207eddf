"""Signals.protect(): a signal inside is raised when the outermost section ends, and an import
inside one completes (runtime/preload.py: a Ctrl-C raised inside importlib can leave the global
import lock held). Real signals, raised with ``signal.raise_signal`` (handled before it returns)."""
from __future__ import annotations

import _imp
import signal
import sys

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
