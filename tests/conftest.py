"""Shared fixtures. Tests that read ``../shared`` skip with a reason when it is absent."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# One OpenMP/BLAS thread for torch and numpy in the test process and in every CLI it starts
# (unless the caller set it): the tests' tensors are tiny, and on a shared 2-core machine a
# second thread waits for a descheduled partner at every parallel region. Measured at load ~3:
# tests/train/test_rotation_seam.py + test_rotation_head.py 51 s with torch's default 2 threads,
# 35 s with OMP_WAIT_POLICY=PASSIVE, 10 s with one thread. Commands that set their own count
# (edgepose-train's --threads and its cores/processes default) still do.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads_as_the_environment_says():
    """After each test, the test process's torch thread count back to ``OMP_NUM_THREADS``:
    a torch runner opened with ``threads=N`` and tests that pin a count themselves set it for
    the rest of the session (training now gives its count back itself)."""
    yield
    torch = sys.modules.get("torch")
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    if torch is not None and wanted.isdigit() and int(wanted) > 0 and torch.get_num_threads() != int(wanted):
        torch.set_num_threads(int(wanted))


REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPOSE_SHARED", REPO.parent / "shared"))
DINO = SHARED / "data" / "middlebury_dino" / "dino"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def dino_dir() -> Path:
    """The real Middlebury dino set, read in place (never copied into the repository)."""
    if not (DINO / "dino_par.txt").is_file():
        pytest.skip(f"the Middlebury dino set is not at {DINO} (a user's clone has no ../shared)")
    return DINO


@pytest.fixture(scope="session")
def cuda_gpu():
    """torch, when it sees a CUDA GPU; otherwise the test is skipped with the reason.

    Tests that use it are marked ``gpu`` and run by ``make gpu-check`` (benchmarks/gpu_check.py)."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here (torch.cuda.is_available() is False); `make gpu-check` runs this "
                    "on a machine with an NVIDIA GPU")
    return torch


@pytest.fixture(scope="session")
def gpu_record():
    """``record(test, **figures)``: one JSON line per call into $EDGEPOSE_GPU_RECORD (when set), so
    ``make gpu-check`` can put the measured figures in its results file."""
    import json

    path = os.environ.get("EDGEPOSE_GPU_RECORD")

    def record(test: str, **figures):
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps({"test": test, **figures}) + "\n")
    return record
