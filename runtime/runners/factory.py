"""The backend registry and :func:`open_runner`, the one factory.

``BACKENDS`` maps a name to its runner class; ``edgepose-bench`` and ``edgepose-run --help``
list it. ``backend="auto"`` picks, in order: a TensorRT engine whose fingerprint matches this
device, else ONNX Runtime with the best execution provider present, else torch.
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Tuple, Type, Union

from edgepose.errors import ConfigError, EdgePoseError

from ..bundles import BundleView, open_bundle
from .base import Runner
from .onnxruntime_runner import OnnxRuntimeRunner, QdqReferenceRunner
from .tensorrt_runner import TensorRTRunner, device_fingerprint, select_engine
from .torch_runner import TorchCudaRunner, TorchRunner

#: name -> runner class
BACKENDS: Dict[str, Type[Runner]] = {
    "tensorrt": TensorRTRunner,
    "onnxruntime": OnnxRuntimeRunner,
    "qdq-reference": QdqReferenceRunner,
    "torch": TorchRunner,
    "torch-cuda": TorchCudaRunner,
}
#: what each backend is, for --help and bench tables
DESCRIPTIONS = {
    "tensorrt": "TensorRT engine from the bundle (pinned buffers, own CUDA stream, optional CUDA graph)",
    "onnxruntime": "ONNX Runtime on the fp32/fp16/int8 ONNX file (TensorRT/CUDA/CPU provider)",
    "qdq-reference": "int8 Q/DQ ONNX with ORT optimisations off: float simulation of TensorRT INT8",
    "torch": "the PyTorch checkpoint: the reference, for debugging",
    "torch-cuda": "the PyTorch checkpoint on a CUDA GPU, fp32 or fp16 (autocast)",
}


def register_backend(name: str, cls: Type[Runner], description: str = "") -> None:
    """Add a backend (e.g. for an out-of-tree accelerator)."""
    BACKENDS[name] = cls
    DESCRIPTIONS[name] = description or cls.__doc__ or name


def auto_backend(bundle: BundleView, precision: str) -> Tuple[str, List[str]]:
    """``(backend name, reasons the better ones were skipped)`` for ``backend="auto"``."""
    reasons = []
    if bundle.files("engine"):
        why = TensorRTRunner.available()
        if why is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    select_engine(bundle, precision, device_fingerprint(precision), strict=True)
                return "tensorrt", reasons
            except EdgePoseError as exc:
                reasons.append(f"tensorrt: {exc}")
        else:
            reasons.append(f"tensorrt: {why}")
    else:
        reasons.append("tensorrt: the bundle has no engine")
    if bundle.files("onnx"):
        why = OnnxRuntimeRunner.available()
        if why is None:
            return "onnxruntime", reasons
        reasons.append(f"onnxruntime: {why}")
    else:
        reasons.append("onnxruntime: the bundle has no ONNX file")
    if bundle.files("checkpoint"):
        why = TorchRunner.available()
        if why is None:
            return "torch", reasons
        reasons.append(f"torch: {why}")
    raise EdgePoseError(f"no backend can run bundle {bundle.path} here:\n    " + "\n    ".join(reasons),
                        hint="pip install onnxruntime (the portable backend)")


def create_runner(bundle: Union[str, BundleView], backend: str = "auto", precision: str = "fp32",
                  **options) -> Runner:
    """An INACTIVE runner (call ``activate()`` or use ``with``). See :func:`open_runner`."""
    view = open_bundle(bundle)
    if backend == "auto":
        backend, _ = auto_backend(view, precision)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; expected 'auto' or one of {sorted(BACKENDS)}")
    return BACKENDS[backend](view, precision=precision, **options)


def open_runner(bundle: Union[str, BundleView], backend: str = "auto", precision: str = "fp32",
                **options) -> Runner:
    """A runner for ``bundle`` on ``backend`` at ``precision``, used as a context manager::

        with open_runner("bundle/", "onnxruntime", "fp32") as r:
            poses = r.infer(preprocess_batch(images, r.input_spec))

    ``options`` go to the runner (``strict``, ``providers``, ``intra_op_threads``,
    ``io_binding``, ``cuda_graph``, ``dla_core``, ``device``, ``threads``). When the asked
    precision has no file, the nearest one is used with a printed warning (``strict=True``
    raises instead).
    """
    return create_runner(bundle, backend, precision, **options)
