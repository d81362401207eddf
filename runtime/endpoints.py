"""``--source`` and ``--out``/``--csv``/``--plot`` strings to sources and sinks.

The dispatch sits above both the plain sources/sinks and the bag ones in :mod:`.ros`, so
neither side imports the other (``ros.bag_source`` builds on :mod:`.sources`, ``ros.bag_sink``
on :mod:`.sinks`). Importing the bag modules costs nothing: ``rosbags`` is imported when a bag
is opened.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

from edgepose.errors import ConfigError
from edgepose.image_decode import require_regular_file

from .ros import is_bag_path
from .ros.bag_sink import BagSink
from .ros.bag_source import BagSource
from .sinks import CsvSink, JsonlSink, Sink, TrajectoryPlot
from .sources import (IMAGE_SUFFIXES, VIDEO_SUFFIXES, CameraSource, DatasetSource, GStreamerSource,
                      ImageFolderSource, Source, VideoFileSource)

def check_bag_file(spec: Union[str, Path]) -> None:
    """A bag named as one file (``.mcap``, ``.db3``, ``.bag``) must be a regular file: a FIFO
    blocks the reader forever (SQLite even through SIGTERM), a device never ends."""
    s = str(spec)
    if is_bag_path(s) and not Path(s).is_dir():
        require_regular_file(s, "bag file")


def open_source(spec: Union[str, Path, Source], fps: float = 30.0, split: str = "test", **options) -> Source:
    """A :class:`Source` from a ``--source`` string (see the module table)."""
    if isinstance(spec, Source):
        return spec
    s = str(spec)
    if is_bag_path(s):  # .mcap, .db3, .bag, rosbag2 folder
        check_bag_file(s)
        return BagSource(s, fps=fps, **options)
    if s.startswith("dataset:"):
        return DatasetSource(s[len("dataset:"):], split=split, fps=fps, **options)
    if "!" in s or s.startswith("gst:"):
        return GStreamerSource(s[4:] if s.startswith("gst:") else s)
    if s.isdigit() or s.startswith("/dev/video"):
        return CameraSource(s, **options)
    p = Path(s)
    if p.is_dir():
        return ImageFolderSource(p, fps=fps, **options)
    if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFileSource(p)
    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        raise ConfigError(f"--source {s} is a single image", hint="put it in a folder, or use PoseEstimator.predict")
    raise ConfigError(f"cannot tell what --source {s!r} is: not a folder, a video file ({', '.join(VIDEO_SUFFIXES)}), "
                      "a camera index or /dev/videoN, a GStreamer pipeline (with '!'), or dataset:ROOT",
                      hint="see edgepose-run --help, section SOURCES")


def open_sinks(jsonl: Optional[str] = None, csv_path: Optional[str] = None, plot: Optional[str] = None,
               bag: Optional[dict] = None, **plot_options) -> List[Sink]:
    """The sinks of ``--out`` (JSON lines; a bag when ``bag`` holds the bag sink's options,
    see ``edgepose.runtime.ros.bag_sink``), ``--csv`` and ``--plot``. The plot is opened first:
    without matplotlib it fails before any file is created."""
    plot_sink = TrajectoryPlot(plot, **plot_options) if plot else None
    out: List[Sink] = []
    if jsonl and bag is not None:
        out.append(BagSink(jsonl, **bag))
    elif jsonl:
        out.append(JsonlSink(jsonl))
    if csv_path:
        out.append(CsvSink(csv_path))
    if plot_sink is not None:
        out.append(plot_sink)
    return out
