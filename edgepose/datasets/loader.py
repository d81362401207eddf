"""``load_dataset``: detect the format, read it, apply the split policy, check the result."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import DataFormatError
from ..outputs import resolved
from ..records import SPLITS, Dataset
from . import cambridge, colmap, csv_format, middlebury, nerf, sevenscenes
from .checks import absurd_values, duplicate_images, outside_images, require_finite
from .detect import check_format_name, detect_format
from .images import ImageSizer, missing_message
from .scene import DEFAULT_DEPTH_RANGE, default_depth_range
from .split import SplitPolicy, apply_split_policy, resolve_policy

READERS = {
    "cambridge": cambridge.read,
    "7scenes": sevenscenes.read,
    "colmap": colmap.read,
    "nerf": nerf.read,
    "middlebury": middlebury.read,
    "csv": csv_format.read,
}


@dataclass
class LoadReport:
    """A dataset plus how it was read: the split policy used and the fatal errors found."""

    dataset: Dataset
    policy: SplitPolicy
    errors: List[str] = field(default_factory=list)
    missing: List[Path] = field(default_factory=list)


def read_dataset(root, format: Optional[str] = None, split_policy=None, check_images: bool = True,
                 allow_outside: bool = False) -> LoadReport:
    """Like :func:`load_dataset` but returns fatal findings (missing images, empty splits,
    duplicate images, train/test leaks, images outside the folder) in ``LoadReport.errors``
    instead of raising, so ``edgepose-inspect`` can show them all. Malformed files and
    non-finite numbers still raise DataFormatError at the first bad row."""
    root = resolved(Path(root).expanduser(), "DATA")  # links followed once; a loop or a too-long name is a message
    if not root.is_dir():
        raise DataFormatError("expected a dataset folder; it does not exist or is not a folder", path=root)
    fmt = check_format_name(format) if format else detect_format(root)
    sizer = ImageSizer(check_images)
    out = READERS[fmt](root, sizer)
    if not out.frames:
        raise DataFormatError(f"no frames found in this {fmt} dataset", path=root,
                              hint="see `edgepose-inspect --help` for the expected layout")
    require_finite(out.frames)
    outside = outside_images(out.frames, root, allowed=allow_outside)
    policy = resolve_policy(split_policy, out.has_split)
    apply_split_policy(out.frames, policy, root, out.has_split)
    problems = list(out.problems) + absurd_values(out.frames)
    if allow_outside:
        problems += outside
    _attach_depth_ranges(out.frames, problems)
    ds = Dataset(root=root, format=fmt, frames=out.frames, problems=problems)
    report = LoadReport(ds, policy, missing=list(sizer.missing))
    report.errors += duplicate_images(out.frames) + ([] if allow_outside else outside)
    if sizer.missing:
        report.errors.append(missing_message(sizer.missing, root))
    counts = ds.counts()
    for s in SPLITS:
        if counts[s] == 0:
            report.errors.append(f"the {s} split is empty (split policy {policy}; {len(ds.frames)} frames in all): "
                                 "fix the split files or pass another --split-policy")
    return report


def load_dataset(root, format: Optional[str] = None, split_policy=None, check_images: bool = True,
                 allow_outside: bool = False) -> Dataset:
    """Read a dataset folder into a :class:`~edgepose.records.Dataset` in edgepose's conventions.

    Args:
        root: the dataset folder.
        format: one of ``cambridge, 7scenes, colmap, nerf, middlebury, csv``; detected from
            the files when None (:mod:`edgepose.datasets.detect`).
        split_policy: ``"every:K"``, ``"sequence:NAME1,NAME2"`` or ``"given"``; None keeps the
            format's own split, or ``every:5`` for formats without one
            (:mod:`edgepose.datasets.split`).
        check_images: require every image to exist (and read its size from the file).
        allow_outside: accept image paths that leave ``root`` (``../x.png``, absolute paths).

    Raises:
        DataFormatError: malformed files or NaN/infinite numbers (with file:line), missing
            images (the first few and the count), an empty train or test split, an image listed
            twice or in both splits, an image outside ``root`` without ``allow_outside``.
        ConfigError: an unknown format or split policy.
    """
    report = read_dataset(root, format=format, split_policy=split_policy, check_images=check_images,
                          allow_outside=allow_outside)
    if report.errors:
        raise DataFormatError("; ".join(report.errors), path=report.dataset.root,
                              hint="run `edgepose-inspect DATA` to see every problem")
    return report.dataset


def _attach_depth_ranges(frames, problems: List[str]) -> None:
    """Give frames without points, depth or a scene box the scene's default depth range."""
    bare = [f for f in frames if (f.points is None or not len(f.points)) and f.depth is None
            and "scene_box" not in f.extra and "depth_range" not in f.extra]
    if not bare:
        return
    P = np.stack([f.position for f in frames])
    Q = np.stack([f.rotation for f in frames])
    with np.errstate(over="ignore", invalid="ignore"):  # absurd positions are reported, not fatal
        near, far, converged = default_depth_range(P, Q)
    if not (np.isfinite(near) and np.isfinite(far)):  # positions so large that the distances overflow
        (near, far), converged = DEFAULT_DEPTH_RANGE, False
        problems.append(f"camera distances overflow: synthetic points use the default depth range "
                        f"{near:g}..{far:g}")
    for f in bare:
        f.extra["depth_range"] = (near, far)
    how = "the cameras' common look-at point" if converged else "the camera spread (axes do not converge)"
    problems.append(f"{len(bare)} frame(s) have no 3D points or depth: the reprojection loss will use synthetic "
                    f"frustum points at depths {near:.3g}..{far:.3g} (from {how})")
