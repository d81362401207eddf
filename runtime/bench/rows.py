"""Which rows a bench runs: backend x precision, and which FP32 row each one drifts from.

Default (no ``--backends`` / ``--precisions``): every backend importable here x every
precision that has an ONNX file in the bundle, restricted to the precisions the backend
serves. INT8 without TensorRT therefore gives two rows that are never confused:

* ``qdq-reference/int8``: the Q/DQ graph evaluated as quantize -> dequantize in float with
  ONNX Runtime's graph optimisations off: the arithmetic TensorRT INT8 approximates
  (accuracy only; its speed means nothing);
* ``onnxruntime/int8``: ONNX Runtime's own int8 kernels, what a CPU user gets (accuracy and
  speed; on x86 CPUs without VNNI its u8s8 kernels can saturate).

``torch`` is a reference backend: by default it runs only when the bundle holds a checkpoint;
``torch-cuda`` (fp32 and fp16 on a CUDA GPU) drifts from the CPU ``torch/fp32`` row.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ...bundle import PRECISIONS
from ...errors import ConfigError

#: backend -> precisions it can serve, in report order
BACKEND_PRECISIONS: Dict[str, Tuple[str, ...]] = {
    "tensorrt": ("fp32", "fp16", "int8"),
    "onnxruntime": ("fp32", "fp16", "int8"),
    "qdq-reference": ("int8",),
    "torch": ("fp32",),
    "torch-cuda": ("fp32", "fp16"),
}
#: backend -> the backend whose fp32 row is its drift reference
FAMILY: Dict[str, str] = {"tensorrt": "tensorrt", "onnxruntime": "onnxruntime",
                          "qdq-reference": "onnxruntime", "torch": "torch", "torch-cuda": "torch"}
#: python module each backend needs (checked without importing it)
NEEDS: Dict[str, str] = {"tensorrt": "tensorrt", "onnxruntime": "onnxruntime",
                         "qdq-reference": "onnxruntime", "torch": "torch", "torch-cuda": "torch"}
NOTES: Dict[Tuple[str, str], str] = {
    ("qdq-reference", "int8"): "Q/DQ evaluated in float (what TensorRT INT8 approximates); accuracy only",
    ("onnxruntime", "int8"): "ONNX Runtime int8 kernels (what a CPU user gets)",
}


@dataclass(frozen=True)
class RowPlan:
    backend: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.precision}"

    @property
    def family(self) -> str:
        return FAMILY.get(self.backend, self.backend)

    @property
    def note(self) -> str:
        return NOTES.get((self.backend, self.precision), "")


def _registry() -> Dict[str, object]:
    try:
        from ..runners import BACKENDS  # the runtime's registry: name -> runner class
    except ImportError:
        return {}
    return dict(BACKENDS)


def backend_available(name: str) -> Tuple[bool, str]:
    """``(available, reason)`` for a backend.

    Asks the runner class (``available()`` returns ``None`` or the reason) when the runtime
    registry has one, after a cheap check that its Python package is there at all.
    """
    mod = NEEDS.get(name)
    if mod is None:
        return False, f"unknown backend {name!r}"
    try:
        found = importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):  # blocked (sys.modules[mod] = None) or broken install
        found = False
    if not found:
        return False, f"Python package '{mod}' is not importable here"
    cls = _registry().get(name)
    check = getattr(cls, "available", None)
    if check is not None:
        try:
            why = check()
        except Exception as exc:  # a broken install: report it, do not crash the plan
            why = f"{type(exc).__name__}: {exc}"
        if why:
            return False, str(why).splitlines()[0]
    return True, ""


def known_backends() -> List[str]:
    """Backend names: the runtime's registry when it is importable, else ours."""
    names = list(_registry())
    return [b for b in BACKEND_PRECISIONS if not names or b in names] + [b for b in names if b not in BACKEND_PRECISIONS]


def split_list(text: Optional[str]) -> Optional[List[str]]:
    if text is None:
        return None
    items = [t.strip() for t in text.replace(" ", ",").split(",") if t.strip()]
    return items or None


def plan_rows(bundle_precisions: Sequence[str], backends: Optional[Sequence[str]] = None,
              precisions: Optional[Sequence[str]] = None, has_checkpoint: bool = False
              ) -> Tuple[List[RowPlan], List[str]]:
    """``(rows, notes)``: the rows to run, and a line for each combination left out and why.

    Explicitly named backends are run even when they look unavailable (the row then fails
    with the reason); by default only available ones are used.
    """
    known = known_backends()
    for b in backends or ():
        if b not in known:
            raise ConfigError(f"--backends: unknown backend {b!r}; expected some of {known}")
    for p in precisions or ():
        if p not in PRECISIONS:
            raise ConfigError(f"--precisions: unknown precision {p!r}; expected some of {list(PRECISIONS)}")
    notes: List[str] = []
    if backends is None:
        chosen = []
        for b in known:
            if b.startswith("torch") and not has_checkpoint:
                notes.append(f"{b}: skipped (the bundle has no checkpoint)")
                continue
            ok, why = backend_available(b)
            if ok:
                chosen.append(b)
            else:
                notes.append(f"{b}: skipped ({why})")
    else:
        chosen = list(backends)
    want = list(precisions) if precisions is not None else [p for p in PRECISIONS if p in bundle_precisions]
    rows: List[RowPlan] = []
    for b in chosen:
        for p in want:
            if p in BACKEND_PRECISIONS.get(b, PRECISIONS):
                rows.append(RowPlan(b, p))
            elif precisions is not None or backends is not None:
                notes.append(f"{b}/{p}: skipped ({b} serves {list(BACKEND_PRECISIONS.get(b, ()))})")
    if not rows:
        raise ConfigError("no rows to run: " + ("; ".join(notes) or "the bundle lists no ONNX precisions"),
                          hint="check --backends/--precisions, and `pip install onnxruntime` for CPU rows")
    return rows, notes


def drift_reference(plan: RowPlan, ok_fp32: Dict[str, str]) -> Optional[str]:
    """Label of the FP32 row ``plan`` is compared with: same family first, else any ok FP32.

    ``ok_fp32`` maps backend -> label of its successful fp32 row.
    """
    if plan.family in ok_fp32:
        return ok_fp32[plan.family]
    for b in ("onnxruntime", "tensorrt", "torch"):
        if b in ok_fp32:
            return ok_fp32[b]
    return next(iter(ok_fp32.values()), None)
