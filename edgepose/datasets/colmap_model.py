"""COLMAP sparse model files, text (``*.txt``) and binary (``*.bin``).

``cameras``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]``; ``images``: two lines per image,
``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` (world-to-camera, Hamilton, OpenCV axes)
then ``POINTS2D[] as (X, Y, POINT3D_ID)``; ``points3D``: ``POINT3D_ID X Y Z R G B ERROR
TRACK[] as (IMAGE_ID, POINT2D_IDX)``. Binary files hold the same fields little-endian.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ..errors import DataFormatError
from .parsing import (checked_finite, checked_quaternion, checked_size, expect_columns, numbered_lines, parse_floats,
                      parse_int, read_bytes, read_text)

#: model name -> (binary id, number of params, supported by edgepose)
CAMERA_MODELS: Dict[str, Tuple[int, int]] = {
    "SIMPLE_PINHOLE": (0, 3), "PINHOLE": (1, 4), "SIMPLE_RADIAL": (2, 4), "RADIAL": (3, 5),
    "OPENCV": (4, 8), "OPENCV_FISHEYE": (5, 8), "FULL_OPENCV": (6, 12), "FOV": (7, 5),
    "SIMPLE_RADIAL_FISHEYE": (8, 4), "RADIAL_FISHEYE": (9, 5), "THIN_PRISM_FISHEYE": (10, 12),
}
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
MODEL_BY_ID = {v[0]: k for k, v in CAMERA_MODELS.items()}

CAMERA_COLUMNS = "CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]"
IMAGE_COLUMNS = "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"
POINT_COLUMNS = "POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID, POINT2D_IDX)"


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray
    where: str            # "file:line" or "file" (binary)


@dataclass
class ColmapImage:
    id: int
    q_cw: np.ndarray      # (4,) world-to-camera wxyz
    t_cw: np.ndarray      # (3,)
    camera_id: int
    name: str
    where: str


@dataclass
class ColmapModel:
    cameras: Dict[int, ColmapCamera]
    images: Dict[int, ColmapImage]
    xyz: np.ndarray                   # (P, 3)
    observers: Dict[int, np.ndarray]  # image id -> indices into xyz


def find_model(root: Path):
    """``(folder, ext)`` of the sparse model under ``root`` (root, sparse/, sparse/0/)."""
    root = Path(root)
    for folder in (root, root / "sparse", root / "sparse" / "0"):
        for ext in (".bin", ".txt"):
            if (folder / f"cameras{ext}").is_file():
                return folder, ext
    return None


def read_model(folder: Path, ext: str) -> ColmapModel:
    folder = Path(folder)
    for name in ("cameras", "images", "points3D"):
        if not (folder / f"{name}{ext}").is_file():
            raise DataFormatError(f"a COLMAP model needs cameras, images and points3D{ext}; "
                                  f"{name}{ext} is missing", path=folder)
    if ext == ".txt":
        cams = _cameras_txt(folder / "cameras.txt")
        imgs = _images_txt(folder / "images.txt")
        ids, xyz, tracks = _points_txt(folder / "points3D.txt")
    else:
        cams = _cameras_bin(folder / "cameras.bin")
        imgs = _images_bin(folder / "images.bin")
        ids, xyz, tracks = _points_bin(folder / "points3D.bin")
    observers: Dict[int, List[int]] = {}
    for k, track in enumerate(tracks):
        for image_id in set(track):
            observers.setdefault(int(image_id), []).append(k)
    return ColmapModel(cams, imgs, xyz, {i: np.asarray(v, dtype=np.int64) for i, v in observers.items()})


# --------------------------------------------------------------------------- text
def _cameras_txt(path: Path) -> Dict[int, ColmapCamera]:
    out = {}
    for ln, s in numbered_lines(path):
        tok = s.split()
        expect_columns(tok, 5, path, ln, CAMERA_COLUMNS, at_least=True)
        model = tok[1]
        if model not in CAMERA_MODELS:
            raise DataFormatError(f"unknown camera model {model!r}; expected one of {', '.join(CAMERA_MODELS)}",
                                  path=path, line=ln)
        n = CAMERA_MODELS[model][1]
        expect_columns(tok, 4 + n, path, ln, f"{CAMERA_COLUMNS}: {model} has {n} params")
        cid = parse_int(tok[0], path, ln, "CAMERA_ID")
        w, h = checked_size(tok[2], tok[3], path, ln, f"camera {cid} WIDTH HEIGHT")
        if cid in out:
            raise DataFormatError(f"CAMERA_ID {cid} is defined twice (first at {out[cid].where})", path=path, line=ln)
        out[cid] = ColmapCamera(cid, model, w, h, parse_floats(tok[4:], path, ln, CAMERA_COLUMNS), f"{path}:{ln}")
    return out


def _images_txt(path: Path) -> Dict[int, ColmapImage]:
    out = {}
    # Every image has two lines; the POINTS2D line may be empty, so keep blank lines here.
    lines = [(i, raw.strip()) for i, raw in enumerate(read_text(path).splitlines(), start=1)
             if not raw.strip().startswith("#")]
    k = 0
    while k < len(lines):
        ln, s = lines[k]
        if not s:
            k += 1
            continue
        tok = s.split()
        expect_columns(tok, 10, path, ln, IMAGE_COLUMNS, at_least=True)
        v = parse_floats(tok[1:8], path, ln, IMAGE_COLUMNS)
        iid, cid = parse_int(tok[0], path, ln, "IMAGE_ID"), parse_int(tok[8], path, ln, "CAMERA_ID")
        q = checked_quaternion(v[:4], path, ln, "world-to-camera quaternion")
        _add_image(out, ColmapImage(iid, q, v[4:7], cid, " ".join(tok[9:]), f"{path}:{ln}"), path, ln)
        k += 2  # skip the POINTS2D line
    return out


def _points_txt(path: Path):
    ids, xyz, tracks = [], [], []
    for ln, s in numbered_lines(path):
        tok = s.split()
        expect_columns(tok, 8, path, ln, POINT_COLUMNS, at_least=True)
        if (len(tok) - 8) % 2:
            raise DataFormatError(f"expected TRACK[] as (IMAGE_ID, POINT2D_IDX) pairs; found {len(tok) - 8} numbers",
                                  path=path, line=ln)
        ids.append(parse_int(tok[0], path, ln, "POINT3D_ID"))
        xyz.append(parse_floats(tok[1:4], path, ln, POINT_COLUMNS))
        tracks.append([parse_int(t, path, ln, "IMAGE_ID in TRACK[]") for t in tok[8::2]])
    return ids, (np.stack(xyz) if xyz else np.zeros((0, 3))), tracks


def _add_image(out: Dict[int, ColmapImage], im: ColmapImage, path: Path, line) -> None:
    """Add ``im``; a second image with the same IMAGE_ID would silently replace the first."""
    if im.id in out:
        raise DataFormatError(f"IMAGE_ID {im.id} is used twice: {out[im.id].name!r} (at {out[im.id].where}) "
                              f"and {im.name!r}", path=path, line=line,
                              hint="every image needs its own IMAGE_ID; re-export the model from COLMAP")
    out[im.id] = im


# --------------------------------------------------------------------------- binary
class _Reader:
    def __init__(self, path: Path):
        self.path = path
        self.buf = read_bytes(path)
        self.pos = 0

    def count(self, what: str, min_record: int) -> int:
        """A declared record count, refused when the rest of the file cannot hold that many."""
        (n,) = self.take("Q")
        left = len(self.buf) - self.pos
        if n * min_record > left:
            raise DataFormatError(f"the file declares {n} {what} but its remaining {left} bytes hold at most "
                                  f"{left // min_record}", path=self.path,
                                  hint="the file is truncated or corrupt; re-export the model")
        return n

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise DataFormatError(f"binary file ends early at byte {self.pos} (wanted {size} more bytes)",
                                  path=self.path, hint="the file is truncated; re-export the model")
        out = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return out

    def finish(self) -> None:
        """Refuse bytes after the declared records (a count too small hides records silently)."""
        if self.pos != len(self.buf):
            raise DataFormatError(f"{len(self.buf) - self.pos} bytes follow the records the header declares",
                                  path=self.path, hint="the record count is wrong or the file is corrupt; "
                                                       "re-export the model")

    def cstring(self) -> str:
        end = self.buf.find(b"\x00", self.pos)
        if end < 0:
            raise DataFormatError("binary file ends inside an image name", path=self.path)
        s = self.buf[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s


def _cameras_bin(path: Path) -> Dict[int, ColmapCamera]:
    r = _Reader(path)
    out = {}
    n = r.count("cameras", 24 + 8 * 3)
    for i in range(n):
        cid, mid, w, h = r.take("iiQQ")
        if mid not in MODEL_BY_ID:
            raise DataFormatError(f"camera {cid}: unknown model id {mid}; expected 0..10", path=path)
        model = MODEL_BY_ID[mid]
        where = f"{path} (camera {cid})"
        w, h = checked_size(w, h, where, None, f"camera {cid} width height")
        params = checked_finite(np.array(r.take("d" * CAMERA_MODELS[model][1])), where, None, f"camera {cid} params")
        if cid in out:
            raise DataFormatError(f"camera id {cid} is defined twice", path=path)
        out[cid] = ColmapCamera(cid, model, w, h, params, where)
    r.finish()
    return out


def _images_bin(path: Path) -> Dict[int, ColmapImage]:
    r = _Reader(path)
    out = {}
    n = r.count("images", 64 + 1 + 8)
    for _ in range(n):
        iid, qw, qx, qy, qz, tx, ty, tz, cid = r.take("idddddddi")
        name = r.cstring()
        (n2d,) = r.take("Q")
        r.pos += 24 * n2d  # (x, y, point3D_id) per 2D point: not needed, tracks give visibility
        if r.pos > len(r.buf):
            raise DataFormatError(f"binary file ends inside the 2D points of image {iid}", path=path)
        where = f"{path} (image {iid} {name})"
        q = checked_quaternion([qw, qx, qy, qz], path, None, f"image {iid} ({name}) world-to-camera quaternion")
        t = checked_finite(np.array([tx, ty, tz]), where, None, "translation TX TY TZ")
        _add_image(out, ColmapImage(iid, q, t, cid, name, where), path, None)
    r.finish()
    return out


def _points_bin(path: Path):
    r = _Reader(path)
    n = r.count("points", struct.calcsize("<QdddBBBdQ"))
    ids, xyz, tracks = [], np.empty((n, 3)), []
    for k in range(n):
        pid, x, y, z, _r, _g, _b, _err, tlen = r.take("QdddBBBdQ")
        ids.append(pid)
        xyz[k] = checked_finite(np.array([x, y, z]), f"{path} (point {pid})", None, "X Y Z")
        if r.pos + 8 * tlen > len(r.buf):
            raise DataFormatError(f"binary file ends inside the track of point {pid}", path=path)
        track = np.frombuffer(r.buf, dtype="<i4", count=2 * tlen, offset=r.pos) if tlen else np.zeros(0, "<i4")
        r.pos += 8 * tlen
        tracks.append(track[0::2].tolist())
    r.finish()
    return ids, xyz, tracks


# --------------------------------------------------------------------------- writers (tests, tools)
def write_model_txt(folder: Path, cameras, images, points) -> None:
    """Write a text model. ``cameras``: (id, model, w, h, params); ``images``: (id, q_cw, t_cw,
    camera_id, name); ``points``: (id, xyz, track image ids)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "cameras.txt", "w") as f:
        f.write("# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n")
        for cid, model, w, h, params in cameras:
            f.write(f"{cid} {model} {w} {h} " + " ".join(repr(float(p)) for p in params) + "\n")
    with open(folder / "images.txt", "w") as f:
        f.write("# Image list with two lines of data per image:\n"
                "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n#   POINTS2D[] as (X, Y, POINT3D_ID)\n")
        for iid, q, t, cid, name in images:
            f.write(f"{iid} " + " ".join(repr(float(v)) for v in (*q, *t)) + f" {cid} {name}\n")
            obs = [pid for pid, _, track in points if iid in track]
            f.write(" ".join(f"1.0 2.0 {pid}" for pid in obs) + "\n")
    with open(folder / "points3D.txt", "w") as f:
        f.write("# 3D point list with one line of data per point:\n"
                "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n")
        for pid, xyz, track in points:
            f.write(f"{pid} " + " ".join(repr(float(v)) for v in xyz) + " 128 128 128 0.5 "
                    + " ".join(f"{iid} {j}" for j, iid in enumerate(track)) + "\n")


def write_model_bin(folder: Path, cameras, images, points) -> None:
    """Binary twin of :func:`write_model_txt` (same arguments)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    b = bytearray(struct.pack("<Q", len(cameras)))
    for cid, model, w, h, params in cameras:
        b += struct.pack("<iiQQ", cid, CAMERA_MODELS[model][0], w, h) + struct.pack("<" + "d" * len(params), *params)
    (folder / "cameras.bin").write_bytes(bytes(b))
    b = bytearray(struct.pack("<Q", len(images)))
    for iid, q, t, cid, name in images:
        b += struct.pack("<idddddddi", iid, *q, *t, cid) + name.encode() + b"\x00"
        obs = [pid for pid, _, track in points if iid in track]
        b += struct.pack("<Q", len(obs))
        for pid in obs:
            b += struct.pack("<ddq", 1.0, 2.0, pid)
    (folder / "images.bin").write_bytes(bytes(b))
    b = bytearray(struct.pack("<Q", len(points)))
    for pid, xyz, track in points:
        b += struct.pack("<QdddBBBdQ", pid, *xyz, 128, 128, 128, 0.5, len(track))
        for j, iid in enumerate(track):
            b += struct.pack("<ii", iid, j)
    (folder / "points3D.bin").write_bytes(bytes(b))
