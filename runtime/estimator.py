"""The Python entry point: :class:`PoseEstimator`.

.. code-block:: python

    from edgepose.runtime import PoseEstimator

    with PoseEstimator.from_bundle("bundle/") as est:    # backend auto, precision fp16
        r = est.predict("frame.png")                 # PoseResult
        for r in est.stream("frames/", filter="kalman"):  # a folder: every frame, none dropped
            print(r.index, r.position, r.sigma_position_m)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from edgepose.bundle_files import CAMERA_CHANNELS
from edgepose.errors import EdgePoseError
from edgepose.preprocess import load_image

from .camera import InputRoutes
from .driver import StreamConfig, open_pipeline
from .pipeline import make_result
from .results import PoseResult
from .runners import open_runner
from .endpoints import open_source
from .sources import Frame, Source
from .spec import write_frame


class PoseEstimator:
    """An active runner plus preprocessing, for single images and streams."""

    def __init__(self, runner, camera_graphs: bool = True):
        self.runner = runner.activate()
        spec = runner.input_spec
        self.camera_graphs = camera_graphs
        self._routes = InputRoutes(self.runner, 0, enabled=camera_graphs)
        self._bufs = {}  # input shape -> a one-frame buffer of that route
        self._scratch = np.empty((spec.size[1], spec.size[0], 3), np.uint8)
        self._count = 0

    @classmethod
    def from_bundle(cls, path: Union[str, Path], backend: str = "auto", precision: Optional[str] = None,
                    strict: bool = False, **options) -> "PoseEstimator":
        """Open ``path`` on ``backend`` at ``precision`` (default: the backend's, fp16 for
        TensorRT and ONNX Runtime, see ``open_runner``). Without a file for that precision the
        nearest one is used with a printed warning, or :class:`~edgepose.errors.BundleError`
        is raised when ``strict``. ``options`` go to the runner (see ``open_runner``)."""
        return cls(open_runner(path, backend, precision, strict=strict, **options))

    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def precision(self) -> str:
        return self.runner.precision

    @property
    def routes(self) -> InputRoutes:
        """Which graph took which frames: the host path and the camera graphs opened so far."""
        return self._routes

    def predict(self, image: Union[np.ndarray, str, Path], channels: str = "rgb") -> PoseResult:
        """One image (``uint8 (H, W, 3)`` RGB of any size, a PIL image or a file path) ->
        :class:`PoseResult`. An unreadable file gives ``ok=False`` with the reason. A frame
        whose size has a camera-resolution graph in the bundle is only copied into that
        graph's input (the preprocessing rule runs inside it). ``channels="bgr"`` says the array
        is BGR (OpenCV): it goes to a BGR camera graph of its size as it is, else it is turned to
        RGB on the host."""
        wall, t0 = time.time(), time.perf_counter()
        idx, self._count = self._count, self._count + 1
        source = str(image) if isinstance(image, (str, Path)) else "array"
        frame = Frame(idx, wall, t0, 0.0, source=source)
        timings = {}
        try:
            if isinstance(image, (str, Path)):
                image = load_image(image)
            frame.read_ms = (time.perf_counter() - t0) * 1e3
            if channels not in CAMERA_CHANNELS:
                raise EdgePoseError(f"channels={channels!r}: expected 'rgb' or 'bgr'")
            route = self._routes.route(image, channels)
            if channels == "bgr" and not route.camera and isinstance(image, np.ndarray) and image.ndim == 3:
                image = np.ascontiguousarray(image[..., ::-1])
            buf = self._bufs.get(route.spec.shape)
            if buf is None:
                buf = self._bufs[route.spec.shape] = route.runner.allocate_input(1)
            t1 = time.perf_counter()
            write_frame(image, route.spec, buf[0], self._scratch)
            t2 = time.perf_counter()
            poses = route.runner.infer(buf)
            timings = {"preprocess": (t2 - t1) * 1e3, "infer": (time.perf_counter() - t2) * 1e3}
            result = make_result(frame, poses, None, timings)
        except EdgePoseError as exc:
            result = make_result(frame, None, exc.message, timings)
        result.timings_ms["latency"] = (time.perf_counter() - t0) * 1e3
        return result

    def stream(self, source: Union[str, Path, Source], policy: str = "auto", filter: Optional[str] = None,
               max_frames: Optional[int] = None, **source_options) -> Iterator[PoseResult]:
        """Results of ``source`` (a :class:`Source` or a ``--source`` string) through the
        threaded pipeline, in order. ``policy``: ``"auto"`` (default: ``latest`` for a live
        camera, ``every`` for a folder, video or dataset: recorded data is never dropped),
        ``"latest"`` (drop stale frames) or ``"every"`` (lossless). ``filter``: ``None`` or
        ``"kalman"``. Leaving the loop early
        (break, Ctrl-C, an error) stops and joins every pipeline thread."""
        src = open_source(source, **source_options)
        config = StreamConfig(policy=policy, filter=filter, max_frames=max_frames, camera_graphs=self.camera_graphs)
        self.last_pipeline = open_pipeline(self.runner, src, config)
        return iter(self.last_pipeline)

    def close(self) -> None:
        self._routes.close()
        self.runner.deactivate()

    def __enter__(self) -> "PoseEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
