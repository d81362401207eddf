"""edgepose's CSV for your own captures: one header row, one row per image.

Required columns (any order, names exact)::

    image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy

Optional: ``width,height`` (pixels; else read from the image), ``split`` (``train`` or
``test``; if the column is present every row must have one, else the split policy
decides), ``sequence`` and ``timestamp`` (seconds). Lines starting with ``#`` are comments.

Conventions, exactly those of edgepose (no conversion happens): ``image`` is relative to
the CSV's folder; ``x y z`` is the camera centre in the world frame in metres;
``qw qx qy qz`` is the camera-to-world unit quaternion (Hamilton) of a camera with OpenCV
axes (x right, y down, z forward); ``fx fy cx cy`` are pinhole intrinsics in pixels of the
image as stored. Example::

    image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy,split
    frames/000000.jpg,1.20,0.00,0.35,0.5,-0.5,0.5,-0.5,600,600,320,240,train

The file is ``poses.csv`` in the dataset folder (or the only ``*.csv`` there).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import List

import numpy as np

from ..errors import DataFormatError
from ..records import SPLITS, FrameRecord
from .base import ReaderOutput
from .images import ImageSizer
from .parsing import checked_finite, checked_K, checked_quaternion, checked_size, parse_floats, read_text

FILE = "poses.csv"
REQUIRED = ("image", "x", "y", "z", "qw", "qx", "qy", "qz", "fx", "fy", "cx", "cy")
OPTIONAL = ("width", "height", "split", "sequence", "timestamp")


def find_csv(root: Path):
    root = Path(root)
    if (root / FILE).is_file():
        return root / FILE
    found = sorted(p for p in root.glob("*.csv") if p.is_file())  # is_file: never open a FIFO
    return found[0] if len(found) == 1 else None


def header_ok(path: Path) -> bool:
    """True when the first non-comment line has every required column (for detection)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip() and not line.lstrip().startswith("#"):
                    cols = {c.strip() for c in line.strip().split(",")}
                    return set(REQUIRED) <= cols
    except (OSError, UnicodeDecodeError):
        return False
    return False


def _row(line: str, path: Path, ln: int) -> List[str]:
    """The fields of one CSV line; an unclosed quote (which would swallow every later line) is
    an error at its line."""
    try:
        fields = next(csv.reader([line], strict=True), [])
    except csv.Error as exc:
        raise DataFormatError(f"not a CSV row ({exc}): an unclosed or stray quote?", path=path, line=ln) from None
    return fields


def read(root: Path, sizer: ImageSizer) -> ReaderOutput:
    root = Path(root)
    path = find_csv(root)
    if path is None:
        raise DataFormatError(f"expected {FILE} (or a single *.csv); found none or several", path=root)
    text = read_text(path)
    numbered = [(i, l) for i, l in enumerate(text.splitlines(), start=1)
                if l.strip() and not l.lstrip().startswith("#")]
    if not numbered:
        raise DataFormatError(f"empty CSV; expected the header {','.join(REQUIRED)}", path=path, line=1)
    rows = [_row(line, path, ln) for ln, line in numbered]  # one line, one row: a stray quote stays on its line
    header = [c.strip() for c in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataFormatError(f"header lacks column(s) {', '.join(missing)}; expected {','.join(REQUIRED)} "
                              f"[,{','.join(OPTIONAL)}]; found {','.join(header)}", path=path, line=numbered[0][0])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise DataFormatError(f"column(s) {', '.join(repeated)} appear more than once in the header; which one "
                              "holds the value is unknown", path=path, line=numbered[0][0],
                              hint="keep one column of each name")
    col = {c: header.index(c) for c in header}
    has_split = "split" in col
    frames: List[FrameRecord] = []
    expected = ",".join(header)
    for (ln, _), row in zip(numbered[1:], rows[1:]):
        row = [c.strip() for c in row]
        if len(row) != len(header):
            raise DataFormatError(f"expected {len(header)} columns ({expected}); found {len(row)}", path=path, line=ln)
        num = parse_floats([row[col[c]] for c in REQUIRED[1:]], path, ln, expected)
        pos = checked_finite(num[0:3], path, ln, "position x y z")
        rot = checked_quaternion(num[3:7], path, ln, "quaternion qw qx qy qz")
        K = checked_K(*num[7:11], path, ln, "intrinsics fx fy cx cy")
        declared = None
        if "width" in col and "height" in col and row[col["width"]] and row[col["height"]]:
            declared = checked_size(row[col["width"]], row[col["height"]], path, ln, "width height")
        split = "train"
        if has_split:
            split = row[col["split"]].lower()
            if split not in SPLITS:
                raise DataFormatError(f"split must be one of {SPLITS}; found {row[col['split']]!r}", path=path, line=ln)
        ts = None
        if "timestamp" in col and row[col["timestamp"]]:
            ts = float(parse_floats([row[col["timestamp"]]], path, ln, "timestamp in seconds")[0])
        img = path.parent / row[col["image"]]
        size = sizer.size(img, declared=declared)
        if size is None:
            raise DataFormatError(f"image size unknown: no width/height columns and {img} is not readable",
                                  path=path, line=ln, hint="add width,height columns or provide the images")
        frames.append(FrameRecord(image=img, position=pos, rotation=rot, K=K,
                                  width=size[0], height=size[1], split=split,
                                  sequence=row[col["sequence"]] if "sequence" in col else "",
                                  timestamp=ts, extra={"source_line": f"{path.name}:{ln}"}))
    return ReaderOutput(frames, has_split=has_split, problems=[])


def write_csv(path: Path, frames, root: Path) -> None:
    """Write frames in this format (image paths relative to ``root``); the inverse of :func:`read`."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(REQUIRED + ("width", "height", "split", "sequence"))
        for fr in frames:
            K = np.asarray(fr.K)
            w.writerow([Path(fr.image).relative_to(root).as_posix(), *map(repr, map(float, fr.position)),
                        *map(repr, map(float, fr.rotation)), K[0, 0], K[1, 1], K[0, 2], K[1, 2],
                        fr.width, fr.height, fr.split, fr.sequence])
