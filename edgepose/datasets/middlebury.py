"""Middlebury multi-view stereo reader (``<name>_par.txt``, e.g. the dino and temple sets).

``*_par.txt``: the first line is the number of images N, then one line per image::

    imgname.png k11 k12 k13 k21 k22 k23 k31 k32 k33 r11 r12 r13 r21 r22 r23 r31 r32 r33 t1 t2 t3

with the projection ``x ~ K (R X + t)``: ``R, t`` map world to camera (OpenCV axes). Our
pose is the camera centre ``-R^T t`` and the quaternion of ``R^T``. Units: metres.

The set has no 3D points and no split. ``README.txt`` states the object's bounding box
(two ``(x y z)`` triples); when present it is kept as ``extra["scene_box"]`` and gives each
camera's depth range for the synthetic reprojection points.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import DataFormatError
from ..geometry import pose_from_world_to_camera
from ..records import FrameRecord
from .base import ReaderOutput
from .images import ImageSizer
from .parsing import checked_finite, orthonormal_rotation, expect_columns, numbered_lines, parse_floats, read_text

COLUMNS = "imgname k11 k12 k13 k21 k22 k23 k31 k32 k33 r11 r12 r13 r21 r22 r23 r31 r32 r33 t1 t2 t3"
#: every Middlebury multi-view set is 640x480; used only when no image can be read
NATIVE_SIZE = (640, 480)
_TRIPLE = r"\(\s*([-+0-9.eE]+)[\s,]+([-+0-9.eE]+)[\s,]+([-+0-9.eE]+)\s*\)"


def find_par_file(root: Path) -> Path:
    found = sorted(Path(root).glob("*_par.txt"))
    if not found:
        raise DataFormatError("expected a *_par.txt camera file; found none", path=root)
    if len(found) > 1:
        raise DataFormatError(f"expected one *_par.txt file; found {len(found)}: "
                              f"{', '.join(p.name for p in found)}", path=root,
                              hint="put each Middlebury set in its own folder")
    return found[0]


def read_bounding_box(readme: Path) -> Optional[np.ndarray]:
    """``(2, 3)`` min/max corners from the README's 'bounding box' paragraph, or None."""
    if not readme.is_file():
        return None
    text = read_text(readme)
    at = text.lower().find("bounding box")
    if at < 0:
        return None
    m = re.findall(_TRIPLE, text[at:at + 400])
    if len(m) < 2:
        return None
    try:
        corners = np.array(m[:2], dtype=np.float64)
    except ValueError:
        raise DataFormatError(f"expected two (x y z) corners after 'bounding box'; found {m[:2]}", path=readme,
                              hint="fix the numbers or remove the paragraph (the default depth range is used)") from None
    box = checked_finite(corners, readme, None, "bounding box corners")
    return np.stack([box.min(0), box.max(0)])


def read(root: Path, sizer: ImageSizer) -> ReaderOutput:
    root = Path(root)
    par = find_par_file(root)
    lines = list(numbered_lines(par))
    if not lines:
        raise DataFormatError("empty camera file; expected the image count then one line per image", path=par)
    ln0, first = lines[0]
    try:
        n = int(first.split()[0])
    except ValueError:
        raise DataFormatError(f"expected the number of images on the first line; found {first[:40]!r}",
                              path=par, line=ln0) from None
    if n != len(lines) - 1:
        raise DataFormatError(f"the first line says {n} images; found {len(lines) - 1} image lines", path=par,
                              line=ln0)
    box = read_bounding_box(root / "README.txt")
    problems: List[str] = []
    if box is None:
        problems.append("no bounding box in README.txt: synthetic points use the default depth range")
    frames: List[FrameRecord] = []
    rows = []
    for ln, s in lines[1:]:
        tok = s.split()
        expect_columns(tok, 22, par, ln, COLUMNS)
        v = parse_floats(tok[1:], par, ln, COLUMNS)
        K = checked_finite(v[0:9], par, ln, "K").reshape(3, 3)
        if not (K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1])):
            raise DataFormatError(f"K is not [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0; "
                                  f"found {K.tolist()}", path=par, line=ln)
        R_cw = orthonormal_rotation(v[9:18].reshape(3, 3), par, ln, "world-to-camera rotation")
        t_cw = checked_finite(v[18:21], par, ln, "t")
        rows.append((R_cw, t_cw))
        img = root / tok[0]
        w, h = sizer.size(img, group="all", default=NATIVE_SIZE)
        extra = {"source_line": f"{par.name}:{ln}"}
        if box is not None:
            extra["scene_box"] = box
        frames.append(FrameRecord(image=img, position=None, rotation=None, K=K, width=w, height=h, sequence="",
                                  extra=extra))
    if frames:  # one vectorised conversion for all cameras
        P, Q = pose_from_world_to_camera(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))
        for f, p, q in zip(frames, P, Q):
            f.position, f.rotation = p, q
    return ReaderOutput(frames, has_split=False, problems=problems)
