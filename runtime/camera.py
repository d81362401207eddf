"""Which graph takes a frame: the bundle's camera-resolution graph of the frame's size, where
there is one (the host only copies the frame), else the network-size graph after the
preprocessing rule on the host.

``edgepose-export RUN --camera-size 1920x1080`` lists, per precision, ``camera-onnx`` files
whose input is the camera frame ``uint8 (N, h, w, 3)`` and whose first steps are the rule's
crop and anti-aliased resize (:mod:`edgepose.export.camera_graph`; the entry's ``camera``
holds ``{"size": [w, h], "channels": "rgb" | "bgr"}``). :class:`InputRoutes` opens a twin of
the runner on such a graph the first time a frame of that size arrives, and gives the
pipeline, the estimator and the ROS node one :class:`Route` per frame: which runner, which
buffer pool, which input spec.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .buffers import BufferPool
from .spec import InputSpec

#: the manifest role of a camera-resolution graph
CAMERA_ROLE = "camera-onnx"
Size = Tuple[int, int]


@dataclass(frozen=True)
class CameraGraph:
    """One listed camera graph: ``rel`` path in the bundle, frame ``size = (w, h)``, ``channels``."""

    rel: str
    precision: str
    size: Size
    channels: str


def camera_graphs(view, precision: Optional[str] = None, role: str = CAMERA_ROLE) -> List[CameraGraph]:
    """The camera graphs a :class:`~edgepose.runtime.bundles.BundleView` lists (of ``precision``):
    ONNX files (``camera-onnx``) or, with ``role="camera-engine"``, TensorRT engines. Their
    ``camera`` sections were validated with the manifest (:mod:`edgepose.bundle_files`)."""
    out = []
    for rel, entry in view.listing.with_role(role, precision).items():
        cam = entry.extra["camera"]
        out.append(CameraGraph(rel, str(entry.precision), (int(cam["size"][0]), int(cam["size"][1])),
                               str(cam.get("channels", "rgb"))))
    return out


def camera_spec(network: InputSpec, size: Size) -> InputSpec:
    """The input spec of a camera graph: the network's, at the frame's size."""
    w, h = int(size[0]), int(size[1])
    return InputSpec(network.name, "uint8", "NHWC", (network.shape[0], h, w, 3), network.batch_min,
                     network.batch_max, network.batch_opt)


def camera_file(view, graph: CameraGraph):
    """The verified path of ``graph`` (inside the bundle, size and sha256 as listed)."""
    return view.verified(graph.rel)


def frame_size(image) -> Optional[Size]:
    """``(w, h)`` of a ``uint8 (h, w, 3)`` array, else ``None`` (other frames take the host path)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return int(image.shape[1]), int(image.shape[0])
    return None


@dataclass
class Route:
    """Where one frame goes: ``runner`` (active), its input ``spec``, a ``pool`` of its input
    buffers, and whether the host only copies (``camera``)."""

    runner: object
    spec: InputSpec
    pool: Optional[BufferPool]
    camera: bool

    @property
    def direct(self) -> bool:
        """A camera frame can go to the runner as it is, not even copied: the runner reads
        host arrays in place (ONNX Runtime on the CPU). A runner that copies from pinned
        buffers (``pinned_input``: TensorRT) gets the frame copied into one of the pool's."""
        return self.camera and not getattr(self.runner, "pinned_input", False)


class InputRoutes:
    """The routes of one runner: the runner itself (host preprocessing) and, lazily, one twin
    per camera graph of its precision (``runner.camera_twin(size)``).

    Args:
        runner: an active runner.
        pool_size: buffers per route (0: no pools, e.g. for the estimator's single frames).
        enabled: ``False`` keeps every frame on the host path (``--camera-graph off``).
    """

    def __init__(self, runner, pool_size: int = 0, enabled: bool = True):
        self.runner = runner
        self.pool_size = int(pool_size)
        self.enabled = bool(enabled)
        #: ``{(size, channels)}`` with a camera graph of the runner's precision
        role = getattr(runner, "camera_role", None)
        self.sizes = {(g.size, g.channels) for g in camera_graphs(runner.bundle, runner.precision, role)} \
            if enabled and role else set()
        pool = BufferPool(runner.allocate_input, self.pool_size, 1) if self.pool_size else None
        self.host = Route(runner, runner.input_spec, pool, False)
        self._twins: Dict[Tuple[Size, str], Route] = {}
        #: ``(size, channels)`` of every camera graph opened, in order (kept after :meth:`close`)
        self.opened: List[Tuple[Size, str]] = []
        self._lock = threading.Lock()

    def route(self, image, channels: str = "rgb") -> Route:
        """The route of ``image`` (channel order ``channels``): its camera graph's when the
        bundle has one for its size and channel order, else the host path (which takes RGB)."""
        size = frame_size(image)
        key = (size, channels)
        if size is None or key not in self.sizes:
            return self.host
        with self._lock:
            r = self._twins.get(key)
            if r is None:
                twin = self.runner.camera_twin(size, channels).activate()
                pool = BufferPool(twin.allocate_input, self.pool_size, 1) if self.pool_size else None
                r = self._twins[key] = Route(twin, twin.input_spec, pool, True)
                self.opened.append(key)
            return r

    @property
    def routes(self) -> List[Route]:
        return [self.host] + list(self._twins.values())

    def close(self) -> None:
        """Deactivate the twins (the runner itself belongs to the caller)."""
        with self._lock:
            for r in self._twins.values():
                r.runner.deactivate()
            self._twins.clear()
