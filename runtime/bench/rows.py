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
from typing import Dict, List, Optional, Sequence, Tuple, Type

from edgepose.bundle import PRECISIONS, check_precision
from edgepose.errors import ConfigError

from .. import runners
from ..runners.base import Runner


def registry() -> Dict[str, Type[Runner]]:
    """The runtime's registry: name -> runner class (each declares its precisions, family,
    requirements and notes; nothing about a backend is written down here). Read at each call:
    :func:`~edgepose.runtime.register_backend` may have added one."""
    return dict(runners.BACKENDS)


@dataclass(frozen=True)
class RowPlan:
    backend: str
    precision: str
    #: an FP32 row run only as the drift reference of asked rows: accuracy pass, no timing
    reference_only: bool = False

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.precision}"

    @property
    def runner_class(self) -> Optional[Type[Runner]]:
        return registry().get(self.backend)

    @property
    def family(self) -> str:
        cls = self.runner_class
        return cls.family_name() if cls is not None else self.backend

    @property
    def note(self) -> str:
        if self.reference_only:
            return "FP32 reference for drift, run implicitly (accuracy only, not timed)"
        cls = self.runner_class
        return cls.notes.get(self.precision, "") if cls is not None else ""


def backend_available(name: str) -> Tuple[bool, str]:
    """``(available, reason)`` for a backend.

    A cheap check that the Python packages its class ``requires`` are there at all, then the
    class's own ``available()`` (``None`` or the reason).
    """
    cls = registry().get(name)
    if cls is None:
        return False, f"unknown backend {name!r}"
    for mod in cls.requires:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):  # blocked (sys.modules[mod] = None) or broken install
            found = False
        if not found:
            return False, f"Python package '{mod}' is not importable here"
    try:
        why = cls.available()
    except Exception as exc:  # a broken install: report it, do not crash the plan
        why = f"{type(exc).__name__}: {exc}"
    if why:
        return False, str(why).splitlines()[0]
    return True, ""


def known_backends() -> List[str]:
    """Backend names, in the registry's order."""
    return list(registry())


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
        check_precision(p, "--precisions")
    notes: List[str] = []
    classes = registry()
    if backends is None:
        chosen = []
        for b in known:
            if classes[b].role == "checkpoint" and not has_checkpoint:
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
        serves = classes[b].precisions
        for p in want:
            if p in serves:
                rows.append(RowPlan(b, p))
            elif precisions is not None or backends is not None:
                notes.append(f"{b}/{p}: skipped ({b} serves {list(serves)})")
    if not rows:
        raise ConfigError("no rows to run: " + ("; ".join(notes) or "the bundle lists no ONNX precisions"),
                          hint="check --backends/--precisions, and `pip install onnxruntime` for CPU rows")
    return rows, notes


def implicit_references(plans: Sequence[RowPlan]) -> Tuple[List[RowPlan], List[str]]:
    """``(references, notes)``: for asked rows whose family has no FP32 row among ``plans``
    (``--precisions int8``), that family's FP32 row, run for drift only (accuracy pass, not
    timed, never gated), with a note saying so."""
    have = {p.family for p in plans if p.precision == "fp32"}
    wanted: Dict[str, List[str]] = {}
    for p in plans:
        if p.precision != "fp32" and p.family not in have:
            wanted.setdefault(p.family, []).append(p.label)
    refs, notes = [], []
    for family, labels in wanted.items():
        cls = registry().get(family)
        if cls is None or "fp32" not in cls.precisions:
            continue
        ref = RowPlan(family, "fp32", reference_only=True)
        refs.append(ref)
        notes.append(f"{ref.label}: run implicitly as the FP32 drift reference of {', '.join(labels)} "
                     "(accuracy only, not timed, not gated)")
    return refs, notes


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
