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
from typing import Dict, Optional, Union

import numpy as np

from edgepose.errors import EdgePoseError

from ..bundles import BundleView, open_bundle
from ..results import PoseBatch
from ..spec import InputSpec, allocate_batch

OUTPUTS = ("position", "rotation", "sigma")
OUTPUT_WIDTH = {"position": 3, "rotation": 4, "sigma": 2}


class Runner:
    """Base class. Subclasses set ``backend`` and implement ``_activate``, ``_deactivate`` and
    ``_infer(batch) -> {"position", "rotation", "sigma"}``, setting ``self._timing`` entries."""

    backend = "base"

    def __init__(self, bundle: Union[str, BundleView], precision: str = "fp32", strict: bool = False, **options):
        self.bundle = open_bundle(bundle)
        self.precision = precision
        self.strict = strict
        self.options = options
        self.is_active = False
        self.last_timing: Dict[str, float] = {}
        self._timing: Dict[str, float] = {}

    # -- Polygraphy-style life cycle ------------------------------------------------
    @property
    def name(self) -> str:
        """``"<backend>:<detail>"``, e.g. ``"onnxruntime:CPUExecutionProvider"``."""
        return self.backend

    @property
    def input_spec(self) -> InputSpec:
        return self.bundle.input_spec

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
