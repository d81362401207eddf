"""Is this bundle what its manifest says, and is the manifest itself well formed?

Used by :func:`edgepose.bundle.load_manifest` (shape of ``edgepose.json``), by
:func:`edgepose.bundle.verify_files` (``edgepose-export --verify``) and by the runtime before
it loads any file (:func:`verified_file`: ``edgepose-run``, ``PoseEstimator.from_bundle``,
``edgepose-bench``). A bundle travels by copy, USB stick and ``scp``: one flipped bit in
``model.onnx`` moves every pose, so nothing is loaded before its sha256 matches (hashing
costs 2.3 ms per MB on the 2-core machine this was built on, see
``benchmarks/results/robustness_io.md``).

Files must stay inside the bundle folder: a listed path may not be absolute, contain ``..``,
or be (or pass through) a symbolic link. A link could make a bench row labelled fp16 run the
int8 file, or make the runtime load a file from anywhere on the device.
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path, PurePosixPath
from typing import List, Mapping, Optional, Union

from .errors import BundleError


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """The file's SHA-256 as 64 lowercase hex digits, read in ``chunk``-byte pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def path_problem(rel) -> Optional[str]:
    """Why ``rel`` (a manifest ``files`` key) may not name a file in the bundle, or ``None``."""
    if not isinstance(rel, str) or not rel.strip():
        return f"file name {rel!r} is not a relative path"
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.is_absolute() or re.match(r"^[A-Za-z]:", rel):
        return f"{rel}: absolute path (files must be inside the bundle folder)"
    if ".." in p.parts:
        return f"{rel}: leaves the bundle folder ('..')"
    return None


def manifest_problems(manifest) -> List[str]:
    """Every way ``manifest`` differs from the shape this edgepose reads (empty when fine)."""
    if not isinstance(manifest, dict):
        return [f"the manifest is a JSON {type(manifest).__name__}, expected an object"]
    out: List[str] = []
    for key in ("model", "input", "outputs", "normalization", "files"):
        if key in manifest and not isinstance(manifest[key], dict):
            out.append(f"{key!r} is a {type(manifest[key]).__name__}, expected an object")
    files = manifest.get("files")
    if isinstance(files, dict):
        for rel, entry in files.items():
            problem = path_problem(rel)
            if problem:
                out.append(f"files: {problem}")
            if not isinstance(entry, dict):
                out.append(f"files[{rel!r}] is {entry!r}, expected an object with role, sha256 and size")
                continue
            if not isinstance(entry.get("role"), str):
                out.append(f"files[{rel!r}]: role {entry.get('role')!r}, expected a string")
            if not (isinstance(entry.get("sha256"), str) and _SHA256.fullmatch(entry["sha256"])):
                out.append(f"files[{rel!r}]: sha256 {entry.get('sha256')!r}, expected 64 hex digits")
            if not (_whole(entry.get("size")) and entry["size"] >= 0):
                out.append(f"files[{rel!r}]: size {entry.get('size')!r}, expected a whole number >= 0")
    norm = manifest.get("normalization")  # each value is checked when present
    if isinstance(norm, dict):
        scale = norm.get("position_scale", 1.0)
        if not (_number(scale) and scale > 0):
            out.append(f"normalization.position_scale is {scale!r}, expected a finite number > 0")
        mean = norm.get("position_mean", [0.0, 0.0, 0.0])
        if not (isinstance(mean, list) and len(mean) == 3 and all(_number(v) for v in mean)):
            out.append(f"normalization.position_mean is {mean!r}, expected 3 finite numbers")
    inp = manifest.get("input")
    if isinstance(inp, dict) and "shape" in inp:
        shape = inp.get("shape")
        if not (isinstance(shape, list) and len(shape) == 4 and all(_whole(v) for v in shape)):
            out.append(f"input.shape is {shape!r}, expected 4 whole numbers")
        elif not (shape[0] == -1 or shape[0] >= 1) or any(v < 1 for v in shape[1:]):
            out.append(f"input.shape is {shape}: the batch is -1 or >= 1 and every other dimension >= 1")
    return out


def safe_member(bundle_dir: Union[str, Path], rel: str) -> Path:
    """``bundle_dir / rel`` after checking it stays inside the folder with no symbolic link on
    the way; raises :class:`BundleError` naming the problem and the fix."""
    bundle_dir = Path(bundle_dir)
    problem = path_problem(rel)
    if problem is None:
        p = bundle_dir
        for part in PurePosixPath(rel.replace("\\", "/")).parts:
            p = p / part
            if p.is_symlink():
                problem = f"{rel}: {p.relative_to(bundle_dir)} is a symbolic link (to {p.resolve()})"
                break
    if problem is None:
        p = bundle_dir / rel
        if not str(p.resolve()).startswith(str(bundle_dir.resolve()) + "/"):
            problem = f"{rel}: resolves outside the bundle folder"
    if problem:
        raise BundleError(f"bundle {bundle_dir}: {problem}; a bundle's files are plain files inside its folder",
                          hint=f"replace links with the files themselves and check with: edgepose-export --verify "
                               f"{bundle_dir}, or re-export the bundle")
    return bundle_dir / rel


def file_problem(bundle_dir: Union[str, Path], rel: str, entry: Mapping, hash_file) -> Optional[str]:
    """Why ``rel`` does not match its manifest entry (containment, links, size, sha256), or ``None``."""
    try:
        p = safe_member(bundle_dir, rel)
    except BundleError as exc:
        return exc.message.split(": ", 1)[1]
    if not p.is_file():
        return f"{rel}: missing"
    if p.stat().st_size != entry.get("size", -1):
        return f"{rel}: size {p.stat().st_size} bytes, the manifest says {entry.get('size')} (file changed or truncated)"
    if hash_file(p) != entry.get("sha256"):
        return f"{rel}: sha256 differs from the manifest (file changed or corrupt)"
    return None


def verified_file(bundle_dir: Union[str, Path], manifest: Mapping, rel: str) -> Path:
    """The path of listed file ``rel`` once it is inside the bundle and matches its size and
    sha256; raises :class:`BundleError` with the command that checks or repairs it."""

    entry = (manifest.get("files") or {}).get(rel)
    if entry is None:
        raise BundleError(f"bundle {bundle_dir}: {rel} is not listed in its manifest", hint="re-export the bundle")
    problem = file_problem(bundle_dir, rel, entry, sha256_file)
    if problem:
        raise BundleError(f"bundle {bundle_dir}: {problem}; refusing to load it",
                          hint=f"check the whole bundle with: edgepose-export --verify {bundle_dir}; "
                               "then copy it again or re-export it")
    return Path(bundle_dir) / rel
