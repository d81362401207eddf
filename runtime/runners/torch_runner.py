"""Torch runner: the bundle's checkpoint (role ``checkpoint``) through
``edgepose.train.model.load_model`` and ``PoseNet.predict_world``; the reference for
debugging exported files. torch is imported in :meth:`activate` only; without it,
:class:`~edgepose.errors.MissingDependencyError` says how to install it.

Options: ``device`` (``"cpu"`` default, ``"cuda"``), ``threads`` (torch intra-op threads).

:class:`TorchCudaRunner` (backend ``torch-cuda``) is the same on the GPU, in fp32 or in fp16
(``torch.autocast``: convolutions and matmuls in FP16, the post-processing of
``PoseNet.to_world`` in FP32, as the exported graphs keep it); ``edgepose-bench`` compares
its rows with the CPU ``torch/fp32`` row. TF32 is off while it infers
(``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``; cuDNN's
default is on, which gave an "fp32" row 10-bit mantissas): ``runner.tf32`` records it.
"""
from __future__ import annotations

import os
import time
from typing import Dict, Optional

import numpy as np

from edgepose.bundle import check_precision
from edgepose.errors import BundleError, ConfigError, EdgePoseError, require

from ..bundles import PrecisionFallbackWarning
from .base import Runner

TORCH_INSTALL = "pip install 'edgepose[train]'  (or the JetPack torch wheel on a Jetson)"
NO_CUDA_HINT = ("run the checkpoint on the CPU with --backend torch (Python: backend='torch'), or the exported "
                "graph with --backend onnxruntime; on a GPU machine, `nvidia-smi` shows whether the driver sees it")


def device_problem(device: str) -> Optional[str]:
    """Why torch cannot run on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``) here, or ``None``.

    Imports torch for a device other than ``"cpu"`` (the torch runners need it anyway). The
    reason names what torch reports: a CPU-only build, no driver, ``CUDA_VISIBLE_DEVICES``
    hiding the GPUs, or an index beyond the visible devices.
    """
    if device == "cpu":
        return None
    torch = require("torch", "the torch backend", TORCH_INSTALL)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return f"{device!r} is not a device torch knows; expected 'cpu', 'cuda' or 'cuda:N'"
    if dev.type == "cpu":
        return None
    if dev.type != "cuda":
        return f"device {device!r}: the torch runners run on 'cpu', 'cuda' or 'cuda:N' only"
    if not torch.cuda.is_available():
        return "CUDA is not available here (torch.cuda.is_available() is False): " + _why_no_cuda(torch)
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        return f"CUDA device {dev.index} does not exist here ({count} visible: cuda:0 to cuda:{count - 1})"
    return None


def _why_no_cuda(torch) -> str:
    """What torch says about its CUDA (called when ``torch.cuda.is_available()`` is False)."""
    build = f"torch {torch.__version__}"
    if torch.version.cuda is None:
        return f"{build} is a CPU-only build (torch.version.cuda is None)"
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU from {build}"
    try:
        torch.cuda.init()  # its error is the reason (no driver, driver too old, no device)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError or AssertionError here
        return f"{build} (CUDA {torch.version.cuda}) says: {str(exc).splitlines()[0]}"
    return f"{build} (CUDA {torch.version.cuda}) finds no usable CUDA device"


class TorchRunner(Runner):
    """Runs the checkpoint in PyTorch (precision is fp32 whatever is asked: it is the reference)."""

    backend = "torch"
    description = "the PyTorch checkpoint: the reference, for debugging"
    precisions = ("fp32",)
    default_precision = "fp32"
    requires = ("torch",)
    role = "checkpoint"
    options = {"device": "'cpu' (default) or 'cuda'", "threads": "torch intra-op threads (0 = torch's default)"}
    settings = {"threads": "threads"}

    def __init__(self, bundle, precision: Optional[str] = None, strict: bool = False, device: str = "cpu",
                 threads: int = 0, **unknown):
        asked = None if precision is None else check_precision(precision)
        served = asked if asked in self.precisions else "fp32"
        super().__init__(bundle, served, strict, **unknown)
        if asked is not None and asked != served:
            if strict:
                raise BundleError(f"the {self.backend} backend runs the fp32 checkpoint in "
                                  f"{'/'.join(self.precisions)} only; asked {precision!r}",
                                  hint=f"use precision={self.precisions[0]!r} or another backend")
            import warnings

            warnings.warn(f"the {self.backend} backend runs the fp32 checkpoint in {'/'.join(self.precisions)} "
                          f"only; asked {precision}, using fp32", PrecisionFallbackWarning, stacklevel=3)
        self.checkpoint = self.bundle.file_for("checkpoint", None)
        if self.checkpoint is None:
            raise BundleError(f"bundle {self.bundle.path} has no checkpoint (role 'checkpoint')",
                              hint="re-export with the checkpoint included, or use backend='onnxruntime'")
        why = device_problem(device)
        if why is not None:
            raise ConfigError(f"the {self.backend} backend was asked to run on {device!r}, but {why}",
                              hint=NO_CUDA_HINT)
        self.device = device
        self.threads = int(threads)
        self.model = None
        self._torch = None
        self.tf32 = False  #: TF32 matmuls/convolutions while inferring (never: FP32 rows are FP32)

    @classmethod
    def available(cls) -> Optional[str]:
        try:
            require("torch", "the torch backend", TORCH_INSTALL)
        except EdgePoseError as exc:
            return str(exc)
        return None

    @property
    def name(self) -> str:
        return f"torch:{self.device}"

    def _activate(self) -> None:
        torch = self._torch = require("torch", "the torch backend", TORCH_INSTALL)
        # the one arrow from runtime into train, taken only here (after torch is known present)
        from edgepose.train.model import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        self.model = load_model(self.checkpoint, map_location=self.device)

    def _deactivate(self) -> None:
        self.model = None

    def _infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        torch = self._torch
        if self.input_spec.layout == "NCHW":  # the float32 variant: back to uint8 NHWC
            batch = np.clip(np.rint(batch.transpose(0, 2, 3, 1)), 0, 255).astype(np.uint8)
        t0 = time.perf_counter()
        half = self.precision == "fp16"
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # FP32 means FP32
        try:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
                x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
                position, rotation, sigma = self.model.predict_world(x)
                out = {"position": position.cpu().numpy(), "rotation": rotation.cpu().numpy(),
                       "sigma": sigma.cpu().numpy()}
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        self._timing["compute"] = (time.perf_counter() - t0) * 1e3
        return out


class TorchCudaRunner(TorchRunner):
    """The checkpoint in PyTorch on a CUDA GPU, fp32 or fp16 (autocast); see the module docstring."""

    backend = "torch-cuda"
    description = "the PyTorch checkpoint on a CUDA GPU, fp32 or fp16 (autocast)"
    precisions = ("fp32", "fp16")
    family = "torch"  # drifts from the CPU torch/fp32 row
    options = {"device": "'cuda' (default) or 'cuda:N'", "threads": TorchRunner.options["threads"]}

    def __init__(self, bundle, precision: Optional[str] = None, strict: bool = False, device: str = "cuda",
                 **options):
        super().__init__(bundle, precision, strict, device=device, **options)

    @classmethod
    def available(cls) -> Optional[str]:
        why = TorchRunner.available()
        if why:
            return why
        return device_problem("cuda")
