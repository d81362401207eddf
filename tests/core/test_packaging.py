"""Layout rules: the package list is whole, core imports stay light, CI runs the README command."""
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"edgepose": "edgepose", "train": "edgepose.train", "export": "edgepose.export", "runtime": "edgepose.runtime"}


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for folder, dotted in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((dotted,) + rel))
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but missing: {sorted(listed - found)}"


def test_import_edgepose_does_not_import_torch():
    code = "import edgepose, edgepose.geometry, edgepose.records, edgepose.bundle, edgepose.preprocess, sys; " \
           "assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make demo" in readme


def test_python_m_edgepose_lists_commands():
    out = subprocess.run([sys.executable, "-m", "edgepose", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("synth", "train", "export", "run", "bench", "demo"):
        assert cmd in out.stdout
