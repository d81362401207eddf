"""INT8 calibration frames: chosen from the TRAINING split only, hashed, loaded, batched.

Calibration must never see the test split (it would leak test statistics into the engine),
so :func:`select_calibration_frames` refuses records of any other split. The choice is
deterministic (seeded, spread evenly over the split), and :func:`frame_list_sha256` hashes the
ordered list of frame names so the manifest can say exactly which frames were used.

:func:`check_calibration_count` applies the rules peers use (Ultralytics): fewer frames than one
batch is an error; fewer than :data:`~edgepose.frame_choice.CALIBRATION_FRAMES` (300) is a warning. Pure numpy + the
shared preprocessing rule; no GPU, no torch.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from edgepose.errors import ConfigError, EdgePoseError
from edgepose.frame_choice import CALIBRATION_FRAMES
from edgepose.preprocess import load_and_preprocess
from edgepose.progress import progress as progress_bar


class CalibrationWarning(UserWarning):
    """Calibration works but with fewer frames than recommended."""


def check_calibration_count(n: int, batch: int = 1, what: str = "calibration") -> None:
    """Raise when ``n < batch``; warn (:class:`CalibrationWarning`) when ``n <`` :data:`CALIBRATION_FRAMES`."""
    if batch < 1:
        raise ConfigError(f"{what} batch must be >= 1, got {batch}")
    if n < batch:
        raise EdgePoseError(f"{what} needs at least one full batch of {batch} frames; got {n}",
                            hint="use more training frames (--calib-frames) or a smaller --calib-batch")
    if n < CALIBRATION_FRAMES:
        warnings.warn(f"{what} uses {n} frames; at least {CALIBRATION_FRAMES} are recommended for stable "
                      "INT8 ranges", CalibrationWarning, stacklevel=2)


def select_calibration_frames(records: Sequence, count: int = CALIBRATION_FRAMES, seed: int = 0) -> List:
    """Pick up to ``count`` frames from ``records`` (all must be ``split == "train"``).

    The frames are spread evenly over the split (every k-th after a seeded offset) and keep
    their order, so neighbouring video frames are not over-represented. Raises
    :class:`EdgePoseError` if any record is not from the training split or none are given.
    """
    records = list(records)
    bad = [r for r in records if getattr(r, "split", None) != "train"]
    if bad:
        raise EdgePoseError(
            f"calibration frames must come from the training split; {len(bad)} of {len(records)} are "
            f"from {sorted({str(getattr(r, 'split', None)) for r in bad})} (e.g. {getattr(bad[0], 'image', bad[0])})",
            hint="pass dataset.frames('train') (never the test split)")
    if not records:
        raise EdgePoseError("no training frames to calibrate on", hint="check the dataset's split")
    if count < 1:
        raise ConfigError(f"calibration frame count must be >= 1, got {count}")
    n = len(records)
    if count >= n:
        return records
    rng = np.random.default_rng(seed)
    step = n / count
    idx = (np.floor(np.arange(count) * step + rng.uniform(0, step))).astype(int)
    return [records[i] for i in np.clip(idx, 0, n - 1)]


def frame_names(records: Sequence, root: Optional[Union[str, Path]] = None) -> List[str]:
    """Names of the frames' images, relative to ``root`` when given (posix separators)."""
    out = []
    for r in records:
        p = Path(getattr(r, "image", r))
        if root is not None:
            try:
                p = p.relative_to(root)
            except ValueError:
                pass
        out.append(p.as_posix())
    return out


def frame_list_sha256(names: Sequence[str]) -> str:
    """sha256 of the ordered frame names, one per line (order matters: it is the batch order)."""
    h = hashlib.sha256()
    for name in names:
        h.update(str(name).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def load_calibration_images(records: Sequence, size: Tuple[int, int], progress: bool = False,
                            desc: str = "calibration frames") -> np.ndarray:
    """``uint8 (N, H, W, 3)`` frames at the network resolution ``size = (W, H)`` (shared rule).

    Used for every frame set of an export (calibration, guide, validation); ``desc`` labels
    the progress bar.
    """
    W, H = int(size[0]), int(size[1])
    out = np.empty((len(records), H, W, 3), dtype=np.uint8)
    for i, r in enumerate(progress_bar(records, desc=desc, unit="img", enabled=progress)):
        load_and_preprocess(getattr(r, "image", r), (W, H), out=out[i])
    return out


def iter_batches(images: np.ndarray, batch: int, drop_last: bool = True) -> Iterator[np.ndarray]:
    """Consecutive batches of ``images (N, ...)``; a short last batch is dropped by default
    (a fixed-batch graph and TensorRT calibration need full batches)."""
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    n = len(images)
    stop = n - n % batch if drop_last else n
    for i in range(0, stop, batch):
        yield images[i:i + batch]


def calibration_info(names: Sequence[str], method: str, batch: int, source: str = "train") -> dict:
    """The manifest's ``calibration`` entry: ``frames, method, batch, frames_sha256, source``."""
    return {"frames": len(names), "method": method, "batch": int(batch),
            "frames_sha256": frame_list_sha256(names), "source": source}
