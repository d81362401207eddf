"""Frame sources for the streaming pipeline. Each yields :class:`Frame` objects stamped at
capture; a frame that cannot be read carries ``error`` instead of ``image`` and the stream
goes on.

=====================  ==========================================  ======
spec (``endpoints.open_source``)  source                                      live
=====================  ==========================================  ======
``frames/``             :class:`ImageFolderSource` (sorted images)  no
``clip.mp4``            :class:`VideoFileSource` (OpenCV)           no
``0``, ``/dev/video0``  :class:`CameraSource` (OpenCV / V4L2)       yes
``nvarguscamerasrc !    :class:`GStreamerSource` (Jetson CSI        yes
... ! appsink``         cameras through OpenCV's GStreamer backend)
``dataset:ROOT``        :class:`DatasetSource` (a split with ground no
                        truth, via ``edgepose.datasets``)
``flight.mcap``, bag/   ``edgepose.runtime.ros.bag_source.BagSource`` no
                        (rosbag2 / MCAP / ROS 1, ``topic=``)
=====================  ==========================================  ======

Live sources default to the ``latest`` policy, recorded ones to ``every``. OpenCV
(``cv2``) and ``edgepose.datasets`` are imported lazily; OpenCV when an OpenCV source is made
(not when it is first read), so a missing one stops a run before its runner and outputs open.
"""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from edgepose.datasets import load_dataset
from edgepose.errors import ConfigError, EdgePoseError, require
from edgepose.preprocess import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".h264", ".ts")
CV2_INSTALL = "pip install opencv-python-headless  (on a Jetson use JetPack's OpenCV, built with GStreamer)"


@dataclass
class Frame:
    """One captured frame.

    Attributes:
        index: position in the source (0-based).
        capture_time: wall clock (UNIX seconds) at capture.
        t_capture: ``time.perf_counter()`` at capture (latency is measured from it).
        timestamp: media time (s): video position, dataset timestamp or ``index / fps``.
        image: ``uint8 (H, W, 3)`` RGB, or ``None`` when ``error`` is set.
        error: why the frame could not be read.
        source: file path or device name of this frame.
        read_ms: time spent reading/decoding it.
        truth_position, truth_rotation: ground truth ``(3,)`` m / ``(4,)`` wxyz, if known.
        stamp_ns: the source's own capture stamp in integer nanoseconds (a bag message's
            ``header.stamp``), or ``None`` when the source has none (``capture_time`` is used).
    """

    index: int
    capture_time: float
    t_capture: float
    timestamp: float
    image: Optional[np.ndarray] = None
    error: Optional[str] = None
    source: str = ""
    read_ms: float = 0.0
    truth_position: Optional[np.ndarray] = None
    truth_rotation: Optional[np.ndarray] = None
    stamp_ns: Optional[int] = None


class IncompleteSourceWarning(UserWarning):
    """A recorded source ended before the end it declares (a truncated or damaged video)."""


class Source:
    """Base: iterate for frames; ``live`` says whether frames arrive in real time.

    ``incomplete`` is ``None``, or, once iteration has ended early, why: what the source
    declared and what it delivered (``edgepose-run`` prints it and exits 1).
    """

    live = False
    name = "source"
    incomplete: Optional[str] = None

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        raise TypeError(f"{self.name} has no known length")

    def preload(self) -> None:
        """Import now, in the calling thread, what iterating would import on first use: the
        pipeline calls it before its threads start, since a stage thread must never import
        (:mod:`edgepose.runtime.preload` says why). Pillow's plugins are loaded already."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stamp():
    return time.time(), time.perf_counter()


class ImageFolderSource(Source):
    """The images of a folder in natural order (``frame2.png`` before ``frame10.png``).

    ``fps`` gives the media time ``index / fps``; ``repeat`` loops the folder (soak tests).
    A folder in the 7-Scenes layout (``frame-*.color.png`` beside ``frame-*.depth.png``, as
    ``edgepose-synth`` writes) yields only the colour frames: see :func:`frame_files`.
    """

    def __init__(self, folder: Union[str, Path], fps: float = 30.0, repeat: int = 1):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError(f"image folder not found: {self.folder}")
        self.files, self.skipped = frame_files(self.folder)
        if not self.files:
            raise ConfigError(f"{self.folder} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})",
                              hint="point --source at a folder of frames, a video file or a camera")
        self.fps, self.repeat = float(fps), int(repeat)
        self.name = str(self.folder)

    def __len__(self) -> int:
        return len(self.files) * self.repeat

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        for _ in range(self.repeat):
            for path in self.files:
                wall, t0 = _stamp()
                image, error = None, None
                try:
                    image = load_image(path)
                except EdgePoseError as exc:
                    error = exc.message
                yield Frame(i, wall, t0, i / self.fps, image, error, str(path),
                            (time.perf_counter() - t0) * 1e3)
                i += 1


def frame_files(folder: Path):
    """``(frames, skipped)``: the folder's image files in natural order (``frame2`` before
    ``frame10``), and those left out.

    When any file is named ``*.color.<ext>`` (7-Scenes and ``edgepose-synth`` sequences), only
    those are frames: the ``*.depth.png`` beside them are 16-bit depth maps, not pictures of
    the scene, and every other image there is left out too. Only regular files count.
    """
    key = lambda p: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]  # noqa: E731
    images = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                    key=key)
    colour = [p for p in images if p.stem.lower().endswith(".color")]
    if not colour:
        return images, []
    keep = set(colour)
    return colour, [p for p in images if p not in keep]


class ArraySource(Source):
    """Frames from memory (a list of ``uint8 (H, W, 3)`` arrays): for the Python API and tests.

    ``rate`` (frames/s) paces the source like a camera; ``live`` marks it as one.
    """

    def __init__(self, images: Sequence[np.ndarray], fps: float = 30.0, rate: Optional[float] = None,
                 live: bool = False, repeat: int = 1, name: str = "arrays"):
        self.images, self.fps, self.rate = list(images), float(fps), rate
        self.live, self.repeat, self.name = live, int(repeat), name

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def __iter__(self) -> Iterator[Frame]:
        start = time.perf_counter()
        for i in range(len(self)):
            if self.rate:
                delay = start + i / self.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            wall, t0 = _stamp()
            image = self.images[i % len(self.images)]
            yield Frame(i, wall, t0, i / self.fps, image, None, f"{self.name}[{i % len(self.images)}]")


class _OpenCVSource(Source):
    """Common part of the OpenCV sources: BGR frames converted to RGB. OpenCV is required when
    the source is made (:class:`~edgepose.errors.MissingDependencyError` without it), so a run
    without it stops before it opens a runner or an output."""

    api_pref = None
    cv2 = None  #: the OpenCV module, once imported

    def __init__(self, target: Union[int, str], name: str):
        self.target, self.name = target, name
        self.preload()

    def preload(self) -> None:
        if self.cv2 is None:
            self.cv2 = require("cv2", f"reading {self.name}", CV2_INSTALL)

    def _open(self, target):
        self.preload()  # a no-op when the pipeline preloaded (require() on Python 3.8 takes the import lock)
        cv2 = self.cv2
        cap = cv2.VideoCapture(target) if self.api_pref is None else cv2.VideoCapture(target, getattr(cv2, self.api_pref))
        if not cap.isOpened():
            raise EdgePoseError(f"OpenCV could not open {self.name}", hint=self.open_hint)
        return cap

    open_hint = "check the path or device"
    max_bad_reads = 1

    def _ended(self, read: int) -> None:
        """Called when reads stop after ``read`` frames: a recorded source checks its length."""

    def __iter__(self) -> Iterator[Frame]:
        cap = self._open(self.target)
        self.cap, self.incomplete = cap, None
        cv2, i, bad = self.cv2, 0, 0
        try:
            while True:
                wall, t0 = _stamp()
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    bad += 1
                    if bad >= self.max_bad_reads:
                        self._ended(i)
                        return
                    continue
                bad = 0
                ts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1e3 if not self.live else t0
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
                yield Frame(i, wall, t0, ts, rgb, None, f"{self.name}#{i}", (time.perf_counter() - t0) * 1e3)
                i += 1
        finally:
            cap.release()


class VideoFileSource(_OpenCVSource):
    """Frames of a video file, decoded by OpenCV; timestamps from the container.

    The stream ends at the first frame that does not decode; when fewer frames were decoded
    than the container declares (``CAP_PROP_FRAME_COUNT``: the header's count in MP4/AVI, an
    estimate from duration x rate in some other containers), or none at all, the source is
    :attr:`~Source.incomplete` and says so in an :class:`IncompleteSourceWarning`.
    """

    open_hint = "the file is missing, corrupt, or its codec is not in this OpenCV build"

    def __init__(self, path: Union[str, Path]):
        if not Path(path).is_file():
            raise ConfigError(f"video file not found: {path}")
        self.declared: Optional[int] = None  #: the frame count the container declares (once opened)
        super().__init__(str(path), str(path))

    def _open(self, target):
        cap = super()._open(target)
        n = cap.get(self.cv2.CAP_PROP_FRAME_COUNT)
        self.declared = int(n) if n == n and 0 < n < 2**53 else None  # NaN, 0 and -1: unknown
        return cap

    def _ended(self, read: int) -> None:
        """A video that decodes no frame, or fewer than its container declares, is incomplete:
        :attr:`incomplete` says so and an :class:`IncompleteSourceWarning` is issued."""
        if self.declared is not None and read < self.declared:
            why = (f"{self.name}: the container declares {self.declared} frames but only {read} could be "
                   f"decoded ({self.declared - read} missing): the file is truncated or damaged")
        elif read == 0:
            why = f"{self.name}: no frame could be decoded (an empty, truncated or damaged video)"
        else:
            return
        self.incomplete = why
        warnings.warn(why, IncompleteSourceWarning, stacklevel=2)


class CameraSource(_OpenCVSource):
    """A camera by index (``0``) or V4L2 device (``/dev/video0``); live."""

    live = True
    max_bad_reads = 30
    open_hint = "is the camera connected and free? list devices with: v4l2-ctl --list-devices"

    def __init__(self, device: Union[int, str], width: Optional[int] = None, height: Optional[int] = None):
        self.width, self.height = width, height
        super().__init__(int(device) if str(device).isdigit() else str(device), f"camera:{device}")

    def _open(self, target):
        cap = super()._open(target)
        if self.width:
            cap.set(self.cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(self.cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        return cap


class GStreamerSource(_OpenCVSource):
    """A GStreamer pipeline string ending in ``appsink`` (Jetson CSI: ``nvarguscamerasrc ! ...``)."""

    live = True
    max_bad_reads = 30
    api_pref = "CAP_GSTREAMER"
    open_hint = ("OpenCV needs GStreamer support (cv2.getBuildInformation() shows 'GStreamer: YES'; "
                 "JetPack's OpenCV has it) and the pipeline must end in 'appsink'")

    def __init__(self, pipeline: str):
        super().__init__(pipeline, "gstreamer:" + pipeline.split("!")[0].strip())


class DatasetSource(Source):
    """A split of a dataset folder read by ``edgepose.datasets.load_dataset``, with ground truth."""

    def __init__(self, root: Union[str, Path], split: str = "test", format: Optional[str] = None,
                 split_policy: Optional[str] = None, fps: float = 30.0):
        self.dataset = load_dataset(root, format=format, split_policy=split_policy, check_images=False)
        self.frames = self.dataset.split(split)
        self.fps = float(fps)
        self.name = f"dataset:{root}[{split}]"

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Frame]:
        for i, rec in enumerate(self.frames):
            wall, t0 = _stamp()
            image, error = None, None
            try:
                image = load_image(rec.image)
            except EdgePoseError as exc:
                error = exc.message
            ts = rec.timestamp if rec.timestamp is not None else i / self.fps
            yield Frame(i, wall, t0, float(ts), image, error, str(rec.image), (time.perf_counter() - t0) * 1e3,
                        np.asarray(rec.position, np.float64), np.asarray(rec.rotation, np.float64))
