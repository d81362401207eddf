"""The arrows point toward the core (README, "Layout"): ``edgepose`` never imports a stage
package; ``train`` never imports ``export`` or ``runtime``; ``runtime`` never imports
``export``, and imports torch or ``edgepose.train`` only inside a function (the torch runner),
never at import time (the test-data makers that use the exporter live in ``tests/``). Read from the source (every import statement, and every
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
        if _under(name, "edgepose.export"):
            bad.append(where)
        elif (_under(name, "torch") or _under(name, "torchvision") or _under(name, "edgepose.train")) and at_import:
            bad.append(where + " at import time")
        elif _under(name, "edgepose.train") and p.name != "torch_runner.py":
            bad.append(where + " (only the torch runner may reach into train)")
    assert not bad, "\n".join(bad)


def test_test_data_makers_live_in_tests_not_in_the_shipped_packages():
    # test bundles and bags are made by tests/synthetic_bundles.py and tests/ros_image_bags.py
    shipped = [p.relative_to(REPO) for root in ("edgepose", "train", "export", "runtime")
               for p in (REPO / root).rglob("testing.py")]
    assert not shipped, shipped
    assert (REPO / "tests" / "synthetic_bundles.py").is_file() and (REPO / "tests" / "ros_image_bags.py").is_file()


#: own-module imports allowed inside functions: torch-free entry points and optional heavy stages
MAX_LAZY_OWN_IMPORTS = 20


def _has_reason(lines, line: int) -> bool:
    """A comment on the import's line, or on the comment line just above its group of imports."""
    if "#" in lines[line - 1]:
        return True
    i = line - 2
    while i >= 0 and lines[i].strip().startswith(("from ", "import ")):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


def test_own_modules_are_imported_at_module_level_but_for_a_few_with_a_reason():
    # an import of our own code inside a function hides the graph from a reader: allowed only
    # where importing the module must stay cheap (a CLI entry point without torch, the
    # engines-from-a-bundle path on a Jetson, a lazy package attribute), each saying why
    lazy = [(p, line, name) for root, dotted in ROOTS for p, line, name, at_import in imports(root, dotted)
            if not at_import and _under(name, "edgepose")]
    where = [f"{p.relative_to(REPO)}:{line} imports {name}" for p, line, name in lazy]
    assert len(lazy) <= MAX_LAZY_OWN_IMPORTS, f"{len(lazy)} own-module imports inside functions:\n" + "\n".join(where)
    silent = [w for (p, line, _), w in zip(lazy, where) if not _has_reason(p.read_text().splitlines(), line)]
    assert not silent, "say why each import inside a function is lazy (a comment on it or above it):\n" + \
        "\n".join(silent)


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


# --------------------------------------------------------------------------- the own-module graph
ROOTS = (("edgepose", "edgepose"), ("train", "edgepose.train"), ("export", "edgepose.export"),
         ("runtime", "edgepose.runtime"))
#: the CLI entry points: the only modules that may import the ``edgepose.cli`` package
CLI_MODULES = {"edgepose.train.cli", "edgepose.export.cli", "edgepose.runtime.cli", "edgepose.runtime.bench.cli",
               "edgepose.runtime.ros.node", "edgepose.__main__"}


def _module_name(path: Path, root: str, dotted: str) -> str:
    parts = path.relative_to(REPO / root).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join((dotted,) + parts)


def own_import_graph():
    """``{module: {(imported own module, file, line, at import time?)}}`` over the four packages,
    lazy imports included; ``from pkg import name`` counts as importing ``pkg.name`` where that is
    a module of ours."""
    files = {}
    for root, dotted in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            if root == "edgepose" and any(path.is_relative_to(REPO / r) for r, _ in ROOTS[1:]):
                continue
            files[_module_name(path, root, dotted)] = (path, root, dotted)
    graph = {m: set() for m in files}
    for mod, (path, root, dotted) in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node.module or "", node.level, path, root, dotted)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                if t in files and t != mod:
                    graph[mod].add((t, path, node.lineno))
    return graph


def _cycles(graph) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w, _, _ in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_scanner_resolves_relative_and_submodule_imports():
    g = {m: {t for t, _, _ in e} for m, e in own_import_graph().items()}
    assert "edgepose.errors" in g["edgepose.bundle"]
    assert "edgepose.runtime.ros.bag_sink" in g["edgepose.runtime.endpoints"]
    assert "edgepose.export.tensorrt.plan" in g["edgepose.export.tensorrt.builder"]
    assert _cycles({"a": {("b", None, 1)}, "b": {("a", None, 2)}, "c": set()}) == [["a", "b"]]


def test_no_import_cycles_among_our_modules_lazy_imports_included():
    # a cycle closed by an import inside a function still ties the two modules together: a
    # reader cannot understand either alone, and moving the import up breaks the import
    graph = own_import_graph()
    # a package's __init__ re-exports its modules; a module importing its own package root is
    # the only allowed way back, so edges into a package __init__ from inside it are left out
    inside = {m: {(t, p, n) for t, p, n in e if not m.startswith(t + ".")} for m, e in graph.items()}
    found = _cycles(inside)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_library_code_never_imports_the_cli_package():
    bad = [f"{p.relative_to(REPO)}:{n} imports {t}" for m, edges in own_import_graph().items()
           for t, p, n in edges if _under(t, "edgepose.cli") and not _under(m, "edgepose.cli") and m not in CLI_MODULES]
    assert not bad, "only CLI entry points may import edgepose.cli:\n" + "\n".join(bad)
