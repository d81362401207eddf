"""Layout rules: the package list is whole, core imports stay light, CI runs the README command."""
import os
import shutil
import subprocess
import sys
import time
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


def _readme_commands():
    """The two commands of README.md's first code block (``make demo``, ``make test``)."""
    text = (REPO / "README.md").read_text()
    block = [ln.strip() for ln in text.split("\n") if ln.startswith("    make ")]
    return [ln.split("#")[0].split() for ln in block]


def test_ci_runs_the_readme_test_command(tmp_path):
    commands = _readme_commands()
    assert ["make", "test"] in commands and ["make", "demo"] in commands
    # run the real .ci/run with `make` replaced by a recorder: it must run exactly `make test`
    # from the repository root and pass its exit status on
    log = tmp_path / "make.log"
    fake = tmp_path / "make"
    fake.write_text(f'#!/bin/sh\necho "$PWD $*" >> {log}\nexit 7\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)}
    p = subprocess.run(["bash", str(REPO / ".ci" / "run")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert log.read_text().split("\n")[:-1] == [f"{REPO} test"]
    assert p.returncode == 7, "CI must fail when the test command fails"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_runs_pytest_and_fails_when_nothing_is_collected(tmp_path):
    # the real Makefile with python replaced by a script that plays pytest exiting 5 (no tests)
    py = tmp_path / "venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "py.log"}\nexit 5\n')
    py.chmod(0o755)
    (tmp_path / "venv" / ".edgepose-installed").touch()
    stamp = tmp_path / "venv" / ".edgepose-installed"
    os.utime(stamp, (time.time() + 3600, time.time() + 3600))  # newer than pyproject.toml: no install
    p = subprocess.run(["make", "-s", "-C", str(REPO), "test", f"VENV={tmp_path / 'venv'}"],
                       capture_output=True, text=True, timeout=60)
    assert (tmp_path / "py.log").read_text().split() == ["-m", "pytest", "-q"]
    assert p.returncode != 0 and "collected no tests" in p.stdout


def test_python_m_edgepose_lists_commands():
    out = subprocess.run([sys.executable, "-m", "edgepose", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("synth", "train", "export", "run", "bench", "demo"):
        assert cmd in out.stdout


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_every_script_entry_point_is_a_cli_module_that_imports():
    import importlib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "edgepose-demo" in scripts
    for name, target in scripts.items():
        module, _, func = target.partition(":")
        # command lines live in edgepose.cli or in a stage's cli module (README, "Layout")
        assert module.startswith("edgepose.cli.") or module.endswith(".cli") or module.endswith(".node"), target
        try:
            mod = importlib.import_module(module)
        except ImportError:  # torch or onnx absent on this machine: the CLI's own tests say so
            continue
        assert callable(getattr(mod, func)), target
