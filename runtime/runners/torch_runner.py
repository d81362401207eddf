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

import time
from typing import Dict, Optional

import numpy as np

from edgepose.bundle import check_precision
from edgepose.errors import BundleError, EdgePoseError, require

from ..bundles import PrecisionFallbackWarning
from .base import Runner

TORCH_INSTALL = "pip install 'edgepose[train]'  (or the JetPack torch wheel on a Jetson)"


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
        import torch

        if not torch.cuda.is_available():
            return "torch.cuda.is_available() is False (no CUDA GPU, or a CPU-only torch build)"
        return None
