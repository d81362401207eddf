"""VisualSFM ``.nvm`` (``NVM_V3``) reader, as shipped by Cambridge Landmarks.

Layout::

    NVM_V3
    <blank>
    N_cams
    <name> <focal> <qw qx qy qz: world-to-camera> <cx cy cz: camera centre> <radial> 0   (N lines)
    <blank>
    N_points
    <x y z> <r g b> <n_meas> (<image_index> <feature_index> <u> <v>) * n_meas

Camera axes are x right, y down, z forward (``x_cam = R (X - C)``), the same as ours.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List

import numpy as np

from ..errors import DataFormatError
from ..geometry import quat_conjugate
from .parsing import checked_quaternion, expect_columns, numbered_lines, parse_floats

CAMERA_COLUMNS = "name focal qw qx qy qz cx cy cz radial 0"
POINT_COLUMNS = "x y z r g b n_measurements (image_index feature_index u v)*n"


@dataclass
class NvmCamera:
    name: str
    focal: float
    position: np.ndarray   # (3,) camera centre, world
    rotation: np.ndarray   # (4,) camera-to-world wxyz
    radial: float
    line: int


@dataclass
class NvmModel:
    cameras: List[NvmCamera]
    points: np.ndarray                 # (P, 3)
    visible: Dict[int, np.ndarray]     # camera index -> indices into points

    def by_name(self) -> Dict[str, int]:
        return {c.name: i for i, c in enumerate(self.cameras)}


def read_nvm(path: Path) -> NvmModel:
    """Parse a single-model NVM_V3 file. Malformed rows raise DataFormatError with file:line."""
    path = Path(path)
    lines = list(numbered_lines(path, skip_comments=False))
    if not lines or not lines[0][1].startswith("NVM_V3"):
        found = lines[0][1][:40] if lines else "an empty file"
        raise DataFormatError(f"expected the header 'NVM_V3'; found {found!r}", path=path,
                              line=lines[0][0] if lines else 1)
    i = 1
    # NVM_V3 may carry a calibration line "FixedK fx cx fy cy" on the header line; ignored
    n_cams = _count(lines, i, path, "number of cameras")
    i += 1
    cameras: List[NvmCamera] = []
    for _ in range(n_cams):
        if i >= len(lines):
            raise DataFormatError(f"file ends after {len(cameras)} of {n_cams} cameras", path=path)
        ln, s = lines[i]
        tok = s.split()
        expect_columns(tok, 10, path, ln, CAMERA_COLUMNS, at_least=True)
        v = parse_floats(tok[1:10], path, ln, CAMERA_COLUMNS)
        if not v[0] > 0:
            raise DataFormatError(f"expected a positive focal length (pixels) in column 2; found {tok[1]}",
                                  path=path, line=ln)
        q_cw = checked_quaternion(v[1:5], path, ln, "world-to-camera quaternion")
        if PurePosixPath(tok[0].replace("\\", "/")).name in ("", ".", ".."):
            raise DataFormatError(f"expected an image file name in column 1; found {tok[0]!r} (a folder)",
                                  path=path, line=ln)
        cameras.append(NvmCamera(tok[0], float(v[0]), v[5:8].copy(), quat_conjugate(q_cw) * 1.0,
                                 float(v[8]), ln))
        i += 1
    points = np.zeros((0, 3))
    visible: Dict[int, List[int]] = {}
    if i < len(lines):
        n_pts = _count(lines, i, path, "number of points")
        if n_pts > len(lines) - i - 1:  # one line per point: refuse before allocating
            raise DataFormatError(f"the file declares {n_pts} points but has {len(lines) - i - 1} lines after "
                                  "the count", path=path, line=lines[i][0], hint="the file is truncated or corrupt")
        i += 1
        pts = np.empty((n_pts, 3))
        for k in range(n_pts):
            if i >= len(lines):
                raise DataFormatError(f"file ends after {k} of {n_pts} points", path=path)
            ln, s = lines[i]
            tok = s.split()
            expect_columns(tok, 7, path, ln, POINT_COLUMNS, at_least=True)
            try:
                n_meas = int(tok[6])
            except ValueError:
                raise DataFormatError(f"expected an integer measurement count in column 7; found {tok[6]!r}",
                                      path=path, line=ln) from None
            expect_columns(tok, 7 + 4 * n_meas, path, ln, POINT_COLUMNS)
            pts[k] = parse_floats(tok[:3], path, ln, POINT_COLUMNS)
            try:
                cams = [int(c) for c in tok[7::4]]
            except ValueError:
                raise DataFormatError(f"expected integer image indices in the measurements ({POINT_COLUMNS})",
                                      path=path, line=ln) from None
            if cams and not (0 <= min(cams) and max(cams) < n_cams):
                bad = next(c for c in cams if not 0 <= c < n_cams)
                raise DataFormatError(f"measurement refers to camera {bad}; expected 0..{n_cams - 1}",
                                      path=path, line=ln)
            for cam in cams:
                visible.setdefault(cam, []).append(k)
            i += 1
        points = pts
    vis = {c: np.unique(np.asarray(idx, dtype=np.int64)) for c, idx in visible.items()}
    return NvmModel(cameras, points, vis)


def _count(lines, i, path, what) -> int:
    if i >= len(lines):
        raise DataFormatError(f"file ends before the {what}", path=path)
    ln, s = lines[i]
    try:
        n = int(s.split()[0])
    except ValueError:
        raise DataFormatError(f"expected the {what} (an integer); found {s[:40]!r}", path=path, line=ln) from None
    if n < 0:
        raise DataFormatError(f"expected a non-negative {what}; found {n}", path=path, line=ln)
    return n
