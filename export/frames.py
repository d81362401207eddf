"""The frames one export uses: calibration and guide frames (training split), validation frames
(test split), loaded once at the network resolution.

No test frame ever influences a choice: INT8 ranges come from :attr:`ExportFrames.calib`, guided
INT8 ranks layers on :attr:`ExportFrames.guide` (every 10th training frame); the test split
only reports accuracy and drift.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from edgepose.datasets import load_dataset
from edgepose.errors import EdgePoseError
from edgepose.frame_choice import spread_indices

from .config import GUIDE_EVERY, GUIDE_MAX_FRAMES, ExportConfig
from .int8.calibration import calibration_info, frame_names, load_calibration_images, select_calibration_frames


@dataclass
class ExportFrames:
    """Calibration (training split) and validation (test split) frames of one dataset.

    ``calib``/``guide``/``val`` are ``uint8 (N, H, W, 3)``; ``val_position (N, 3)`` m and
    ``val_rotation (N, 4)`` wxyz are the ground truth of ``val``. Any of them may be ``None``
    (no dataset, or not needed).
    """

    calib: Optional[np.ndarray] = None
    calib_info: Optional[dict] = None
    val: Optional[np.ndarray] = None
    guide: Optional[np.ndarray] = None
    val_position: Optional[np.ndarray] = None
    val_rotation: Optional[np.ndarray] = None
    source: str = "none"
    root: Optional[Path] = None  # the dataset the frames came from


#: the name the exporter's tests and older callers know


def load_frames(cfg: ExportConfig, data_info: dict, size: Tuple[int, int], need_calib: bool,
                log: Callable[[str], None] = print) -> ExportFrames:
    """Frames for calibration and drift; a missing dataset is an error only when INT8 needs it."""
    frames = ExportFrames()
    root = cfg.calib or (Path(data_info["root"]) if data_info.get("root") else None)
    if root is None or not Path(root).exists():
        where = "--calib DATA" if cfg.calib else "the checkpoint's data root"
        msg = f"dataset not found ({where}: {root})"
        if need_calib:
            raise EdgePoseError(msg + "; INT8 needs calibration frames from the training split",
                                hint="pass --calib DATA (the dataset the model was trained on)")
        log(f"warning: {msg}; accuracy and drift are not measured (pass --calib DATA to measure them)")
        return frames
    fmt = None if cfg.calib else data_info.get("format")
    policy = None if cfg.calib else data_info.get("split_policy")
    ds = load_dataset(root, fmt, policy, allow_outside=not cfg.calib and bool(data_info.get("allow_outside_images")))
    frames.source = f"{ds.format} dataset {root}"
    frames.root = Path(root)
    if need_calib:
        recs = select_calibration_frames(ds.split("train"), cfg.calib_frames)
        frames.calib = load_calibration_images(recs, size, progress=True)
        frames.calib_info = calibration_info(frame_names(recs, root), cfg.calib_method, 1,
                                             source=f"train split of {root}")
        if cfg.guided:
            guide = ds.split("train")[::GUIDE_EVERY][:GUIDE_MAX_FRAMES]
            frames.guide = load_calibration_images(guide, size, progress=True, desc="guide frames (train split)")
    test = ds.split("test")
    recs = [test[i] for i in spread_indices(len(test), cfg.val_frames)]
    frames.val = load_calibration_images(recs, size, progress=True, desc="validation frames (test split)")
    frames.val_position = np.stack([r.position for r in recs])
    frames.val_rotation = np.stack([r.rotation for r in recs])
    return frames


def calibration_frames_only(cfg: ExportConfig, size: Tuple[int, int]) -> Optional[np.ndarray]:
    """Training-split frames of ``--calib DATA`` for TensorRT's implicit calibrator, or ``None``."""
    if cfg.calib is None:
        return None

    recs = select_calibration_frames(load_dataset(cfg.calib).split("train"), cfg.calib_frames)
    return load_calibration_images(recs, size, progress=True)
