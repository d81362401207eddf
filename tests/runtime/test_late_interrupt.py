"""A Ctrl-C that arrives after ``edgepose-run`` has written its results (while the runner is
released, or while the summary is printed and the sinks are closed) is reported with what was
written, like a Ctrl-C mid-run, never as a stop during start-up.

Oracle: a real ``edgepose-run`` subprocess whose ``sitecustomize.py`` (first on ``PYTHONPATH``)
wraps one function of the end of a run so that it sends SIGINT to its own process and logs that
it did; the signal is thus handled there and nowhere else. The poses file is read back: every
frame is in it, so "no frame was processed" would be false. Before the fix both runs exited
130 with "stopped during start-up: no frame was processed".
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from site_harness import run_with_site  # noqa: E402

#: a sitecustomize that makes ``MODULE.OWNER.NAME`` (OWNER "-" for a module-level function)
#: send SIGINT to this process when it is called, then run as before
HARNESS = '''\
import importlib, os, signal

_module, _owner, _name = os.environ["EP_SIGINT_AT"].split(":")
_mod = importlib.import_module(_module)
_holder = _mod if _owner == "-" else getattr(_mod, _owner)
_real = getattr(_holder, _name)


def _interrupting(*args, **kwargs):
    with open(os.environ["EP_SIGINT_LOG"], "a") as log:
        log.write(os.environ["EP_SIGINT_AT"] + "\\n")
    os.kill(os.getpid(), signal.SIGINT)
    return _real(*args, **kwargs)


setattr(_holder, _name, _interrupting)
'''


def run_interrupted_at(tmp_path: Path, where: str, argv: list) -> subprocess.CompletedProcess:
    """``edgepose-run ARGV`` with a SIGINT sent from inside ``where`` (``module:owner:name``);
    the harness must have fired."""
    log = tmp_path / "harness.log"
    p = run_with_site(tmp_path, HARNESS, "edgepose-run", argv, env={"EP_SIGINT_AT": where, "EP_SIGINT_LOG": str(log)})
    assert log.is_file() and where in log.read_text(), f"the harness never fired at {where}:\n{p.stderr}"
    return p


@pytest.mark.parametrize("where", [
    "edgepose.runtime.cli:-:_summary",  # inside the summary's protected section
    "edgepose.runtime.runners.base:Runner:deactivate",  # the runner's release, after the loop
])
def test_ctrl_c_after_the_results_are_written_reports_them(tmp_path, bundle, frames, where):
    out = tmp_path / "poses.jsonl"
    p = run_interrupted_at(tmp_path, where, [bundle[0], "--source", frames, "--out", out, "--quiet"])
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["index"] for x in lines] == list(range(12)), p.stderr  # every frame written, whole
    assert p.returncode == 130, f"exit {p.returncode} (130 expected):\n{p.stderr}"
    assert "edgepose-run: interrupted (Ctrl-C); the 12 results so far are written" in p.stderr, p.stderr
    assert "start-up" not in p.stderr and "no frame was processed" not in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    if "_summary" in where:  # the section a signal cannot cut: the summary is printed whole first
        assert "12 frames through onnxruntime" in p.stderr and "next:" in p.stderr, p.stderr
