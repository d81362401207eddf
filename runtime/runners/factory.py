"""The backend registry and :func:`open_runner`, the one factory.

``BACKENDS`` maps a name to its runner class; ``edgepose-bench`` and ``edgepose-run --help``
read each class's declared facts (description, precisions, family, requirements, options).
``backend="auto"`` picks, in order: a TensorRT engine whose fingerprint matches this
device, else ONNX Runtime with the best execution provider present, else torch.
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Tuple, Type, Union

from edgepose.errors import ConfigError, EdgePoseError

from ..bundles import BundleView, open_bundle
from .base import DEFAULT_PRECISION, Runner
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
#: what each backend is, for --help and bench tables (each class's ``description``)
DESCRIPTIONS = {name: cls.description for name, cls in BACKENDS.items()}


def register_backend(name: str, cls: Type[Runner], description: str = "") -> None:
    """Add a backend (e.g. for an out-of-tree accelerator): a :class:`Runner` subclass that
    declares its precisions, family, requirements and options."""
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise ConfigError(f"register_backend({name!r}): expected a Runner subclass, got {cls!r}")
    BACKENDS[name] = cls
    DESCRIPTIONS[name] = description or cls.description or (cls.__doc__ or name).strip().splitlines()[0]


def runner_class(backend: str) -> Type[Runner]:
    """The runner class registered as ``backend`` (not ``"auto"``), or :class:`ConfigError`."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; expected 'auto' or one of {sorted(BACKENDS)}")
    return BACKENDS[backend]


def resolve_backend(bundle: Union[str, BundleView], backend: str = "auto",
                    precision: Optional[str] = None) -> Tuple[str, List[str]]:
    """``(backend name, reasons better ones were skipped)``; ``"auto"`` resolved for this bundle
    and machine. Resolve before choosing options: they depend on the backend."""
    if backend == "auto":
        return auto_backend(open_bundle(bundle), precision or DEFAULT_PRECISION)
    runner_class(backend)
    return backend, []


#: what ``backend="auto"`` tries, best first
AUTO_ORDER = ("tensorrt", "onnxruntime", "torch")


def _engine_fits(bundle: BundleView, precision: str) -> Optional[str]:
    """``None`` when an engine of the bundle loads on this device, else why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            select_engine(bundle, precision, device_fingerprint(precision), strict=True)
    except EdgePoseError as exc:
        return str(exc)
    return None


def auto_backend(bundle: BundleView, precision: Optional[str] = None) -> Tuple[str, List[str]]:
    """``(backend name, reasons the better ones were skipped)`` for ``backend="auto"``: the
    first of :data:`AUTO_ORDER` whose file (its class's ``role``) is in the bundle and that
    can run here (for TensorRT: an engine built for this device)."""
    precision = precision or DEFAULT_PRECISION
    reasons = []
    for name in AUTO_ORDER:
        cls = BACKENDS[name]
        if not bundle.files(cls.role):
            reasons.append(f"{name}: the bundle has no {cls.role} file")
            continue
        why = cls.available()
        if why is None and name == "tensorrt":
            why = _engine_fits(bundle, precision)
        if why is None:
            return name, reasons
        reasons.append(f"{name}: {why}")
    raise EdgePoseError(f"no backend can run bundle {bundle.path} here:\n    " + "\n    ".join(reasons),
                        hint="pip install onnxruntime (the portable backend)")


def open_runner(bundle: Union[str, BundleView], backend: str = "auto", precision: Optional[str] = None,
                **options) -> Runner:
    """A runner for ``bundle`` on ``backend`` at ``precision``, used as a context manager::

        with open_runner("bundle/", "onnxruntime", "fp32") as r:
            poses = r.infer(preprocess_batch(images, r.input_spec))

    ``precision=None`` is the backend's default (``fp16``; ``fp32`` for torch, ``int8`` for
    qdq-reference). ``options`` go to the runner: ``strict`` and what its class lists in
    ``options`` (e.g. ``BACKENDS["onnxruntime"].options``); any other is a
    :class:`ConfigError`. When the asked precision has no file, the nearest one is used with
    a printed warning (``strict=True`` raises instead).

    The runner is returned inactive: ``with`` (or ``activate()``) opens it.
    """
    view = open_bundle(bundle)
    backend, _ = resolve_backend(view, backend, precision)
    return runner_class(backend)(view, precision=precision, **options)
