"""edgepose.errors.require: a missing package is a MissingDependencyError with the install
line, but a Ctrl-C that lands while a native module initialises is not a missing package."""
from __future__ import annotations

import sys

import pytest

from edgepose.errors import MissingDependencyError, require
from edgepose.interrupts import Interrupt


class _Finder:
    """A meta-path finder for one module name whose import fails as ``exc_factory()`` says."""

    def __init__(self, name, exc_factory):
        self.name, self.exc_factory = name, exc_factory

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            raise self.exc_factory()
        return None


def _blocked(monkeypatch, name, exc_factory):
    monkeypatch.setattr(sys, "meta_path", [_Finder(name, exc_factory)] + sys.meta_path)
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_an_absent_package_names_its_install_line(monkeypatch):
    _blocked(monkeypatch, "edgepose_absent_pkg", lambda: ImportError("No module named 'edgepose_absent_pkg'"))
    with pytest.raises(MissingDependencyError, match="pip install edgepose_absent_pkg"):
        require("edgepose_absent_pkg", "a test feature")


def test_an_interrupt_during_a_native_modules_initialisation_stays_an_interrupt(monkeypatch):
    """pybind11 modules (onnxruntime's) turn an exception raised while they initialise into
    ``ImportError("initialization failed")`` raised from it: a SIGINT there made edgepose-run
    say 'onnxruntime is not importable here' and exit 2 instead of 130."""
    def interrupted_init():
        try:
            raise Interrupt(2)
        except Interrupt as sig:
            err = ImportError("initialization failed")
            err.__cause__ = sig
            return err

    _blocked(monkeypatch, "edgepose_native_pkg", interrupted_init)
    with pytest.raises(Interrupt) as caught:
        require("edgepose_native_pkg", "a test feature")
    assert caught.value.signum == 2
