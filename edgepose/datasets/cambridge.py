"""Cambridge Landmarks reader (``dataset_train.txt`` / ``dataset_test.txt`` + ``reconstruction.nvm``).

List files: 3 header lines (``Visual Landmark Dataset V1``, ``ImageFile, Camera Position
[X Y Z W P Q R]``, blank), then ``<image> X Y Z W P Q R`` per row. ``XYZ`` is the camera
centre in the world (metres); ``WPQR`` is the **world-to-camera** rotation, scalar first.
Our camera-to-world quaternion is therefore its conjugate.

Intrinsics come from ``reconstruction.nvm`` (focal length per image, principal point at
the image centre; NVM names end in ``.jpg`` where the lists say ``.png``). Its 3D points
and their measurements give each frame's visible points. Rows whose camera centre is more
than :data:`MAX_POSITION_M` from the origin are known outliers in some scenes and are
dropped with a note.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ..errors import DataFormatError
from ..geometry import quat_conjugate
from ..records import FrameRecord
from .base import ReaderOutput
from .images import ImageSizer
from .nvm import read_nvm
from .parsing import checked_finite, checked_quaternion, expect_columns, parse_floats, pinhole_K, read_text, sequence_of

LIST_FILES = {"train": "dataset_train.txt", "test": "dataset_test.txt"}
NVM_FILE = "reconstruction.nvm"
HEADER = ("Visual Landmark Dataset V1", "ImageFile, Camera Position [X Y Z W P Q R]")
COLUMNS = "ImageFile X Y Z W P Q R"
#: Cambridge frames are 1920x1080; the NVM focal lengths are in those pixels
NATIVE_SIZE = (1920, 1080)
MAX_POSITION_M = 1000.0


def read_list(path: Path):
    """Rows ``(line, name, position (3,), rotation (4,) camera-to-world)`` of a list file."""
    text = read_text(path).splitlines()
    if len(text) < 2 or text[0].strip() != HEADER[0]:
        found = text[0].strip()[:40] if text else "an empty file"
        raise DataFormatError(f"expected the header line {HEADER[0]!r}; found {found!r}", path=path, line=1,
                              hint="Cambridge list files start with 3 header lines")
    rows = []
    for ln, raw in enumerate(text[3:], start=4):
        s = raw.strip()
        if not s:
            continue
        tok = s.split()
        expect_columns(tok, 8, path, ln, COLUMNS)
        v = parse_floats(tok[1:], path, ln, COLUMNS)
        pos = checked_finite(v[:3], path, ln, "camera position")
        q_cw = checked_quaternion(v[3:7], path, ln, "WPQR (world-to-camera) quaternion")
        rows.append((ln, tok[0], pos, quat_conjugate(q_cw) * 1.0))
    return rows


def read(root: Path, sizer: ImageSizer) -> ReaderOutput:
    root = Path(root)
    nvm_path = root / NVM_FILE
    if not nvm_path.is_file():
        raise DataFormatError(f"expected {NVM_FILE} next to the list files (it holds the focal lengths "
                              "and 3D points); found none", path=root,
                              hint="it ships in every Cambridge Landmarks scene archive")
    model = read_nvm(nvm_path)
    index = {}
    for i, cam in enumerate(model.cameras):
        index[str(Path(cam.name).with_suffix(".png")).replace("\\", "/")] = i
    frames: List[FrameRecord] = []
    problems: List[str] = []
    dropped, no_cam = [], []
    for split, fname in LIST_FILES.items():
        path = root / fname
        if not path.is_file():
            problems.append(f"{fname} is missing: no {split} frames from the dataset's own split")
            continue
        for ln, name, pos, rot in read_list(path):
            if float(np.max(np.abs(pos))) > MAX_POSITION_M or np.linalg.norm(pos) > MAX_POSITION_M:  # no overflow
                dropped.append(f"{fname}:{ln}")
                continue
            ci = index.get(name)
            if ci is None:
                no_cam.append(f"{fname}:{ln} ({name})")
                continue
            cam = model.cameras[ci]
            img = root / name
            w, h = sizer.size(img, group="all", default=NATIVE_SIZE)
            K = pinhole_K(cam.focal, cam.focal, NATIVE_SIZE[0] / 2, NATIVE_SIZE[1] / 2)
            if (w, h) != NATIVE_SIZE:  # images resized by the user: scale the NVM intrinsics
                K[0, :] *= w / NATIVE_SIZE[0]
                K[1, :] *= h / NATIVE_SIZE[1]
            vis = model.visible.get(ci)
            pts = model.points[vis] if vis is not None and len(vis) else None
            frames.append(FrameRecord(image=img, position=pos, rotation=rot, K=K, width=w, height=h,
                                      split=split, points=pts, sequence=sequence_of(name),
                                      extra={"source_line": f"{fname}:{ln}", "radial": cam.radial}))
    if no_cam:
        raise DataFormatError(f"{len(no_cam)} frame(s) have no camera in {NVM_FILE} (looked up by name "
                              f"with .jpg -> .png): {', '.join(no_cam[:5])}", path=nvm_path,
                              hint="use the reconstruction.nvm of the same scene")
    if dropped:
        problems.append(f"dropped {len(dropped)} row(s) with |position| > {MAX_POSITION_M:g} m "
                        f"(known outliers): {', '.join(dropped[:5])}")
    if frames and all(f.points is None for f in frames):
        problems.append(f"{NVM_FILE} has no 3D points: the reprojection loss falls back to synthetic points")
    return ReaderOutput(frames, has_split=True, problems=problems)
