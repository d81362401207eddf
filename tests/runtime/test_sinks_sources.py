"""Sinks (JSON lines, CSV, plot) and sources (video file, dataset split, dispatch)."""
from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest

from edgepose.errors import ConfigError, MissingDependencyError
from edgepose.runtime import (CsvSink, DatasetSource, ImageFolderSource, JsonlSink, PoseResult, TrajectoryPlot,
                              VideoFileSource, open_source)


def _results():
    ok = PoseResult(index=0, capture_time=1.7e9, timestamp=0.0, position=np.array([1.0, 2.0, 3.0]),
                    rotation=np.array([1.0, 0, 0, 0]), sigma_position_m=0.25, sigma_rotation_deg=2.0,
                    timings_ms={"infer": 1.0, "latency": 3.0}, source="a.png",
                    truth_position=np.array([1.0, 2.0, 3.5]), truth_rotation=np.array([1.0, 0, 0, 0]))
    bad = PoseResult(index=1, capture_time=1.7e9, ok=False, error="cannot decode b.png", source="b.png")
    return [ok, bad]


def test_jsonl_and_csv_one_record_per_frame(tmp_path):
    with JsonlSink(tmp_path / "p.jsonl") as j, CsvSink(tmp_path / "p.csv") as c:
        for r in _results():
            j.write(r)
            c.write(r)
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [x["ok"] for x in lines] == [True, False]
    assert lines[0]["position_m"] == [1.0, 2.0, 3.0] and lines[0]["rotation_wxyz"] == [1.0, 0.0, 0.0, 0.0]
    assert lines[0]["sigma_position_m"] == 0.25 and lines[0]["sigma_rotation_deg"] == 2.0
    assert lines[0]["error_position_m"] == pytest.approx(0.5)
    assert lines[1]["error"] == "cannot decode b.png" and lines[1]["position_m"] is None
    with open(tmp_path / "p.csv", newline="") as fh:  # read back by Python's csv module, column by name
        table = list(csv.DictReader(fh))
    # the file's interface, pinned as text: spreadsheets and scripts find these names in this order
    assert list(table[0]) == ["index", "ok", "error", "source", "capture_time", "timestamp", "x_m", "y_m", "z_m",
                              "qw", "qx", "qy", "qz", "sigma_position_m", "sigma_rotation_deg", "filter", "latency_ms"]
    ok, bad = table
    # the values _results() put in, each under its own name
    assert [float(ok[k]) for k in ("x_m", "y_m", "z_m", "qw", "qx", "qy", "qz")] == [1.0, 2.0, 3.0, 1.0, 0.0, 0.0, 0.0]
    assert (ok["z_m"], ok["ok"], ok["source"], ok["latency_ms"]) == ("3.000000", "1", "a.png", "3.000000")
    assert (float(ok["sigma_position_m"]), float(ok["sigma_rotation_deg"])) == (0.25, 2.0)
    assert (bad["ok"], bad["error"], bad["source"], bad["x_m"], bad["qw"]) == ("0", "cannot decode b.png", "b.png", "", "")


def test_trajectory_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "traj.png"
    with TrajectoryPlot(path) as p:
        for i in range(10):
            r = _results()[0]
            r.position = np.array([np.cos(i / 3), np.sin(i / 3), 0.1 * i])
            p.write(r)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_video_file_source_yields_rgb_frames_with_media_timestamps(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    for i in range(5):
        bgr = np.zeros((24, 32, 3), np.uint8)
        bgr[..., 2] = 200  # red in BGR
        w.write(bgr)
    w.release()
    src = open_source(path)
    assert isinstance(src, VideoFileSource) and not src.live
    frames = list(src)
    assert len(frames) == 5 and frames[0].image.shape == (24, 32, 3)
    assert frames[0].image[..., 0].mean() > 150 and frames[0].image[..., 2].mean() < 50  # RGB order
    assert frames[2].timestamp == pytest.approx(0.2, abs=0.01)


def test_dataset_source_carries_ground_truth(dino_dir):
    src = open_source(f"dataset:{dino_dir}", split="test")
    assert isinstance(src, DatasetSource) and len(src) > 0
    first = next(iter(src))
    assert first.image is not None and first.truth_position.shape == (3,)
    assert abs(np.linalg.norm(first.truth_rotation) - 1) < 1e-9


def test_open_source_dispatch_and_errors(tmp_path, frames):
    assert isinstance(open_source(frames), ImageFolderSource)
    if importlib.util.find_spec("cv2") is None:  # an OpenCV source requires OpenCV when it is made
        for spec, name in (("0", "camera:0"), ("videotestsrc ! appsink", "gstreamer:videotestsrc")):
            with pytest.raises(MissingDependencyError, match=f"reading {name} needs the Python package 'cv2'"):
                open_source(spec)
    else:
        src = open_source("0")
        assert src.live and src.name == "camera:0"
        assert open_source("videotestsrc ! appsink").live
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no images"):
        open_source(tmp_path / "empty")
    with pytest.raises(ConfigError, match="cannot tell what --source"):
        open_source(tmp_path / "nothing.xyz")
    names = [p.name for p in ImageFolderSource(frames).files]
    assert names[:3] == ["frame0.png", "frame1.png", "frame2.png"] and names[-1] == "frame11.png"
