"""What the runtime hands back: :class:`PoseBatch` (a runner's raw output) and
:class:`PoseResult` (one frame of a stream, with timings and status).

Conventions (README, "Conventions"): pose = ``T_world_from_camera``; ``position`` is the camera centre in
the world frame (metres); ``rotation`` is the camera-to-world unit quaternion ``(w, x, y, z)``
with ``w >= 0``; ``sigma = [expected position error (m), expected rotation error (rad)]``.
Reports (JSON lines, CSV, status) give rotation sigma in degrees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from edgepose.covariance import sigma_to_covariance
from edgepose.geometry import rotation_error_deg, translation_error


@dataclass
class PoseBatch:
    """Output of :meth:`Runner.infer` for a batch of ``N`` frames (all float64).

    Attributes:
        position: ``(N, 3)`` camera centre in the world frame, metres.
        rotation: ``(N, 4)`` camera-to-world unit quaternion ``wxyz``, ``w >= 0``.
        sigma: ``(N, 2)`` expected position error (m) and rotation error (rad).
    """

    position: np.ndarray
    rotation: np.ndarray
    sigma: np.ndarray

    def __len__(self) -> int:
        return int(self.position.shape[0])

    def __getitem__(self, i: int) -> "PoseBatch":
        return PoseBatch(self.position[i : i + 1], self.rotation[i : i + 1], self.sigma[i : i + 1])


@dataclass
class PoseResult:
    """One frame's pose, uncertainty, timings and status.

    Attributes:
        index: frame index in the source (0-based, gaps mean dropped frames).
        capture_time: wall-clock time (UNIX seconds) when the frame was captured / read.
        timestamp: media time of the frame in seconds (video position, dataset timestamp,
            or ``index / fps`` for an image folder); what the filter uses as time.
        position: ``(3,)`` metres, or ``None`` when ``ok`` is false.
        rotation: ``(4,)`` wxyz, ``w >= 0``, or ``None``.
        sigma_position_m: expected position error (m) of this frame.
        sigma_rotation_deg: expected rotation error (degrees) of this frame.
        timings_ms: per-stage times in milliseconds (``read``, ``wait``, ``preprocess``,
            ``infer``, ``postprocess``), plus ``latency`` = capture to result, end to end.
        ok: ``False`` when the frame could not be read or inferred; ``error`` says why.
        source: where the frame came from (file path, ``camera:0``, ...).
        truth_position / truth_rotation: ground truth when the source has it (dataset split).
        filtered: ``"raw"``, ``"filtered"`` or ``"rejected"`` (outlier gated by the filter).
        stamp_ns: the source stamp in integer nanoseconds (a bag message's ``header.stamp``,
            else the capture wall clock): what ROS consumers expect, never "now".
        covariance: ``(6, 6)`` pose covariance in ROS order (x, y, z, rotation about fixed X,
            Y, Z; m², rad²) when set explicitly (e.g. moved to the base frame); ``None`` means
            the one :func:`edgepose.covariance.sigma_to_covariance` gives: see
            :meth:`pose_covariance`.
    """

    index: int
    capture_time: float
    timestamp: float = 0.0
    position: Optional[np.ndarray] = None
    rotation: Optional[np.ndarray] = None
    sigma_position_m: float = float("nan")
    sigma_rotation_deg: float = float("nan")
    timings_ms: Dict[str, float] = field(default_factory=dict)
    ok: bool = True
    error: Optional[str] = None
    source: str = ""
    truth_position: Optional[np.ndarray] = None
    truth_rotation: Optional[np.ndarray] = None
    filtered: str = "raw"
    stamp_ns: Optional[int] = None
    covariance: Optional[np.ndarray] = None

    def pose_covariance(self) -> Optional[np.ndarray]:
        """The ``(6, 6)`` covariance of this pose (ROS order, m², rad²), ``None`` when not ``ok``."""
        if not self.ok:
            return None
        if self.covariance is not None:
            return np.asarray(self.covariance, np.float64)
        return sigma_to_covariance(self.sigma_position_m, math.radians(self.sigma_rotation_deg))

    @property
    def latency_ms(self) -> float:
        """End-to-end latency, capture to result, in milliseconds."""
        return float(self.timings_ms.get("latency", float("nan")))

    def errors(self) -> Optional[Dict[str, float]]:
        """``{"position_m", "rotation_deg"}`` against ground truth, or ``None`` without it."""
        if not self.ok or self.truth_position is None or self.truth_rotation is None:
            return None

        return {
            "position_m": float(translation_error(self.position, self.truth_position)),
            "rotation_deg": float(rotation_error_deg(self.rotation, self.truth_rotation)),
        }

    def to_json(self) -> dict:
        """The JSON-lines object (one per frame); floats rounded for readability."""
        def vec(a, nd=6):
            return None if a is None else [round(float(v), nd) for v in a]

        def num(x, nd=6):
            return None if x is None or not math.isfinite(x) else round(float(x), nd)

        d = {
            "index": int(self.index),
            "ok": bool(self.ok),
            "error": self.error,
            "source": self.source,
            "capture_time": round(float(self.capture_time), 6),
            "timestamp": round(float(self.timestamp), 6),
            **({"stamp_ns": int(self.stamp_ns)} if self.stamp_ns is not None else {}),
            "position_m": vec(self.position),
            "rotation_wxyz": vec(self.rotation, 8),
            "sigma_position_m": num(self.sigma_position_m),
            "sigma_rotation_deg": num(self.sigma_rotation_deg),
            "filter": self.filtered,
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
        }
        if self.truth_position is not None:
            d["truth_position_m"] = vec(self.truth_position)
            d["truth_rotation_wxyz"] = vec(self.truth_rotation, 8)
            errs = self.errors()
            if errs is not None:
                d["error_position_m"] = round(errs["position_m"], 6)
                d["error_rotation_deg"] = round(errs["rotation_deg"], 6)
        return d
