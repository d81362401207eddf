"""Every docstring example (``>>>``) in the four packages runs, here, as written.

Modules are found by their text, so a new doctest is run without being listed. A module whose
import needs an optional package that is missing (torch, onnx) is skipped with the reason.
"""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"edgepose": "edgepose", "train": "edgepose.train", "export": "edgepose.export",
            "runtime": "edgepose.runtime"}


def _modules_with_examples():
    for folder, dotted in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            if ">>> " not in path.read_text(encoding="utf-8"):
                continue
            rel = path.relative_to(REPO / folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            yield ".".join((dotted,) + rel)


MODULES = list(_modules_with_examples())


def test_the_search_finds_the_known_examples():
    assert {"edgepose.atomic", "edgepose.errors", "edgepose.argtypes", "edgepose.runtime.bench.timing"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # e.g. torch or onnx absent on this machine
        pytest.skip(f"{name} needs {exc.name or exc}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
