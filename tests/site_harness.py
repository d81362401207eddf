"""Run one of the installed commands as a real subprocess with a ``sitecustomize.py`` of the
test's own first on ``PYTHONPATH`` (stdlib only): the way a test makes a package unimportable
or a signal land in a chosen function of the real command, without a stand-in for the command.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional


def command(name: str) -> List[str]:
    """``[edgepose-NAME]`` beside this interpreter, else ``python -m edgepose NAME``."""
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose", name.split("-", 1)[1]]


def run_with_site(folder: Path, code: str, name: str, argv: list, env: Optional[Dict[str, str]] = None,
                  timeout: float = 120) -> subprocess.CompletedProcess:
    """``NAME ARGV`` with ``code`` as the ``sitecustomize.py`` written to ``folder/harness``
    (created), ``env`` added to the environment; stdout and stderr captured as text."""
    harness = folder / "harness"
    harness.mkdir()
    (harness / "sitecustomize.py").write_text(code)
    path = os.pathsep.join([str(harness)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return subprocess.run(command(name) + [str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=path, **(env or {})))
