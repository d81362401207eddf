"""Hypothesis strategies over each reader's rows, shared by ``test_datasets_fuzz.py`` and
``benchmarks/robustness_data.py`` (which runs more examples and counts the outcomes).

A valid tiny dataset is written once per format in its exact on-disk layout; each example
changes one file -- a token replaced, inserted or deleted, a whole row invented, the line
endings switched -- and reads the dataset. The only acceptable outcomes are an
:class:`~edgepose.errors.EdgePoseError` or frames whose every number is finite.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from dataset_builders import (colmap_inputs, random_poses, write_cambridge, write_csv_dataset, write_middlebury,
                              write_nerf, write_sevenscenes)
from hypothesis import strategies as st

from edgepose.datasets import read_dataset
from edgepose.datasets.colmap_model import write_model_bin, write_model_txt
from edgepose.errors import EdgePoseError

SPECIAL = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999", "1e308", "-1e308", "1e300",
           "1e-320", "0", "-0", "0.0", "1", "-1", "abc", "", "0x1p3", "1_0", "+5", "--1", "\u0661\u0662",
           "18446744073709551616", "-2147483649", "9" * 400]
TOKENS = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.text(max_size=6),
)
EOLS = st.sampled_from(["\n", "\r\n", "\r"])

#: format -> (files that may be changed, token separator)
TEXT_TARGETS = {
    "cambridge": (["dataset_train.txt", "dataset_test.txt", "reconstruction.nvm"], " "),
    "7scenes": (["seq-01/frame-000001.pose.txt", "seq-02/frame-000004.pose.txt", "intrinsics.txt",
                 "TrainSplit.txt"], "\t"),
    "colmap": (["sparse/cameras.txt", "sparse/images.txt", "sparse/points3D.txt"], " "),
    "middlebury": (["obj_par.txt", "README.txt"], " "),
    "csv": (["poses.csv"], ","),
}
K_MB = np.array([[20.0, 0, 8], [0, 20, 6], [0, 0, 1]])


def build(fmt: str, root: Path) -> Path:
    """A valid dataset of ``fmt`` under ``root`` (images only where the format needs sizes)."""
    P, Q = random_poses(6, seed=7)
    if fmt == "cambridge":
        write_cambridge(root, P, Q, np.random.default_rng(0).uniform(-1, 1, (4, 3)))
    elif fmt == "7scenes":
        write_sevenscenes(root, P, Q, K=K_MB)
    elif fmt in ("colmap", "colmap-bin"):
        cams, imgs, pts = colmap_inputs(root, n=6)
        (write_model_txt if fmt == "colmap" else write_model_bin)(root / "sparse", cams, imgs, pts)
    elif fmt == "nerf":
        write_nerf(root, P, Q, with_ext=True)
        meta = json.loads((root / "transforms.json").read_text())
        meta.update(w=20, h=10)
        (root / "transforms.json").write_text(json.dumps(meta, indent=1))
    elif fmt == "middlebury":
        write_middlebury(root, P, Q, K_MB, box=[[-1, -1, -1], [1, 1, 1]])
    elif fmt == "csv":
        write_csv_dataset(root, n=6, header="image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy,width,height,split,timestamp")
        lines = (root / "poses.csv").read_text().splitlines()
        (root / "poses.csv").write_text("\n".join([lines[0]] + [f"{l},{i}.25" for i, l in enumerate(lines[1:])]) + "\n")
    return root


@st.composite
def text_change(draw, fmt: str, originals: dict):
    """``(relative file, new text)``: one row of one file of ``fmt`` changed."""
    files, sep = TEXT_TARGETS[fmt]
    name = draw(st.sampled_from(files))
    lines = originals[name].splitlines()
    rows = [i for i, l in enumerate(lines) if l.strip()]
    i = draw(st.sampled_from(rows))
    tok = lines[i].split(sep)
    kind = draw(st.sampled_from(["replace", "replace", "replace", "insert", "delete", "row", "eol-only"]))
    if kind == "replace":
        for _ in range(draw(st.integers(1, 3))):
            tok[draw(st.integers(0, len(tok) - 1))] = draw(TOKENS)
    elif kind == "insert":
        tok.insert(draw(st.integers(0, len(tok))), draw(TOKENS))
    elif kind == "delete" and len(tok) > 1:
        del tok[draw(st.integers(0, len(tok) - 1))]
    elif kind == "row":
        tok = draw(st.lists(TOKENS, max_size=25))
    lines[i] = sep.join(tok)
    eol = draw(EOLS)
    return name, eol.join(lines) + draw(st.sampled_from([eol, ""]))


JSON_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.sampled_from([0, -1, 0.0, 1e300, 3.2, 7.0, "abc", "", None, True, False, [], {}, [1, 2]]),
    st.text(max_size=5), st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
)
NERF_KEYS = ["w", "h", "fl_x", "fl_y", "cx", "cy", "camera_angle_x", "camera_angle_y", "k1", "p2", "file_path"]


@st.composite
def nerf_change(draw, original: str):
    """``("transforms.json", new text)``: a matrix entry, row or intrinsic replaced by any JSON value."""
    meta = json.loads(original)
    frame = meta["frames"][draw(st.integers(0, len(meta["frames"]) - 1))]
    target = draw(st.sampled_from(["matrix-entry", "matrix-row", "frame-key", "top-key"]))
    value = draw(JSON_VALUES)
    if target == "matrix-entry":
        frame["transform_matrix"][draw(st.integers(0, 3))][draw(st.integers(0, 3))] = value
    elif target == "matrix-row":
        frame["transform_matrix"][draw(st.integers(0, 3))] = value
    elif target == "frame-key":
        frame[draw(st.sampled_from(NERF_KEYS))] = value
    else:
        meta[draw(st.sampled_from(NERF_KEYS))] = value
    return "transforms.json", json.dumps(meta, indent=1).replace("\n", draw(EOLS))


FLOATS = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def colmap_bin_change(draw, root: Path):
    """``(relative file, new bytes)``: one record of a binary model with fuzzed fields."""
    cams, imgs, pts = colmap_inputs_cached(root)
    cams, imgs, pts = [list(c) for c in cams], [list(i) for i in imgs], [list(p) for p in pts]
    which = draw(st.sampled_from(["camera", "image", "point", "count"]))
    if which == "camera":
        c = cams[0]
        c[2] = draw(st.integers(0, 2 ** 64 - 1)) if draw(st.booleans()) else c[2]
        c[3] = draw(st.integers(0, 2 ** 64 - 1)) if draw(st.booleans()) else c[3]
        c[4] = [draw(FLOATS) if draw(st.booleans()) else v for v in c[4]]
    elif which == "image":
        im = imgs[draw(st.integers(0, len(imgs) - 1))]
        im[1] = np.array([draw(FLOATS) if draw(st.booleans()) else v for v in im[1]])
        im[2] = np.array([draw(FLOATS) if draw(st.booleans()) else v for v in im[2]])
        im[0] = draw(st.integers(-(2 ** 31), 2 ** 31 - 1)) if draw(st.booleans()) else im[0]
    elif which == "point":
        p = pts[draw(st.integers(0, len(pts) - 1))]
        p[1] = np.array([draw(FLOATS) if draw(st.booleans()) else v for v in p[1]])
    out = root / "_fuzz"
    write_model_bin(out, cams, imgs, pts)
    name = {"camera": "cameras.bin", "image": "images.bin", "point": "points3D.bin"}.get(which) \
        or draw(st.sampled_from(["cameras.bin", "images.bin", "points3D.bin"]))
    data = (out / name).read_bytes()
    if which == "count":
        data = struct.pack("<Q", draw(st.integers(0, 2 ** 64 - 1))) + data[8:]
    if draw(st.integers(0, 9)) == 0:  # sometimes truncated
        data = data[:draw(st.integers(0, len(data)))]
    return f"sparse/{name}", data


_CACHE: dict = {}


def colmap_inputs_cached(root: Path):
    if root not in _CACHE:
        _CACHE[root] = colmap_inputs(root / "_images", n=6)
    return _CACHE[root]


def read_and_judge(root: Path, fmt: str) -> str:
    """``"refused"`` (an EdgePoseError), ``"accepted"`` or ``"accepted-with-errors"``
    (inspect would list errors). Anything else raises: a traceback, or an accepted frame
    holding a NaN or infinite number."""
    try:
        report = read_dataset(root, format=fmt.replace("-bin", ""), check_images=False)
    except EdgePoseError:
        return "refused"
    for f in report.dataset.frames:
        for name, v in (("position", f.position), ("rotation", f.rotation), ("K", f.K), ("points", f.points),
                        ("depth_range", f.extra.get("depth_range")), ("scene_box", f.extra.get("scene_box")),
                        ("timestamp", f.timestamp)):
            if v is not None and not np.all(np.isfinite(np.asarray(v, dtype=np.float64))):
                raise AssertionError(f"{fmt}: accepted a non-finite {name} {v!r} ({f.extra.get('source_line')})")
        if not (f.width > 0 and f.height > 0):
            raise AssertionError(f"{fmt}: accepted image size {f.width}x{f.height}")
    return "accepted-with-errors" if report.errors else "accepted"


FORMATS = ("cambridge", "7scenes", "colmap", "colmap-bin", "nerf", "middlebury", "csv")


def change_strategy(fmt: str, root: Path, originals: dict):
    if fmt == "nerf":
        return nerf_change(originals["transforms.json"])
    if fmt == "colmap-bin":
        return colmap_bin_change(root)
    return text_change(fmt, originals)


def originals_of(fmt: str, root: Path) -> dict:
    if fmt == "nerf":
        return {"transforms.json": (root / "transforms.json").read_text()}
    if fmt == "colmap-bin":
        return {f"sparse/{n}": (root / "sparse" / n).read_bytes() for n in ("cameras.bin", "images.bin", "points3D.bin")}
    return {name: (root / name).read_text() for name in TEXT_TARGETS[fmt][0] if (root / name).is_file()}


def apply_change(root: Path, name: str, content) -> None:
    p = root / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_bytes(content.encode("utf-8", errors="surrogatepass"))


def restore(root: Path, originals: dict) -> None:
    for name, content in originals.items():
        apply_change(root, name, content)


def one_example(data, fmt: str, root: Path, originals: dict) -> str:
    """Draw one change, apply it, judge the read (:func:`read_and_judge`), restore the files."""
    name, content = data.draw(change_strategy(fmt, root, originals))
    try:
        apply_change(root, name, content)
        return read_and_judge(root, fmt)
    finally:
        restore(root, originals)


__all__ = ["FORMATS", "build", "one_example", "originals_of", "read_and_judge"]
