"""ONNX Runtime runners: ``onnxruntime`` (ORT's optimised graph, its own fused int8 kernels)
and ``qdq-reference`` (the int8 Q/DQ file with graph optimisations disabled, so
Quantize/DequantizeLinear run as float ops: the arithmetic TensorRT's INT8 approximates).

``onnxruntime`` is imported lazily in :meth:`activate`. Options:

* ``providers``: execution providers in order of preference; default the best present
  (TensorRT, CUDA, then CPU).
* ``intra_op_threads`` / ``inter_op_threads``: ORT thread pools (0 = ORT's default).
* ``allow_spinning``: ``False`` makes ORT's idle worker threads sleep instead of spin-wait,
  which leaves the CPU to decoding and preprocessing in a streaming pipeline.
* ``io_binding``: ``"auto"`` (on when a GPU provider runs the graph, so outputs land in
  preallocated arrays and inputs are bound once), ``True`` or ``False``.
"""
from __future__ import annotations

import functools
import time
from typing import Dict, List, Optional

import numpy as np

from edgepose.errors import EdgePoseError, require

from ..camera import camera_file
from .base import OUTPUTS, OUTPUT_WIDTH, Runner

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ORT_INSTALL = "pip install onnxruntime   (onnxruntime-gpu on a CUDA machine; Jetson wheels from the Jetson Zoo)"
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
              "tensor(int8)": np.int8, "tensor(double)": np.float64}


@functools.lru_cache(maxsize=None)  # once imported, never through importlib again: a camera twin activates
def _ort():  # in a stage thread, and import_module takes the import lock on Python 3.8 (runtime/preload.py)
    return require("onnxruntime", "the ONNX Runtime backend", ORT_INSTALL)


def best_providers(available: List[str], asked: Optional[List[str]] = None) -> List[str]:
    """The providers to pass ORT: ``asked`` (each must be present) or the best present ones."""
    if asked:
        missing = [p for p in asked if p not in available]
        if missing:
            raise EdgePoseError(f"execution provider(s) {missing} are not available here; ORT has {available}",
                                hint="install onnxruntime-gpu for CUDA/TensorRT, or leave providers unset")
        return list(asked)
    out = [p for p in PREFERRED_PROVIDERS if p in available]
    return out or ["CPUExecutionProvider"]


class OnnxRuntimeRunner(Runner):
    """Runs the bundle's ONNX file for ``precision`` (fp32 / fp16 / int8) with ONNX Runtime."""

    backend = "onnxruntime"
    description = "ONNX Runtime on the fp32/fp16/int8 ONNX file (TensorRT/CUDA/CPU provider)"
    requires = ("onnxruntime",)
    options = {
        "providers": "execution providers in order of preference (default: the best present)",
        "intra_op_threads": "ORT intra-op thread pool size (0 = ORT's default)",
        "inter_op_threads": "ORT inter-op thread pool size (0 = ORT's default)",
        "io_binding": "'auto' (on for GPU providers), True or False",
        "allow_spinning": "False: idle ORT threads sleep instead of spin-waiting",
    }
    settings = {"threads": "intra_op_threads"}
    notes = {"int8": "ONNX Runtime int8 kernels (what a CPU user gets)"}
    camera_role = "camera-onnx"
    #: ORT's graph optimisations off (the qdq-reference backend)
    disable_optimizations = False

    def __init__(self, bundle, precision: Optional[str] = None, strict: bool = False, providers=None,
                 intra_op_threads: int = 0, inter_op_threads: int = 0, io_binding="auto",
                 allow_spinning: bool = True, **unknown):
        super().__init__(bundle, precision, strict, **unknown)
        self.precision, self.model_path = self.bundle.resolve_precision(
            "onnx", self.precision, strict=strict or len(self.precisions) == 1)
        self.asked_providers = list(providers) if providers else None
        self.intra_op_threads = int(intra_op_threads)
        self.inter_op_threads = int(inter_op_threads)
        self.io_binding = io_binding
        self.allow_spinning = bool(allow_spinning)
        self.session = None
        self.provider = None
        self._binding = None
        self._outputs: Dict[str, np.ndarray] = {}

    def twin_options(self) -> Dict[str, object]:
        return {"providers": self.asked_providers, "intra_op_threads": self.intra_op_threads,
                "inter_op_threads": self.inter_op_threads, "io_binding": self.io_binding,
                "allow_spinning": self.allow_spinning}

    def _use_camera_graph(self, graph) -> None:
        self.model_path = camera_file(self.bundle, graph)

    @classmethod
    def available(cls) -> Optional[str]:
        try:
            _ort()
        except EdgePoseError as exc:
            return str(exc)
        return None

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.provider or '?'}"

    def _activate(self) -> None:
        ort = _ort()
        so = ort.SessionOptions()
        if self.intra_op_threads:
            so.intra_op_num_threads = self.intra_op_threads
        if self.inter_op_threads:
            so.inter_op_num_threads = self.inter_op_threads
        so.log_severity_level = 3
        if not self.allow_spinning:  # idle ORT threads sleep instead of spinning: leaves CPU to the pipeline
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.disable_optimizations:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        providers = best_providers(ort.get_available_providers(), self.asked_providers)
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise EdgePoseError(f"ONNX Runtime could not load {self.model_path}: {exc}",
                                hint=f"the file is corrupt or not ONNX; re-export it: edgepose-export RUN --out {self.bundle.path}") from None
        self.provider = self.session.get_providers()[0]
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != self.input_spec.name:
            raise EdgePoseError(f"{self.model_path.name}: graph inputs are {[i.name for i in inputs]}; "
                                f"the manifest says {self.input_spec.name!r}", hint="re-export the bundle")
        self._feed_dtype = _ORT_TYPES.get(inputs[0].type, np.dtype(self.input_spec.dtype))
        names = [o.name for o in self.session.get_outputs()]
        missing = [k for k in OUTPUTS if k not in names]
        if missing:
            raise EdgePoseError(f"{self.model_path.name}: outputs {names} lack {missing}",
                                hint="the graph does not follow the model contract; re-export it")
        self._out_types = {o.name: _ORT_TYPES.get(o.type, np.float32) for o in self.session.get_outputs()}
        use = self.io_binding
        if use == "auto":
            use = self.provider != "CPUExecutionProvider"
        self._binding = self.session.io_binding() if use else None

    def _deactivate(self) -> None:
        self.session = None
        self._binding = None
        self._outputs = {}

    def _output_buffers(self, n: int) -> Dict[str, np.ndarray]:
        bufs = self._outputs
        if not bufs or next(iter(bufs.values())).shape[0] != n:
            bufs = {k: np.empty((n, OUTPUT_WIDTH[k]), dtype=self._out_types[k]) for k in OUTPUTS}
            self._outputs = bufs
        return bufs

    def _infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        if batch.dtype != self._feed_dtype:  # e.g. an fp16 graph without kept float32 I/O
            batch = batch.astype(self._feed_dtype)
        if self._binding is not None:
            b = self._binding
            b.bind_cpu_input(self.input_spec.name, batch)
            outs = self._output_buffers(batch.shape[0])
            for k, arr in outs.items():
                b.bind_output(k, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
            t0 = time.perf_counter()
            self.session.run_with_iobinding(b)
            self._timing["compute"] = (time.perf_counter() - t0) * 1e3
            return outs
        t0 = time.perf_counter()
        values = self.session.run(list(OUTPUTS), {self.input_spec.name: batch})
        self._timing["compute"] = (time.perf_counter() - t0) * 1e3
        return dict(zip(OUTPUTS, values))


class QdqReferenceRunner(OnnxRuntimeRunner):
    """The int8 Q/DQ file with ``ORT_DISABLE_ALL``: quantisation simulated in float."""

    backend = "qdq-reference"
    description = "int8 Q/DQ ONNX with ORT optimisations off: float simulation of TensorRT INT8"
    precisions = ("int8",)
    default_precision = "int8"
    family = "onnxruntime"
    notes = {"int8": "Q/DQ evaluated in float (what TensorRT INT8 approximates); accuracy only"}
    disable_optimizations = True

    def __init__(self, bundle, precision: Optional[str] = None, strict: bool = True, **options):
        if precision not in ("int8", None):
            raise EdgePoseError(f"the qdq-reference backend runs the int8 Q/DQ file only; asked {precision!r}",
                                hint="use precision='int8' (or backend='onnxruntime' for other precisions)")
        super().__init__(bundle, "int8", strict=True, **options)
