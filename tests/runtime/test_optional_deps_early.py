"""``edgepose-run`` checks an output's or a source's optional package when it opens it: where
the package is missing the run stops before any frame, with the install hint and exit 2, and
writes no file.

Oracle: a real ``edgepose-run`` subprocess whose ``sitecustomize.py`` makes the package
unimportable (``sys.modules[name] = None``: ``import name`` raises ``ModuleNotFoundError``, as
where it is not installed, e.g. the Python 3.8 venv); the folder is listed afterwards. Before
the fix, ``--plot`` without matplotlib ran every frame, wrote every pose and exited 2 at the
plot, and an OpenCV source without OpenCV created an empty ``--out`` before it stopped.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from site_harness import run_with_site  # noqa: E402

#: a sitecustomize that makes the packages named in EP_BLOCK (comma-separated) unimportable
BLOCKER = '''\
import os, sys

for _name in os.environ["EP_BLOCK"].split(","):
    sys.modules[_name] = None
'''


def run_without(tmp_path: Path, package: str, argv: list) -> subprocess.CompletedProcess:
    """``edgepose-run ARGV`` in a process where ``package`` cannot be imported."""
    return run_with_site(tmp_path, BLOCKER, "edgepose-run", argv, env={"EP_BLOCK": package})


def assert_stopped_before_any_frame(p: subprocess.CompletedProcess, out_dir: Path, package: str, hint: str) -> None:
    assert p.returncode == 2, f"exit {p.returncode} (2 expected):\n{p.stderr}"
    assert f"needs the Python package '{package}'" in p.stderr and hint in p.stderr, p.stderr
    assert "frames through" not in p.stderr and "Traceback" not in p.stderr, p.stderr  # no summary: no run
    assert sorted(x.name for x in out_dir.iterdir()) == [], "an output was written"


def test_plot_without_matplotlib_stops_before_the_first_frame(tmp_path, bundle, frames):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    p = run_without(tmp_path, "matplotlib", [bundle[0], "--source", frames, "--out", out_dir / "poses.jsonl",
                                             "--csv", out_dir / "poses.csv", "--plot", out_dir / "traj.png"])
    assert_stopped_before_any_frame(p, out_dir, "matplotlib", "pip install matplotlib")
    assert "the trajectory plot" in p.stderr


@pytest.mark.parametrize("source", ["0", "/dev/video7", "videotestsrc ! appsink", "clip.avi"])
def test_opencv_source_without_opencv_stops_before_any_output(tmp_path, bundle, source):
    if source == "clip.avi":  # a real video file (written by OpenCV here, read by none in the run)
        cv2 = pytest.importorskip("cv2")
        source = str(tmp_path / source)
        w = cv2.VideoWriter(source, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
        for i in range(3):
            w.write(__import__("numpy").full((24, 32, 3), 40 * i, "uint8"))
        w.release()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    p = run_without(tmp_path, "cv2", [bundle[0], "--source", source, "--out", out_dir / "poses.jsonl"])
    assert_stopped_before_any_frame(p, out_dir, "cv2", "pip install opencv-python-headless")
