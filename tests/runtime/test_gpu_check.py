"""``make gpu-check`` (benchmarks/gpu_check.py) on the CPU: it refuses at once without a GPU, and
its verdict cannot pass a run that proved nothing (issue 19). The all-skipped case is a real
pytest run of the GPU tests on this machine, where every one of them skips."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_a_gpu_it_refuses_at_once():
    g = _gpu_check()
    if g.find_gpu()[0] is not None:
        pytest.skip("this machine has a GPU: make gpu-check runs here")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "needs an NVIDIA GPU" in r.stderr


def test_an_all_skipped_run_is_a_failure_naming_what_did_not_run():
    g = _gpu_check()
    r = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rA", "-p", "no:cacheprovider",
                        "tests/runtime/test_gpu_torch.py", "tests/runtime/test_gpu_cuda.py"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    text = r.stdout + r.stderr
    if "PASSED" in text:
        pytest.skip("the GPU tests ran here (a GPU machine)")
    assert r.returncode == 0 and "skipped" in text  # pytest itself calls this run a success
    ok, problems = g.verdict(r.returncode, text)
    assert not ok and "no test passed" in problems[0]
    assert sum("it must pass" in p for p in problems) == len(g.REQUIRED)


def test_the_verdict_needs_every_required_test_to_pass():
    g = _gpu_check()
    passed = "\n".join(f"PASSED {t}" for t in g.REQUIRED)
    assert g.verdict(0, passed + "\n5 passed in 9.1s") == (True, [])
    one_failed = passed.replace(f"PASSED {g.REQUIRED[1]}", f"FAILED {g.REQUIRED[1]} - AssertionError: drift")
    ok, problems = g.verdict(1, one_failed)
    assert not ok and problems == ["pytest exited with status 1",
                                   f"{g.REQUIRED[1]}: FAILED (it must pass: it proves CUDA is used)"]
    assert "time limit" in g.verdict(124, passed)[1][0]


def test_each_test_times_out_before_the_whole_check():
    g = _gpu_check()
    cmd = g.pytest_command(450)
    assert cmd[cmd.index("-o") + 1] == "timeout=150"  # pytest.ini says 600 s: longer than the 450 s limit
