"""NeRF / instant-ngp / nerfstudio ``transforms.json`` reader.

``transform_matrix`` is a 4x4 camera-to-world matrix in the **OpenGL** camera convention
(x right, y up, z backward: the camera looks down its -z). Ours is OpenCV (y down, z
forward), so the rotation's y and z columns are negated: ``R_cv = R_gl @ diag(1, -1, -1)``;
the camera centre is the translation column.

Intrinsics: ``fl_x``/``fl_y``/``cx``/``cy`` (pixels, top level or per frame) or
``camera_angle_x`` (radians, horizontal field of view: ``fx = W / 2 / tan(angle / 2)``,
``fy = fx`` unless ``camera_angle_y``). ``w``/``h`` give the size, else it is read from the
image. Distortion terms (``k1 k2 k3 k4 p1 p2``) are kept in ``extra["distortion"]``.
``file_path`` may omit the extension (Blender scenes): ``.png``, ``.jpg``, ``.jpeg`` are tried.

Splits: ``transforms_train.json`` + ``transforms_test.json`` (Blender layout) give them
(``transforms_val.json`` frames join train); a single ``transforms.json`` has none.
Positions are in the file's units (often not metres).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import DataFormatError
from ..records import FrameRecord
from .base import ReaderOutput
from .images import ImageSizer
from .parsing import checked_finite, checked_K, checked_rotation, checked_size, read_text, scale_K

SINGLE = "transforms.json"
SPLIT_FILES = (("train", "transforms_train.json"), ("test", "transforms_test.json"), ("train", "transforms_val.json"))
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
GL_TO_CV = np.diag([1.0, -1.0, -1.0])
DIST_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def load_json(path: Path) -> dict:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except RecursionError:
        raise DataFormatError("invalid JSON: nested too deeply", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise DataFormatError("expected a JSON object with a 'frames' list", path=path)
    return data


def resolve_image(base: Path, file_path: str) -> Path:
    """The image of ``file_path`` (relative to the JSON's folder); adds an extension if missing."""
    p = base / file_path
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".bmp", ".webp"):
        return p
    for ext in IMAGE_EXTS:
        if p.with_name(p.name + ext).is_file():
            return p.with_name(p.name + ext)
    return p.with_name(p.name + ".png")


def gl_to_cv_pose(T_gl: np.ndarray, path: Path, where: str):
    """``(position (3,), rotation (4,))`` of an OpenGL camera-to-world 4x4."""
    T = np.asarray(T_gl, dtype=np.float64)
    checked_finite(T.ravel(), path, None, f"{where} transform_matrix")
    if T.shape == (4, 4) and not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6):
        raise DataFormatError(f"{where}: expected the last row of transform_matrix to be 0 0 0 1; found "
                              f"{T[3].tolist()}", path=path, hint="a camera-to-world matrix has no projective part")
    pos = checked_finite(T[:3, 3], path, None, f"{where} translation")
    rot = checked_rotation(T[:3, :3] @ GL_TO_CV, path, None, f"{where} transform_matrix rotation")
    return pos, rot


def _frame_K(meta: dict, fr: dict, size, path: Path, where: str):
    g = {**meta, **{k: v for k, v in fr.items() if k != "transform_matrix"}}
    w, h = size
    try:
        if "fl_x" in g:
            fx = _number(g["fl_x"])
            fy = _number(g.get("fl_y", fx))
        elif "camera_angle_x" in g:
            fx = 0.5 * w / math.tan(0.5 * _angle(g["camera_angle_x"], "camera_angle_x", path, where))
            fy = (0.5 * h / math.tan(0.5 * _angle(g["camera_angle_y"], "camera_angle_y", path, where))
                  if "camera_angle_y" in g else fx)
        else:
            raise DataFormatError(f"{where}: expected 'fl_x' (pixels) or 'camera_angle_x' (radians); found neither",
                                  path=path)
        cx = _number(g.get("cx", w / 2.0))
        cy = _number(g.get("cy", h / 2.0))
        dist = {k: _number(g[k]) for k in DIST_KEYS if k in g}
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataFormatError(f"{where}: intrinsics must be numbers ({exc})", path=path) from None
    checked_finite(np.array(list(dist.values()), dtype=np.float64), path, None, f"{where} distortion")
    return checked_K(fx, fy, cx, cy, path, None, f"{where} intrinsics"), dist


def _number(v) -> float:
    """A JSON number (not a bool, string or list) as float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number; found {str(v)[:40]!r}")
    return float(v)


def _matrix(v) -> Optional[np.ndarray]:
    """A list of rows of JSON numbers as float64, or ``None``: booleans (``true`` is not 1.0),
    strings and nulls are not matrix entries."""
    if not (isinstance(v, list) and all(isinstance(r, list) for r in v)):
        return None
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for r in v for x in r):
        return None
    try:
        return np.asarray(v, dtype=np.float64)
    except (ValueError, OverflowError):  # ragged rows
        return None


def _angle(v, key: str, path: Path, where: str) -> float:
    """A field of view in radians, strictly between 0 and pi."""
    a = _number(v)
    if not 0.0 < a < math.pi:
        raise DataFormatError(f"{where}: expected {key} (field of view in radians) between 0 and pi; found {v!r}",
                              path=path, hint="the field of view of a pinhole camera is in (0, pi) radians")
    return a


def _read_file(path: Path, split: str, sizer: ImageSizer, frames: List[FrameRecord]) -> None:
    meta = load_json(path)
    base = path.parent
    for i, fr in enumerate(meta["frames"]):
        where = f"frames[{i}]"
        if not isinstance(fr, dict) or not isinstance(fr.get("file_path"), str) or "transform_matrix" not in fr:
            raise DataFormatError(f"{where}: expected an object with 'file_path' (a string) and "
                                  "'transform_matrix'", path=path)
        T = _matrix(fr["transform_matrix"])
        if T is None or T.shape not in ((4, 4), (3, 4)):
            raise DataFormatError(f"{where}: expected transform_matrix as a 4x4 (or 3x4) list of numbers; "
                                  f"found {fr['transform_matrix']!r:.60}", path=path)
        img = resolve_image(base, fr["file_path"])
        declared = None
        wv, hv = fr.get("w", meta.get("w")), fr.get("h", meta.get("h"))
        if wv is not None and hv is not None:
            declared = checked_size(wv, hv, path, None, f"{where} 'w' and 'h'")
        size = sizer.size(img, declared=declared, group=path)
        if size is None:
            raise DataFormatError(f"{where}: image size unknown: no 'w'/'h' and {img.name} is not readable",
                                  path=path, hint="add \"w\" and \"h\" to the JSON or provide the images")
        pos, rot = gl_to_cv_pose(T, path, where)
        K, dist = _frame_K(meta, fr, declared or size, path, where)
        if declared is not None and size != declared:
            K = scale_K(K, declared, size)
        frames.append(FrameRecord(image=img, position=pos, rotation=rot, K=K, width=size[0], height=size[1],
                                  split=split, sequence="",
                                  extra={"distortion": dist, "source_line": f"{path.name} {where}"}))


def read(root: Path, sizer: ImageSizer) -> ReaderOutput:
    root = Path(root)
    frames: List[FrameRecord] = []
    problems: List[str] = []
    has_split = (root / "transforms_train.json").is_file() and (root / "transforms_test.json").is_file()
    if has_split:
        for split, name in SPLIT_FILES:
            if (root / name).is_file():
                _read_file(root / name, split, sizer, frames)
        if (root / "transforms_val.json").is_file():
            problems.append("transforms_val.json frames were added to the train split")
    elif (root / SINGLE).is_file():
        _read_file(root / SINGLE, "train", sizer, frames)
    else:
        raise DataFormatError(f"expected {SINGLE} or transforms_train.json + transforms_test.json; found neither",
                              path=root)
    if any(any(abs(v) > 1e-12 for v in f.extra["distortion"].values()) for f in frames):
        problems.append("the cameras have lens distortion: K holds the pinhole part only")
    return ReaderOutput(frames, has_split=has_split, problems=problems)
