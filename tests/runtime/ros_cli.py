"""`edgepose-run` as a subprocess, for the ROS tests (the installed script, else ``python -m edgepose run``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def edgepose_run_command():
    exe = Path(sys.executable).with_name("edgepose-run")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose", "run"]


def edgepose_run(*args, ok=(0,)):
    """Run it with ``args`` (str() of each); assert the exit code is in ``ok``; the CompletedProcess."""
    proc = subprocess.run(edgepose_run_command() + [str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert proc.returncode in ok, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc
