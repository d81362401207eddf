"""The one record type every dataset reader produces.

A :class:`FrameRecord` is one image with its pose in the design's convention
(``T_world_from_camera``: camera centre in metres, camera-to-world quaternion ``wxyz`` with
``w >= 0``, OpenCV camera axes), its pinhole intrinsics and the split it belongs to.
Scene points visible in the image, or the path of a depth map, are optional.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .errors import EdgePoseError

SPLITS = ("train", "test")


@dataclass
class FrameRecord:
    """One frame.

    Attributes:
        image: path of the image file.
        position: ``(3,)`` camera centre in the world frame, metres.
        rotation: ``(4,)`` camera-to-world unit quaternion ``(w, x, y, z)``, ``w >= 0``.
        K: ``(3, 3)`` pinhole intrinsics in pixels of the image as stored on disk.
        width, height: image size in pixels.
        split: ``"train"`` or ``"test"``.
        points: ``(M, 3)`` world points (metres) visible in this frame, or ``None``.
        depth: path of a depth map (metres after the reader's scaling), or ``None``.
        points_synthetic: ``True`` when ``points`` were drawn in the frustum rather than
            observed (the reprojection-loss fallback for sources without 3D points).
        sequence: name of the sequence the frame belongs to ("" when unknown).
        timestamp: capture time in seconds, or ``None``.
    """

    image: Path
    position: np.ndarray
    rotation: np.ndarray
    K: np.ndarray
    width: int
    height: int
    split: str = "train"
    points: Optional[np.ndarray] = None
    depth: Optional[Path] = None
    points_synthetic: bool = False
    sequence: str = ""
    timestamp: Optional[float] = None
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return 0 if self.points is None else int(len(self.points))

    def to_json(self) -> dict:
        """The ``edgepose-inspect --json`` frame object."""
        return {
            "image": str(self.image),
            "split": self.split,
            "sequence": self.sequence,
            "position": [float(v) for v in self.position],
            "rotation_wxyz": [float(v) for v in self.rotation],
            "K": [[float(v) for v in row] for row in np.asarray(self.K)],
            "width": int(self.width),
            "height": int(self.height),
            "n_points": self.n_points,
        }


@dataclass
class Dataset:
    """All frames of one scene plus what the reader learned about it.

    ``problems`` lists non-fatal issues found while reading (shown by ``edgepose-inspect``).
    """

    root: Path
    format: str
    frames: List[FrameRecord]
    problems: List[str] = field(default_factory=list)

    def split(self, name: str) -> List[FrameRecord]:
        """Frames of split ``name``; raises :class:`EdgePoseError` if it is empty."""
        if name not in SPLITS:
            raise EdgePoseError(f"unknown split {name!r}; expected one of {SPLITS}")
        out = [f for f in self.frames if f.split == name]
        if not out:
            raise EdgePoseError(
                f"split {name!r} of {self.root} ({self.format}) has no frames",
                hint="check the split files, or pass a split policy (see edgepose-inspect --help)",
            )
        return out

    def counts(self) -> Dict[str, int]:
        return {s: sum(f.split == s for f in self.frames) for s in SPLITS}

    def positions(self, split: Optional[str] = None) -> np.ndarray:
        frames = self.frames if split is None else self.split(split)
        return np.stack([f.position for f in frames])

    def rotations(self, split: Optional[str] = None) -> np.ndarray:
        frames = self.frames if split is None else self.split(split)
        return np.stack([f.rotation for f in frames])


def stack_poses(frames: Sequence[FrameRecord]):
    """``(positions (N, 3), rotations (N, 4))`` of a list of frames."""
    return np.stack([f.position for f in frames]), np.stack([f.rotation for f in frames])
