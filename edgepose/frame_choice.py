"""Choosing frames from a split: evenly spread indices, and how many INT8 calibration takes.

:func:`spread_indices` is the one rule for "k frames spread evenly over n" (validation frames
of an export, the bench's ``--max-frames``, the pose memory's views, contact sheets, QAT's
calibration frames). :data:`CALIBRATION_FRAMES` is the INT8 calibration frame count: the
default of ``edgepose-export --calib-frames`` and of QAT's range calibration, and the count
below which calibration warns (Ultralytics warns below 300 images,
``../shared/reference/deployment-facts.md``). Pure numpy.
"""
from __future__ import annotations

import numpy as np

#: INT8 calibration frames from the training split (default, and the recommended minimum)
CALIBRATION_FRAMES = 300


def spread_indices(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices into ``0..n-1``, spread evenly, first and last included, sorted,
    without repeats (``int64 (min(n, k),)``; all of them when ``n <= k``, none when ``n <= 0``
    or ``k <= 0``).

    >>> spread_indices(10, 4).tolist()
    [0, 3, 6, 9]
    >>> spread_indices(3, 5).tolist()
    [0, 1, 2]
    """
    n, k = int(n), int(k)
    if n <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))
