"""TensorRT runner: a serialized engine from the bundle, run through the name-based I/O API
of TensorRT 8.5 and newer (``num_io_tensors``, ``set_tensor_address``, ``execute_async_v3``).

Per batch: (copy into a pinned staging buffer unless the batch already is one, see
:meth:`TensorRTRunner.allocate_input`) -> async H2D -> execute (or launch the CUDA graph)
-> async D2H -> ONE stream synchronisation. Everything runs on a non-default stream.
``tensorrt`` and the CUDA bindings (:mod:`edgepose.runtime.cuda`) are imported in
:meth:`activate`, never at import time.

Options: ``cuda_graph`` (capture the enqueue after a warm-up run and replay it; recaptured
when the batch size changes, skipped with a warning if capture fails), ``dla_core``
(override; by default the engine's fingerprint says which DLA core it was built for),
``device`` (CUDA device index, default 0).

Engines only load where they were built: :func:`select_engine` compares each engine's
fingerprint with this device and raises :class:`~edgepose.errors.EngineMismatchError` with
the rebuild command when none fits.
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgepose.bundle import EngineFingerprint, check_engine, fallback_order, profile_shapes
from edgepose.errors import BundleError, EdgePoseError, EngineMismatchError, require
from edgepose.jetson import gpu_label, read_module

from ..bundles import BundleView, PrecisionFallbackWarning
from ..cuda import capture_graph, load_cuda
from .base import OUTPUTS, Runner

TRT_INSTALL = "JetPack's python3-libnvinfer on a Jetson; elsewhere: pip install tensorrt"


@functools.lru_cache(maxsize=None)  # once imported, never through importlib again: a camera twin activates
def _trt():  # in a stage thread, and import_module takes the import lock on Python 3.8 (runtime/preload.py)
    return require("tensorrt", "the TensorRT backend", TRT_INSTALL)


def select_engine(bundle: BundleView, precision: str, device: EngineFingerprint,
                  dla_core: Optional[int] = None, strict: bool = False,
                  camera: Optional[Tuple[int, int]] = None) -> Tuple[str, Path, EngineFingerprint]:
    """Pick the engine of ``precision`` that fits ``device`` (its precision field is ignored);
    with ``camera = (w, h)`` the ``camera-engine`` built for frames of that size.

    ``dla_core=None`` accepts whatever DLA core (or GPU) the engine was built for. Falls back to
    the nearest precision with a :class:`PrecisionFallbackWarning` (or raises if ``strict``).
    Raises :class:`EngineMismatchError` with the rebuild command when engines exist but none
    fits this device, :class:`BundleError` when the bundle has no engine at all.
    """
    role = "engine" if camera is None else "camera-engine"
    engines = bundle.files(role)
    if camera is not None:
        strict = True  # a camera twin exists only for its own precision
    if not engines:
        raise BundleError(f"bundle {bundle.path} has no TensorRT engine",
                          hint=f"build one on this device with: edgepose-export {bundle.path} "
                               f"--precision {precision} --engine yes")
    first_mismatch: Optional[EngineMismatchError] = None
    for prec in fallback_order(precision, strict):
        for rel, entry in bundle.listing.with_role(role, prec).items():
            if camera is not None and [int(v) for v in (entry.extra.get("camera") or {}).get("size", ())] != list(camera):
                continue
            built = EngineFingerprint.from_json(entry.fingerprint)
            want_dla = built.dla_core if dla_core is None else dla_core
            onnx_entry = bundle.manifest.files.get(entry.onnx or "")
            profile = bundle_profile(bundle.manifest)
            if camera is not None:  # the same batches at the camera frame's size
                profile = [[s[0], int(camera[1]), int(camera[0]), 3] for s in profile]
            here = EngineFingerprint(device.trt_version, device.gpu, device.compute_capability, prec, want_dla,
                                     onnx_sha256=onnx_entry.sha256 if onnx_entry else None, profile=profile)
            try:
                check_engine(entry, here, bundle.path)
            except EngineMismatchError as exc:
                first_mismatch = first_mismatch or exc
                continue
            if prec != precision:
                warnings.warn(f"bundle {bundle.path} has no {precision} engine for this device; using the "
                              f"{prec} engine {rel} (strict=True / --strict makes this an error)",
                              PrecisionFallbackWarning, stacklevel=3)
            return prec, bundle.verified(rel), built  # sha256 before loading
    if first_mismatch is not None:
        raise first_mismatch
    raise BundleError(f"bundle {bundle.path} has no {precision} engine (it has "
                      f"{bundle.listing.precisions('engine')})",
                      hint=f"build it with: edgepose-export {bundle.path} --precision {precision} --engine yes")


def bundle_profile(manifest) -> list:
    """``[[min shape], [opt shape], [max shape]]`` of the bundle's input (a typed
    :class:`~edgepose.manifest.Manifest`), as engines record it."""
    return [list(s) for s in profile_shapes(manifest.input)]


def check_profile(profile, want_min, want_max, engine: str) -> Tuple[int, ...]:
    """The input shape to size buffers for: the manifest's largest batch, checked against the
    engine's optimization profile ``(min, opt, max)`` (``engine.get_tensor_profile_shape``).

    >>> check_profile([(1, 24, 32, 3), (4, 24, 32, 3), (8, 24, 32, 3)], (1, 24, 32, 3), (8, 24, 32, 3), "e")
    (8, 24, 32, 3)
    """
    lo, _, hi = (tuple(int(d) for d in s) for s in profile)
    want_min, want_max = tuple(want_min), tuple(want_max)
    fits = (len(lo) == len(want_min) == len(hi) == len(want_max)
            and all(a <= b for a, b in zip(lo, want_min)) and all(a <= b for a, b in zip(want_max, hi)))
    if not fits:
        raise BundleError(f"{engine}: its optimization profile takes {lo}..{hi}; the manifest's batches need "
                          f"{want_min}..{want_max}",
                          hint="rebuild the engine from this bundle: edgepose-export BUNDLE --engine yes")
    return want_max


def _checked(ok, call: str) -> None:
    """TensorRT's setters return False instead of raising (Polygraphy checks them too)."""
    if ok is False:
        raise EdgePoseError(f"TensorRT {call} returned False (see the TensorRT log above)",
                            hint="the engine does not accept this shape or buffer; rebuild it from the bundle")


def local_fingerprint(trt_version: str, gpu: str, compute_capability: str, precision: str,
                      module: Optional[str] = None) -> EngineFingerprint:
    """The fingerprint engines built here carry: the GPU name with the Jetson module added the
    way the exporter adds it (:func:`edgepose.jetson.gpu_label`; Orin Nano/NX/AGX all say "Orin")."""
    return EngineFingerprint(str(trt_version), gpu_label(gpu, module), compute_capability, precision, None)


def device_fingerprint(precision: str = "fp32", device: int = 0) -> EngineFingerprint:
    """This machine's TensorRT version, GPU name (+ Jetson module) and compute capability."""
    trt = _trt()
    gpu, cc = load_cuda().device_properties(device)
    return local_fingerprint(str(trt.__version__), gpu, cc, precision, read_module())


class TensorRTRunner(Runner):
    """Runs the bundle's TensorRT engine for ``precision`` on this GPU (or DLA core)."""

    backend = "tensorrt"
    description = "TensorRT engine from the bundle (pinned buffers, own CUDA stream, optional CUDA graph)"
    requires = ("tensorrt",)
    role = "engine"
    camera_role = "camera-engine"
    #: batches are copied to the GPU from pinned host buffers (the pipeline fills them)
    pinned_input = True
    options = {"cuda_graph": "capture the enqueue after a warm-up run and replay it",
               "dla_core": "run on this DLA core (default: the one the engine was built for)",
               "device": "CUDA device index (default 0)"}
    settings = {"cuda_graph": "cuda_graph"}

    def __init__(self, bundle, precision: Optional[str] = None, strict: bool = False, cuda_graph: bool = False,
                 dla_core: Optional[int] = None, device: int = 0, **unknown):
        super().__init__(bundle, precision, strict, **unknown)
        self.asked_precision = self.precision
        self.cuda_graph = bool(cuda_graph)
        self.dla_core = dla_core
        self.device = int(device)
        self.engine_path: Optional[Path] = None
        self._reset()

    def twin_options(self) -> Dict[str, object]:
        return {"cuda_graph": self.cuda_graph, "dla_core": self.dla_core, "device": self.device}

    def _use_camera_graph(self, graph) -> None:
        pass  # _activate selects the camera-engine of self.camera

    def _reset(self) -> None:
        self.api = self.trt = self.engine = self.context = self.stream = None
        self._dev: Dict[str, int] = {}
        self._host: Dict[str, object] = {}  # name -> HostBuffer (pinned)
        self._pool: List[object] = []  # pinned buffers handed out by allocate_input
        self._graph = self._graph_exec = None
        self._graph_n = None
        self._events = []
        self._n = None

    @classmethod
    def available(cls) -> Optional[str]:
        try:
            _trt()

            load_cuda().device_count()
        except EdgePoseError as exc:
            return str(exc)
        return None

    @property
    def name(self) -> str:
        where = "gpu" if self.dla_core is None else f"dla{self.dla_core}"
        return f"tensorrt:{where}" + (":cuda-graph" if self.cuda_graph else "")

    # -- life cycle -----------------------------------------------------------------
    def _activate(self) -> None:
        trt = self.trt = _trt()
        self.api = api = load_cuda()
        api.set_device(self.device)  # before any allocation: device N is used, not device 0
        here = device_fingerprint(self.asked_precision, self.device)
        self.precision, self.engine_path, built = select_engine(
            self.bundle, self.asked_precision, here, self.dla_core, self.strict, camera=self.camera)
        self.dla_core = built.dla_core
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        if self.dla_core is not None:
            runtime.DLA_core = int(self.dla_core)
        with api.thread_context():
            self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self.engine is None:
                raise EngineMismatchError(f"TensorRT could not deserialize {self.engine_path} (see the log above)",
                                          hint=f"rebuild it here with: edgepose-export {self.bundle.path} "
                                               f"--precision {self.precision} --engine yes")
            if not hasattr(self.engine, "num_io_tensors"):
                raise EdgePoseError(f"TensorRT {trt.__version__} lacks the name-based I/O API",
                                    hint="use TensorRT 8.5 or newer (JetPack 5.1+)")
            self.context = self.engine.create_execution_context()
            self.stream = api.stream_create()
            self._events = [api.event_create() for _ in range(4)]
            self._allocate(trt)
            self._execute(self.input_spec.batch_min)  # warm-up: no lazy init inside a graph capture

    def _allocate(self, trt) -> None:
        """Buffers sized from the ENGINE (its profile's max input, the context's output shapes at
        that input), not from the manifest; the manifest's batch range must fit the profile."""
        spec, nmax = self.input_spec, self.input_spec.batch_max
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [spec.name]:
            raise BundleError(f"{self.engine_path.name}: engine inputs {inputs}; manifest says [{spec.name!r}]",
                              hint="rebuild the engine from this bundle's ONNX")
        profile = [tuple(int(d) for d in s) for s in self.engine.get_tensor_profile_shape(spec.name, 0)]
        max_shape = check_profile(profile, spec.batch_shape(spec.batch_min), spec.batch_shape(nmax),
                                  self.engine_path.name)
        _checked(self.context.set_input_shape(spec.name, max_shape), f"set_input_shape({spec.name}, {max_shape})")
        self._io = {}
        for name in names:
            is_input = name in inputs
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            shape = list(max_shape) if is_input else [int(d) for d in self.context.get_tensor_shape(name)]
            if any(d < 0 for d in shape):
                raise BundleError(f"{self.engine_path.name}: output {name!r} has no static size at {max_shape}: {shape}",
                                  hint="re-export the bundle: outputs must depend only on the batch")
            host = self.api.pinned_array(shape, dtype)
            dev = self.api.malloc(host.nbytes)
            self._host[name], self._dev[name] = host, dev
            self._io[name] = (is_input, dtype, shape)
            _checked(self.context.set_tensor_address(name, dev), f"set_tensor_address({name})")
        self._n = nmax
        missing = [k for k in OUTPUTS if k not in self._io]
        if missing:
            raise BundleError(f"{self.engine_path.name} lacks outputs {missing}", hint="re-export the bundle")

    def _deactivate(self) -> None:
        api = self.api
        try:
            if api is not None:
                with api.thread_context():
                    if self.stream is not None:
                        api.synchronize(self.stream)
                    api.graph_destroy(self._graph, self._graph_exec)
                    for ev in self._events:
                        api.event_destroy(ev)
                    for ptr in self._dev.values():
                        api.free(ptr)
                    for buf in list(self._host.values()) + self._pool:
                        buf.free()
                    if self.stream is not None:
                        api.stream_destroy(self.stream)
        finally:
            self._reset()

    def allocate_input(self, n: int = 1) -> np.ndarray:
        """A PINNED host batch for ``n`` frames (valid while the runner is active): batches
        built in it are copied to the GPU directly, without a staging copy."""
        if not self.is_active:
            raise EdgePoseError("allocate_input on a TensorRT runner needs it active (inside `with`)")
        buf = self.api.pinned_array(self.input_spec.batch_shape(n), np.dtype(self.input_spec.dtype))
        self._pool.append(buf)
        return buf.array

    # -- inference ------------------------------------------------------------------
    def _owned_pinned(self, batch: np.ndarray) -> bool:
        ptr = batch.ctypes.data
        return any(b.ptr <= ptr and ptr + batch.nbytes <= b.ptr + b.nbytes for b in self._pool)

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.api.stream_handle(self.stream)):
            raise EdgePoseError("TensorRT execute_async_v3 returned False (see the TensorRT log above)")

    def _execute(self, n: int) -> None:
        api, stream = self.api, self.stream
        if n != self._n:
            shape = self.input_spec.batch_shape(n)
            _checked(self.context.set_input_shape(self.input_spec.name, shape), f"set_input_shape({shape})")
            self._n = n
        if self.cuda_graph and self._graph_n != n:
            self._capture(n)
        if self._graph_exec is not None and self._graph_n == n:
            api.graph_launch(self._graph_exec, stream)
        else:
            self._enqueue()

    def _capture(self, n: int) -> None:
        api = self.api
        api.graph_destroy(self._graph, self._graph_exec)
        self._graph = self._graph_exec = None
        self._graph_n = n
        self._enqueue()  # one plain run at this shape first, as trtexec does
        api.synchronize(self.stream)
        self._graph, self._graph_exec, why = capture_graph(api, self.stream, self._enqueue)
        if why is not None:  # the graph is optional: never fail activate() or a batch for it
            warnings.warn(f"CUDA graph capture failed, running without it: {why}", RuntimeWarning, stacklevel=2)
            self.cuda_graph = False

    def _infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        api, stream, n = self.api, self.stream, batch.shape[0]
        name = self.input_spec.name
        e_start, e_h2d, e_exec, e_d2h = self._events
        with api.thread_context():
            src = batch
            if not self._owned_pinned(batch):
                staging = self._host[name].array[:n]
                np.copyto(staging, batch)
                src = staging
            api.event_record(e_start, stream)
            api.memcpy_htod_async(self._dev[name], src.ctypes.data, src.nbytes, stream)
            api.event_record(e_h2d, stream)
            self._execute(n)
            api.event_record(e_exec, stream)
            outs = {}
            for key, (is_input, dtype, shape) in self._io.items():
                if is_input:
                    continue
                host = self._host[key].array[:n]
                api.memcpy_dtoh_async(host.ctypes.data, self._dev[key], host.nbytes, stream)
                outs[key] = host
            api.event_record(e_d2h, stream)
            api.synchronize(stream)  # the one synchronisation of this batch
            self._timing["h2d"] = api.event_elapsed_ms(e_start, e_h2d)
            self._timing["compute"] = api.event_elapsed_ms(e_h2d, e_exec)
            self._timing["d2h"] = api.event_elapsed_ms(e_exec, e_d2h)
        return outs
