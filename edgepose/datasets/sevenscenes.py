"""Microsoft 7-Scenes reader (also the layout of edgepose's built-in synthetic scene).

Layout under the scene root::

    seq-01/frame-000000.color.png   RGB image
    seq-01/frame-000000.depth.png   uint16 depth in millimetres; 0 and 65535 are invalid
    seq-01/frame-000000.pose.txt    4x4 camera-to-world (T_world_from_camera), whitespace separated
    TrainSplit.txt / TestSplit.txt  one line per sequence: ``sequence1`` -> ``seq-01``
    intrinsics.txt                  OPTIONAL edgepose extension: 3 lines, the 3x3 K in pixels
                                    of the stored colour images (depth registered to colour)

The camera axes are OpenCV's already, so poses are read as they are. 7-Scenes ships no
intrinsics: without ``intrinsics.txt`` the colour camera is taken as f = 525 px, principal
point at the image centre, for 640x480 and scaled to the stored size. The depth camera of
the original data is a different, unregistered camera (f = 585, c = (320, 240)); visible
points back-projected from it are approximate (good enough for the reprojection loss,
which only needs points the camera sees).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import DataFormatError
from ..records import FrameRecord
from .base import ReaderOutput
from .images import ImageSizer
from .parsing import checked_finite, checked_rotation, numbered_lines, parse_floats, pinhole_K

SPLIT_FILES = {"train": "TrainSplit.txt", "test": "TestSplit.txt"}
INTRINSICS_FILE = "intrinsics.txt"
NATIVE_SIZE = (640, 480)
COLOR_F = 525.0
DEPTH_K = pinhole_K(585.0, 585.0, 320.0, 240.0)
DEPTH_SCALE_M = 1e-3
DEPTH_INVALID = (0, 65535)
SEQ_RE = re.compile(r"^seq-(\d+)$")
POSE_SUFFIX = ".pose.txt"


def sequence_dirs(root: Path) -> List[Path]:
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and SEQ_RE.match(p.name))


def read_pose(path: Path):
    """``(position (3,), rotation (4,))`` of a 4x4 camera-to-world pose file."""
    rows = list(numbered_lines(path))
    if len(rows) != 4:
        raise DataFormatError(f"expected 4 rows of a 4x4 camera-to-world matrix; found {len(rows)}", path=path)
    M = np.stack([_row(path, ln, s) for ln, s in rows])
    if not np.allclose(M[3], [0, 0, 0, 1], atol=1e-6):
        raise DataFormatError(f"expected the last row 0 0 0 1; found {M[3].tolist()}", path=path, line=rows[3][0])
    rot = checked_rotation(M[:3, :3], path, rows[0][0], "camera-to-world rotation")
    pos = checked_finite(M[:3, 3], path, rows[0][0], "translation")
    return pos, rot


def _row(path, ln, s):
    tok = s.split()
    if len(tok) != 4:
        raise DataFormatError(f"expected 4 numbers per row of the 4x4 matrix; found {len(tok)}", path=path, line=ln)
    return parse_floats(tok, path, ln, "4 numbers")


def read_intrinsics(path: Path) -> np.ndarray:
    """The optional ``intrinsics.txt``: a 3x3 K in pixels, 3 lines of 3 numbers."""
    rows = list(numbered_lines(path))
    if len(rows) != 3:
        raise DataFormatError(f"expected 3 lines of a 3x3 K; found {len(rows)}", path=path)
    K = []
    for ln, s in rows:
        tok = s.split()
        if len(tok) != 3:
            raise DataFormatError(f"expected 3 numbers per line of K; found {len(tok)}", path=path, line=ln)
        K.append(parse_floats(tok, path, ln, "3 numbers"))
    K = np.stack(K)
    if not (K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1]) and K[1, 0] == 0):
        raise DataFormatError(f"expected K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0; found {K.tolist()}",
                              path=path)
    return K


def read_split_file(path: Path) -> List[str]:
    """Sequence folder names (``seq-01``) of a ``TrainSplit.txt`` / ``TestSplit.txt``."""
    out = []
    for ln, s in numbered_lines(path):
        m = re.match(r"^sequence\s*(\d+)$", s, re.IGNORECASE)
        if not m:
            raise DataFormatError(f"expected a line like 'sequence1'; found {s[:40]!r}", path=path, line=ln)
        out.append(f"seq-{int(m.group(1)):02d}")
    return out


def read(root: Path, sizer: ImageSizer) -> ReaderOutput:
    root = Path(root)
    problems: List[str] = []
    seqs = sequence_dirs(root)
    if not seqs:
        raise DataFormatError("expected seq-XX folders with frame-NNNNNN.pose.txt files; found none", path=root)
    split_of: Dict[str, str] = {}
    has_split = all((root / f).is_file() for f in SPLIT_FILES.values())
    if has_split:
        for split, fname in SPLIT_FILES.items():
            for name in read_split_file(root / fname):
                if name in split_of and split_of[name] != split:
                    raise DataFormatError(f"{name} is listed in both split files", path=root / fname)
                split_of[name] = split
        unknown = sorted(set(split_of) - {s.name for s in seqs})
        if unknown:
            problems.append(f"split files name sequences that are not on disk: {', '.join(unknown)}")
    elif any((root / f).is_file() for f in SPLIT_FILES.values()):
        problems.append("only one of TrainSplit.txt / TestSplit.txt exists: ignored, the split policy decides")
    K_file: Optional[np.ndarray] = read_intrinsics(root / INTRINSICS_FILE) if (root / INTRINSICS_FILE).is_file() else None
    frames: List[FrameRecord] = []
    unsplit = []
    for seq in seqs:
        if has_split and seq.name not in split_of:
            unsplit.append(seq.name)
            continue
        for pose_path in sorted(seq.glob("frame-*" + POSE_SUFFIX)):
            stem = pose_path.name[: -len(POSE_SUFFIX)]
            img = seq / f"{stem}.color.png"
            pos, rot = read_pose(pose_path)
            w, h = sizer.size(img, group="all", default=NATIVE_SIZE)
            if K_file is not None:
                K = K_file.copy()
                depth_K, depth_ref = K_file, (w, h)
            else:
                s = w / NATIVE_SIZE[0]
                K = pinhole_K(COLOR_F * s, COLOR_F * h / NATIVE_SIZE[1], w / 2.0, h / 2.0)
                depth_K, depth_ref = DEPTH_K, NATIVE_SIZE
            depth = seq / f"{stem}.depth.png"
            extra = {"depth_K": depth_K, "depth_K_size": depth_ref, "depth_scale_m": DEPTH_SCALE_M,
                     "depth_invalid": DEPTH_INVALID} if depth.is_file() else {}
            extra["source_line"] = f"{seq.name}/{pose_path.name}"
            frames.append(FrameRecord(image=img, position=pos, rotation=rot, K=K, width=w, height=h,
                                      split=split_of.get(seq.name, "train"),
                                      depth=depth if depth.is_file() else None, sequence=seq.name,
                                      extra=extra))
    if unsplit:
        problems.append(f"sequences in neither split file were skipped: {', '.join(unsplit)}")
    if K_file is None:
        problems.append(f"no {INTRINSICS_FILE}: assuming f = {COLOR_F:g} px, principal point at the centre "
                        f"(7-Scenes default, scaled from {NATIVE_SIZE[0]}x{NATIVE_SIZE[1]})")
    if frames and not any(f.depth is not None for f in frames):
        problems.append("no depth maps (*.depth.png): the reprojection loss falls back to synthetic points")
    return ReaderOutput(frames, has_split=has_split, problems=problems)
