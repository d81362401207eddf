"""The one runner interface, in the manner of NVIDIA Polygraphy's runners.

.. code-block:: python

    with open_runner("bundle/", backend="onnxruntime", precision="fp32") as r:
        poses = r.infer(batch)          # batch: r.input_spec dtype/layout/shape
        r.last_timing                   # {"compute": ms, "total": ms, ...}

A runner is created cheaply; :meth:`Runner.activate` (called by ``with``) loads the model,
:meth:`Runner.deactivate` frees it. :meth:`Runner.infer` checks the batch against the
manifest's input spec (expected vs received in the message), runs the backend and returns a
:class:`~edgepose.runtime.results.PoseBatch` in float64 world units.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from edgepose.bundle import PRECISIONS, check_precision
from edgepose.errors import ConfigError, EdgePoseError

from ..bundles import BundleView, open_bundle
from ..camera import camera_graphs, camera_spec
from ..results import PoseBatch
from ..spec import InputSpec, allocate_batch

OUTPUTS = ("position", "rotation", "sigma")
OUTPUT_WIDTH = {"position": 3, "rotation": 4, "sigma": 2}
#: the precision asked when none is given (CLI, PoseEstimator, open_runner): what a Jetson runs
DEFAULT_PRECISION = "fp16"
#: settings a command line offers for every backend; each runner maps those it honours
#: to its own option name (:attr:`Runner.settings`)
SETTINGS = {"threads": "intra-op CPU threads (0 = the library's default)",
            "cuda_graph": "replay the inference as a CUDA graph"}


class Runner:
    """Base class. A subclass declares what it is (the class attributes below, read by the
    factory, ``edgepose-run --help`` and ``edgepose-bench``) and implements ``_activate``,
    ``_deactivate`` and ``_infer(batch) -> {"position", "rotation", "sigma"}``, setting
    ``self._timing`` entries. Its ``__init__`` takes its options as keyword arguments and
    passes nothing else on: an option no runner takes is an error, never silently dropped.
    """

    #: the name users type (``--backend``)
    backend = "base"
    #: one line for ``--help`` and the bench
    description = ""
    #: precisions it can serve, in report order
    precisions: Tuple[str, ...] = PRECISIONS
    #: precision used when none is asked
    default_precision = DEFAULT_PRECISION
    #: the backend whose fp32 results are this one's drift reference (``None``: itself)
    family: Optional[str] = None
    #: Python packages it needs (checked without importing them)
    requires: Tuple[str, ...] = ()
    #: the role of the bundle file it runs (``onnx``, ``engine``, ``checkpoint``)
    role = "onnx"
    #: option name -> what it does; exactly the keyword arguments its ``__init__`` takes
    options: Dict[str, str] = {}
    #: generic setting (:data:`SETTINGS`) -> this runner's option name
    settings: Dict[str, str] = {}
    #: precision -> a note for bench rows of that precision
    notes: Dict[str, str] = {}
    #: the manifest role of the camera-resolution graphs it can run (``None``: it cannot)
    camera_role: Optional[str] = None

    def __init__(self, bundle: Union[str, BundleView], precision: Optional[str] = None, strict: bool = False,
                 **unknown):
        if unknown:
            raise ConfigError(f"the {self.backend} backend has no option(s) {sorted(unknown)}; it takes "
                              f"{sorted(self.options) or 'none'}",
                              hint="; ".join(f"{k}: {v}" for k, v in self.options.items()) or None)
        self.bundle = open_bundle(bundle)
        self.precision = check_precision(precision or self.default_precision)
        self.strict = strict
        self.is_active = False
        self.last_timing: Dict[str, float] = {}
        self._timing: Dict[str, float] = {}
        #: the camera frame size ``(w, h)`` when this runner runs a camera-resolution graph
        self.camera: Optional[Tuple[int, int]] = None
        self._camera_spec: Optional[InputSpec] = None

    # -- Polygraphy-style life cycle ------------------------------------------------
    @property
    def name(self) -> str:
        """``"<backend>:<detail>"``, e.g. ``"onnxruntime:CPUExecutionProvider"``."""
        return self.backend

    @property
    def input_spec(self) -> InputSpec:
        """What :meth:`infer` takes: the network's input, or the camera frame for a camera twin."""
        return self._camera_spec or self.bundle.input_spec

    def camera_twin(self, size: Tuple[int, int], channels: str = "rgb") -> "Runner":
        """An inactive runner of the same backend, precision and options on the bundle's
        camera-resolution graph for ``channels`` frames of ``size = (w, h)`` (see :mod:`..camera`)."""
        graphs = [] if self.camera_role is None else [
            g for g in camera_graphs(self.bundle, self.precision, self.camera_role)
            if g.size == tuple(size) and g.channels == channels]
        if not graphs:
            raise EdgePoseError(f"{self.name}: no {self.precision} camera graph for {size[0]}x{size[1]} "
                                f"{channels} frames in {self.bundle.path}",
                                hint=f"add one: edgepose-export {self.bundle.path} --camera-size {size[0]}x{size[1]} "
                                     f"--camera-channels {channels}")
        twin = type(self)(self.bundle, self.precision, strict=True, **self.twin_options())
        twin.camera = (int(size[0]), int(size[1]))
        twin._camera_spec = camera_spec(self.bundle.input_spec, size)
        twin._use_camera_graph(graphs[0])
        return twin

    def twin_options(self) -> Dict[str, object]:
        """The options a :meth:`camera_twin` is opened with (the runner's own)."""
        return {}

    def _use_camera_graph(self, graph) -> None:  # pragma: no cover - only backends with camera_role
        raise NotImplementedError

    def activate(self) -> "Runner":
        if not self.is_active:
            self._activate()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            try:
                self._deactivate()
            finally:
                self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.precision} {self.bundle.path}>"

    # -- buffers --------------------------------------------------------------------
    def allocate_input(self, n: int = 1) -> np.ndarray:
        """A host batch buffer for ``n`` frames; pinned (page-locked) where the backend has CUDA."""
        return allocate_batch(self.input_spec, n)

    # -- inference ------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> PoseBatch:
        """Run one batch (``input_spec`` dtype, layout and shape) -> :class:`PoseBatch` (float64)."""
        if not self.is_active:
            raise EdgePoseError(f"{self.name} runner is not active",
                                hint="use it as a context manager: with open_runner(...) as r: r.infer(batch)")
        t0 = time.perf_counter()
        batch = self.input_spec.check(batch)
        self._timing = {}
        raw = self._infer(batch)
        out = self._to_pose_batch(raw, batch.shape[0])
        self._timing["total"] = (time.perf_counter() - t0) * 1e3
        self.last_timing = dict(self._timing)
        return out

    def _to_pose_batch(self, raw: Dict[str, np.ndarray], n: int) -> PoseBatch:
        arrays = {}
        for key in OUTPUTS:
            if key not in raw:
                raise EdgePoseError(f"{self.name}: the model has no output {key!r} (it has {sorted(raw)})",
                                    hint="the bundle does not follow the model contract; re-export it")
            a = np.asarray(raw[key], dtype=np.float64).reshape(n, -1)
            if a.shape[1] != OUTPUT_WIDTH[key]:
                raise EdgePoseError(f"{self.name}: output {key!r} has shape {list(a.shape)}; "
                                    f"expected [{n}, {OUTPUT_WIDTH[key]}]", hint="re-export the bundle")
            arrays[key] = a
        q = arrays["rotation"]
        # keep the contract (unit, w >= 0) exact in float64 even after fp16/int8 rounding
        norm = np.linalg.norm(q, axis=1, keepdims=True)
        q = q / np.where(norm > 0, norm, 1.0)
        q = np.where(q[:, :1] < 0, -q, q)
        return PoseBatch(arrays["position"], q, arrays["sigma"])

    # -- to implement -----------------------------------------------------------------
    def _activate(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _deactivate(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def available(cls) -> Optional[str]:
        """``None`` when this backend can run here, else the reason it cannot."""
        return None

    @classmethod
    def family_name(cls) -> str:
        return cls.family or cls.backend

    @classmethod
    def options_for(cls, **settings) -> Tuple[dict, List[str]]:
        """``(options, ignored)``: the generic ``settings`` (``threads=2, cuda_graph=True``)
        as this runner's options; ``ignored`` names the set ones it does not honour."""
        opts, ignored = {}, []
        for key, value in settings.items():
            if key not in SETTINGS:
                raise ConfigError(f"unknown runner setting {key!r}; expected one of {sorted(SETTINGS)}")
            if not value:
                continue
            if key in cls.settings:
                opts[cls.settings[key]] = value
            else:
                ignored.append(key)
        return opts, ignored
