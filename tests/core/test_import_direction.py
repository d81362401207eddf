"""The arrows point toward the core (README, "Layout"): ``edgepose`` never imports a stage
package; ``train`` never imports ``export`` or ``runtime``; ``runtime`` never imports
``export`` (but for the test-bundle maker's FP16 pass), and imports torch or ``edgepose.train``
only inside a function (the torch runner),
never at import time. Read from the source (every import statement, and every
``import_module`` / ``require`` / ``__import__`` of a literal name), then checked by importing
every runtime module with torch made unimportable."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator, Tuple

REPO = Path(__file__).resolve().parents[2]
STAGES = ("edgepose.train", "edgepose.export", "edgepose.runtime")
#: ``python -m edgepose CMD`` names each command's module to run it: the one allowed mention
DISPATCHER = REPO / "edgepose" / "__main__.py"
#: the synthetic-bundle maker for tests and benchmarks (not the runtime proper) runs the
#: exporter's own FP16 pass, inside a function: the one allowed runtime -> export arrow
TEST_BUNDLES = REPO / "runtime" / "testing.py"


def _absolute(module: str, level: int, path: Path, root: str, dotted: str) -> str:
    if level == 0:
        return module
    parts = tuple(dotted.split(".")) + path.parent.relative_to(REPO / root).parts
    base = ".".join(parts[: len(parts) - (level - 1)] if level > 1 else parts)
    return f"{base}.{module}" if module else base


def imports(root: str, dotted: str) -> Iterator[Tuple[Path, int, str, bool]]:
    """``(file, line, imported module, at import time?)`` for every import under ``root``."""
    for path in sorted((REPO / root).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top = set()
        for node in tree.body:  # statements that run when the module is imported
            for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef)) else [node]:
                top.add(id(sub))
            if isinstance(node, ast.ClassDef):  # class bodies run at import, their methods do not
                for stmt in node.body:
                    if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        top.update(id(s) for s in ast.walk(stmt))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [_absolute(node.module or "", node.level, path, root, dotted)]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if fn in ("import_module", "require", "__import__"):
                    names = [node.args[0].value]
            for name in names:
                yield path, node.lineno, name, id(node) in top


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_scanner_sees_absolute_relative_lazy_and_string_imports():
    found = {(p.name, n, t) for p, _, n, t in imports("runtime", "edgepose.runtime")}
    assert ("report.py", "edgepose.atomic", True) in found
    assert ("tensorrt_runner.py", "edgepose.runtime.bundles", True) in found  # `from ..bundles import`
    assert ("torch_runner.py", "edgepose.train.model", False) in found  # lazy, inside _activate
    assert ("torch_runner.py", "edgepose.runtime.runners.base", True) in found  # `from .base import`
    assert ("onnxruntime_runner.py", "onnxruntime", False) in found  # require("onnxruntime", ...)


def test_stage_packages_name_the_core_absolutely():
    # `from ...errors import` in runtime/bench beside `from edgepose.errors import` elsewhere:
    # a stage reaches the core as `edgepose.X`, relative imports stay inside the stage
    bad = []
    for root, dotted in (("train", "edgepose.train"), ("export", "edgepose.export"), ("runtime", "edgepose.runtime")):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level and \
                        not _under(_absolute(node.module or "", node.level, path, root, dotted), dotted):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not bad, "import the core as edgepose.X:\n" + "\n".join(bad)


def test_the_core_never_imports_a_stage_package_or_torch():
    bad = [f"{p.relative_to(REPO)}:{line} imports {name}" for p, line, name, _ in imports("edgepose", "edgepose")
           if p != DISPATCHER and (any(_under(name, s) for s in STAGES) or _under(name, "torch"))]
    assert not bad, "edgepose/ must not depend on the stages:\n" + "\n".join(bad)


def test_train_never_imports_export_or_runtime():
    bad = [f"{p.relative_to(REPO)}:{line} imports {name}" for p, line, name, _ in imports("train", "edgepose.train")
           if _under(name, "edgepose.export") or _under(name, "edgepose.runtime")]
    assert not bad, "\n".join(bad)


def test_runtime_imports_torch_and_train_only_lazily_and_never_export():
    bad = []
    for p, line, name, at_import in imports("runtime", "edgepose.runtime"):
        where = f"{p.relative_to(REPO)}:{line} imports {name}"
        if _under(name, "edgepose.export") and (p != TEST_BUNDLES or at_import):
            bad.append(where)
        elif (_under(name, "torch") or _under(name, "torchvision") or _under(name, "edgepose.train")) and at_import:
            bad.append(where + " at import time")
        elif _under(name, "edgepose.train") and p.name != "torch_runner.py":
            bad.append(where + " (only the torch runner may reach into train)")
    assert not bad, "\n".join(bad)


def test_every_runtime_module_imports_with_torch_unimportable():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        for name in ("torch", "torchvision"):
            sys.modules[name] = None  # `import torch` now raises ImportError
        import edgepose.runtime as rt
        names = [m.name for m in pkgutil.walk_packages(rt.__path__, "edgepose.runtime.")]
        for name in names:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.startswith("edgepose.train") or m.startswith("edgepose.export"))
        print(len(names), leaked)
        sys.exit(1 if leaked or len(names) < 20 else 0)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
