"""Is this bundle what its manifest says: files inside the folder, hashes, content vs label?

Used by :mod:`edgepose.bundle_files` (the names a manifest may list), by
:func:`edgepose.bundle.verify_files` (``edgepose-export --verify``) and by the runtime before
it loads any file (:func:`verified_file`: ``edgepose-run``, ``PoseEstimator.from_bundle``,
``edgepose-bench``). A bundle travels by copy, USB stick and ``scp``: one flipped bit in
``model.onnx`` moves every pose, so nothing is loaded before its sha256 matches (hashing
costs 2.3 ms per MB on the 2-core machine this was built on, see
``benchmarks/results/robustness_io.md``).

A file's content must agree with its label: an ONNX graph labelled fp32 or fp16 holds no Q/DQ
node (:func:`content_problem`, found in the same read as the hash).

Files must stay inside the bundle folder: a listed path may not be absolute, contain ``..``,
or be (or pass through) a symbolic link. A link could make a bench row labelled fp16 run the
int8 file, or make the runtime load a file from anywhere on the device.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional, Tuple, Union

from .errors import BundleError


def _chunks(path: Union[str, Path], chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                return
            yield b


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """The file's SHA-256 as 64 lowercase hex digits, read in ``chunk``-byte pieces."""
    h = hashlib.sha256()
    for b in _chunks(path, chunk):
        h.update(b)
    return h.hexdigest()


_QDQ = b"QuantizeLinear"  # an op type in every Q/DQ graph's bytes (protobuf keeps strings as they are)
#: file systems refuse a name component longer than this many bytes (ENAMETOOLONG)
NAME_MAX = 255


def _hash_and_find(path: Union[str, Path], needle: bytes) -> Tuple[str, bool]:
    """``(sha256, needle occurs in the file)`` in one read (``needle`` may span two chunks)."""
    h, found, tail = hashlib.sha256(), False, b""
    for b in _chunks(path):
        h.update(b)
        if not found:
            found = needle in tail + b
            tail = b[-(len(needle) - 1):]
    return h.hexdigest(), found


def path_problem(rel) -> Optional[str]:
    """Why ``rel`` (a manifest ``files`` key) may not name a file in the bundle, or ``None``."""
    if not isinstance(rel, str) or not rel.strip():
        return f"file name {rel!r} is not a relative path"
    if "\x00" in rel or any(ord(c) < 32 for c in rel):
        return f"{rel!r}: a control character (NUL, newline, ...) in a file name"
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.is_absolute() or re.match(r"^[A-Za-z]:", rel):
        return f"{rel}: absolute path (files must be inside the bundle folder)"
    if ".." in p.parts:
        return f"{rel}: leaves the bundle folder ('..')"
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in p.parts) or len(rel) > 4096:
        return f"{rel[:60]}...: a name longer than file systems allow ({NAME_MAX} bytes per name)"
    return None


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


def content_problem(rel: str, role: str, precision: Optional[str], has_qdq: bool) -> Optional[str]:
    """Why a file's content disagrees with its recorded role and precision, or ``None``: an
    ONNX graph labelled fp32 or fp16 must hold no Q/DQ node (precision labels swapped by hand
    would run the INT8 graph as ``--precision fp32``). The converse is not a rule: guided INT8
    may keep every layer in float when the drift bound asks for it, and label that graph int8."""
    if role in ("onnx", "camera-onnx") and has_qdq and precision in ("fp32", "fp16"):
        return f"{rel}: labelled {precision} but it is a Q/DQ (int8) graph: the labels were swapped or edited"
    return None


def file_problem(bundle_dir: Union[str, Path], rel: str, entry) -> Optional[str]:
    """Why ``rel`` does not match its manifest ``entry`` (a :class:`~edgepose.bundle_files.FileEntry`:
    containment, links, size, sha256, content vs role/precision), or ``None``."""
    try:
        p = safe_member(bundle_dir, rel)
    except BundleError as exc:
        return exc.message.split(": ", 1)[1]
    try:
        if not p.is_file():
            return f"{rel}: missing"
        if p.stat().st_size != entry.size:
            return f"{rel}: size {p.stat().st_size} bytes, the manifest says {entry.size} (file changed or truncated)"
        digest, has_qdq = _hash_and_find(p, _QDQ)
    except OSError as exc:
        return f"{rel}: cannot be read ({exc.strerror or exc})"
    if digest != entry.sha256:
        return f"{rel}: sha256 differs from the manifest (file changed or corrupt)"
    return content_problem(rel, entry.role, entry.precision, has_qdq)


def verified_file(bundle_dir: Union[str, Path], manifest, rel: str) -> Path:
    """The path of listed file ``rel`` of ``manifest`` (a :class:`~edgepose.manifest.Manifest`)
    once it is inside the bundle, matches its size and sha256 and its content its label;
    raises :class:`BundleError` with the command that checks or repairs it."""
    entry = manifest.files.get(rel)
    if entry is None:
        raise BundleError(f"bundle {bundle_dir}: {rel} is not listed in its manifest", hint="re-export the bundle")
    problem = file_problem(bundle_dir, rel, entry)
    if problem:
        raise BundleError(f"bundle {bundle_dir}: {problem}; refusing to load it",
                          hint=f"check the whole bundle with: edgepose-export --verify {bundle_dir}; "
                               "then copy it again or re-export it")
    return Path(bundle_dir) / rel
