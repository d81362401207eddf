"""Checks over all frames of a dataset, after its reader ran (every format alike).

* :func:`require_finite` -- no NaN or infinite position, rotation, K or point reaches
  training, whatever the reader (each reader refuses them at file:line already; this is
  the net under all of them).
* :func:`outside_images` -- image paths that leave the dataset folder (``../../x.png``,
  absolute paths, and symbolic links of the file or of its folders: each path is resolved
  once, to its real path, and judged by the same rule). A dataset is a folder: an image outside it is usually a mistake or a
  file that is not the user's to read, so it needs ``allow_outside=True``
  (``--allow-outside-images``).
* :func:`duplicate_images` -- the same image file listed twice (two poses for one image;
  the same file is the same device and inode, so a link or hard link to a listed image counts),
  and the worse case, the same image in train and test (a leak: test metrics would be
  measured on a training frame).
* :func:`absurd_values` -- finite but implausible magnitudes (positions or points farther
  than :data:`ABSURD_DISTANCE` file units from the origin, focal lengths outside
  :data:`FOCAL_RANGE` image widths, principal points far outside the image). These are
  problems ``edgepose-inspect`` shows, not errors: UTM coordinates are real, but float32
  training loses centimetres there.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import DataFormatError
from ..records import FrameRecord
from .parsing import list_preview

#: file units from the origin beyond which a camera or point is reported (float32 keeps ~6 cm at 1e6)
ABSURD_DISTANCE = 1e6
#: plausible focal lengths, in image widths (0.05: a > 170 degree view; 1000: a 0.06 degree view)
FOCAL_RANGE = (0.05, 1000.0)


def where(frame: FrameRecord) -> str:
    """The frame's source (``file:line``) or, failing that, its image path."""
    return str(frame.extra.get("source_line") or frame.image)


def require_finite(frames: Sequence[FrameRecord]) -> None:
    """Raise DataFormatError naming the first frame with a NaN or infinite number."""
    for f in frames:
        for name, value in (("position", f.position), ("rotation", f.rotation), ("K", f.K), ("points", f.points)):
            if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
                raise DataFormatError(f"{where(f)}: the frame's {name} has NaN or infinite entries", path=f.image,
                                      hint="fix or remove this row")


def _key(image) -> str:
    """The image's real path: ``..`` collapsed and every symbolic link (of the file and of its
    folders) followed, so a link that leaves the dataset leaves it, and a link to another
    listed image is that image."""
    return os.path.realpath(str(image))


def _identity(image) -> Tuple:
    """What makes two listed images one file: the same device and inode (hard links, links),
    else the same real path (files not on disk)."""
    try:
        st = os.stat(str(image))
    except (OSError, ValueError):
        return ("path", _key(image))
    return ("inode", st.st_dev, st.st_ino)


def outside_images(frames: Sequence[FrameRecord], root: Path, allowed: bool = False) -> List[str]:
    """One message (or none) listing the frames whose image path leaves ``root``."""
    base = _key(root)
    bad = [f"{where(f)} ({f.image}" + (f" -> {_key(f.image)}" if os.path.islink(str(f.image)) else "") + ")"
           for f in frames if os.path.commonpath([base, _key(f.image)]) != base]
    if not bad:
        return []
    what = f"{len(bad)} image path(s) leave the dataset folder: {list_preview(bad, 3)}"
    if allowed:
        return [what + " (allowed by --allow-outside-images)"]
    return [what + "; pass --allow-outside-images (allow_outside=True) if that is intended"]


def duplicate_images(frames: Sequence[FrameRecord]) -> List[str]:
    """Messages for images listed more than once: leaks (train and test) first, then duplicates."""
    seen: Dict[Tuple, List[FrameRecord]] = {}
    for f in frames:
        seen.setdefault(_identity(f.image), []).append(f)
    leaks, dups = [], []
    for group in seen.values():
        if len(group) < 2:
            continue
        entry = f"{group[0].image} ({', '.join(where(f) for f in group[:3])})"
        (leaks if len({f.split for f in group}) > 1 else dups).append(entry)
    return counted([(leaks, "image(s) are in both the train and the test split (a leak: test metrics would be "
                            "measured on training frames)"),
                    (dups, "image(s) are listed more than once (two poses for one image)")])


def absurd_values(frames: Sequence[FrameRecord]) -> List[str]:
    """Problems for finite but implausible positions, points and intrinsics."""
    far, far_pts, focal, centre = [], [], [], []
    for f in frames:
        if float(np.max(np.abs(f.position))) > ABSURD_DISTANCE:
            far.append(where(f))
        if f.points is not None and len(f.points) and not f.points_synthetic \
                and float(np.max(np.abs(f.points))) > ABSURD_DISTANCE:
            far_pts.append(where(f))
        K = np.asarray(f.K, dtype=np.float64)
        fx, fy = K[0, 0] / f.width, K[1, 1] / f.width
        if not (FOCAL_RANGE[0] <= fx <= FOCAL_RANGE[1] and FOCAL_RANGE[0] <= fy <= FOCAL_RANGE[1]):
            focal.append(where(f))
        if not (-f.width <= K[0, 2] <= 2 * f.width and -f.height <= K[1, 2] <= 2 * f.height):
            centre.append(where(f))
    return counted([
        (far, f"camera position(s) are more than {ABSURD_DISTANCE:g} file units from the origin (absurd, or "
              "geographic coordinates: float32 training loses centimetres there; subtract a local origin)"),
        (far_pts, f"frame(s) see 3D points more than {ABSURD_DISTANCE:g} file units from the origin"),
        (focal, f"frame(s) have a focal length outside {FOCAL_RANGE[0]:g}..{FOCAL_RANGE[1]:g} image widths "
                "(check the units of fx, fy)"),
        (centre, "frame(s) have a principal point more than one image size outside the image (check cx, cy)"),
    ])


def counted(findings) -> List[str]:
    """``"N what: a, b, c (and k more)"`` for each ``(items, what)`` with items."""
    return [f"{len(items)} {what}: {list_preview(items, 3)}" for items, what in findings if items]
