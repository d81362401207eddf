"""Strict JSON for every file edgepose writes: no ``NaN`` / ``Infinity`` tokens, ever.

Python's :func:`json.dumps` writes ``NaN`` and ``Infinity`` by default; most JSON readers
(``jq``, JavaScript, Go, Rust's serde) refuse them. :func:`dumps` writes ``null`` instead
and, when the top level is an object, lists each replaced value with its reason under
``"null_reasons"`` (``{"validation.fp32.median_position_m": "NaN (undefined) in the run"}``),
so a reader can tell "not measured" from "measured and not finite".

>>> dumps({"a": float("nan"), "b": [1.0, float("inf")]})
'{"a": null, "b": [1.0, null], "null_reasons": {"a": "was NaN (not a number)", "b[1]": "was +Infinity"}}'
"""
from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import Any, Dict, Tuple

NULL_REASONS = "null_reasons"


def _reason(v: float) -> str:
    if math.isnan(v):
        return "was NaN (not a number)"
    return "was +Infinity" if v > 0 else "was -Infinity"


def clean(obj: Any, path: str = "") -> Tuple[Any, Dict[str, str]]:
    """``(copy, reasons)``: a copy of ``obj`` made of JSON types only, and for each non-finite
    float replaced by ``None`` its path and why.

    dict keys become strings; tuples, lists and numpy arrays become lists; numpy scalars become
    ``int``/``float``/``bool``; paths and any other object become their ``str``.
    """
    reasons: Dict[str, str] = {}

    def walk(o: Any, at: str) -> Any:
        if isinstance(o, dict):
            return {str(k): walk(v, f"{at}.{k}" if at else str(k)) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v, f"{at}[{i}]") for i, v in enumerate(o)]
        if o is None or isinstance(o, (str, bool, int)):
            return o
        if isinstance(o, float):
            if math.isfinite(o):
                return o
            reasons[at or "$"] = _reason(o)
            return None
        if isinstance(o, PurePath):
            return str(o)
        if hasattr(o, "tolist"):  # numpy scalars and arrays
            return walk(o.tolist(), at)
        return str(o)

    return walk(obj, path), reasons


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` made of JSON types only (see :func:`clean`), without the reasons.

    >>> import numpy as np
    >>> json_safe({"a": np.float32(0.5), 1: (np.int64(2), float("nan")), "p": np.arange(2)})
    {'a': 0.5, '1': [2, None], 'p': [0, 1]}
    """
    return clean(obj)[0]


def dumps(obj: Any, **kwargs) -> str:
    """:func:`json.dumps` that never writes NaN/Infinity (see the module docstring)."""
    out, reasons = clean(obj)
    if reasons and isinstance(out, dict):
        out[NULL_REASONS] = {**(out.get(NULL_REASONS) or {}), **reasons}
    return json.dumps(out, allow_nan=False, **kwargs)
