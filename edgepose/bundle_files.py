"""The manifest's ``files`` section: precision names, roles, one typed entry per file.

:class:`FileEntry` is one file (role, precision, sha256, size, and for engines the
fingerprint and the ONNX file it was built from); :class:`BundleFiles` queries them by role
and precision with the never-silent fallback order (:func:`fallback_order`). Part of the one
manifest model, :class:`edgepose.manifest.Manifest`; re-exported by :mod:`edgepose.bundle`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from .bundle_integrity import path_problem
from .errors import BundleError, ConfigError
from .input_spec import MAX_SIDE
from .manifest_checks import Checker, is_whole

#: precision names, in canonical order (the order files, rows and tables use)
PRECISIONS = ("fp32", "fp16", "int8")
#: for each precision, the others from nearest to farthest: the never-silent fallback order
_NEAREST: Dict[str, Tuple[str, ...]] = {"fp32": ("fp16", "int8"), "fp16": ("fp32", "int8"), "int8": ("fp16", "fp32")}
#: what a listed file is for
ROLES = ("onnx", "camera-onnx", "engine", "camera-engine", "engine-report", "checkpoint", "parity",
         "calibration-cache")
#: roles of camera-resolution graphs and their engines: each entry names its ``camera`` frame
CAMERA_ROLES = ("camera-onnx", "camera-engine")
#: the channel orders a camera graph takes (bgr: OpenCV and many ROS drivers)
CAMERA_CHANNELS = ("rgb", "bgr")
#: roles whose files exist once per precision
PER_PRECISION = ("onnx", "camera-onnx", "engine", "camera-engine")
#: the largest file a manifest may list (1 TiB): a larger size is a corrupt entry
MAX_FILE_SIZE = 1 << 40
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_precision(name: str, what: str = "precision") -> str:
    """``name`` if it is one of :data:`PRECISIONS`, else :class:`ConfigError` listing them."""
    if name not in PRECISIONS:
        raise ConfigError(f"{what} {name!r}: unknown precision; expected one of {', '.join(PRECISIONS)}")
    return name


def fallback_order(precision: str, strict: bool = False) -> Tuple[str, ...]:
    """``precision`` then, unless ``strict``, the others from nearest to farthest.

    >>> fallback_order("int8")
    ('int8', 'fp16', 'fp32')
    """
    check_precision(precision)
    return (precision,) if strict else (precision,) + _NEAREST[precision]


def onnx_filename(precision: str) -> str:
    """``model.onnx`` for fp32, ``model.<precision>.onnx`` for the others.

    >>> [onnx_filename(p) for p in PRECISIONS]
    ['model.onnx', 'model.fp16.onnx', 'model.int8.onnx']
    """
    return "model.onnx" if check_precision(precision) == "fp32" else f"model.{precision}.onnx"


@dataclass(frozen=True)
class FileEntry:
    """One listed file.

    Attributes:
        role: one of :data:`ROLES`.
        precision: one of :data:`PRECISIONS` (required for ``onnx`` and ``engine``), else ``None``.
        sha256: 64 lowercase hex digits of the file's bytes.
        size: bytes.
        extra: the entry's other keys as written (``input``, ``format``, and for engines
            ``fingerprint`` and ``onnx``: the ONNX file it was built from).
    """

    role: str
    precision: Optional[str]
    sha256: str
    size: int
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> dict:
        """An engine's fingerprint (``{}`` for other roles)."""
        return dict(self.extra.get("fingerprint") or {})

    @property
    def onnx(self) -> Optional[str]:
        """The ONNX file an engine was built from, when recorded."""
        return self.extra.get("onnx")

    def to_json(self) -> dict:
        return {"role": self.role, "precision": self.precision, "sha256": self.sha256, "size": self.size,
                **self.extra}

    @classmethod
    def from_json(cls, entry: Any, check: Checker, key: str) -> Optional["FileEntry"]:
        """The entry, or ``None`` with each problem (named ``key.field``) added to ``check``."""
        if not isinstance(entry, dict):
            check.bad(key, entry, "an object with role, precision, sha256 and size")
            return None
        role = check.text(entry, "role", f"{key}.role", choices=ROLES)
        precision = entry.get("precision")
        if precision is not None or role in PER_PRECISION:
            precision = check.text(entry, "precision", f"{key}.precision", choices=PRECISIONS)
        sha = entry.get("sha256")
        if not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            check.bad(f"{key}.sha256", sha, "64 lowercase hex digits")
            sha = None
        size = check.whole(entry, "size", f"{key}.size", 0, MAX_FILE_SIZE)
        extra = {k: v for k, v in entry.items() if k not in ("role", "precision", "sha256", "size")}
        if role in ("engine", "camera-engine"):
            fp = check.obj(entry, "fingerprint", f"{key}.fingerprint")
            if fp is not None:
                for name in ("trt_version", "gpu", "compute_capability"):
                    check.text(fp, name, f"{key}.fingerprint.{name}")
                if fp.get("precision") != precision:
                    check.note(f"{key}.fingerprint.precision is {fp.get('precision')!r} but the entry says "
                               f"{precision!r}: one of them was edited")
        if role in CAMERA_ROLES:  # the camera frame a camera-resolution graph (or its engine) takes
            cam = check.obj(entry, "camera", f"{key}.camera")
            if cam is not None:
                wh = cam.get("size")
                if not (isinstance(wh, list) and len(wh) == 2 and all(is_whole(v) and 1 <= v <= MAX_SIDE for v in wh)):
                    check.bad(f"{key}.camera.size", wh, f"[width, height] in pixels, each 1..{MAX_SIDE}")
                check.text(cam, "channels", f"{key}.camera.channels", choices=CAMERA_CHANNELS, default="rgb")
        if None in (role, sha, size) or (role in PER_PRECISION and precision is None):
            return None
        return cls(role, precision, sha, size, extra)  # type: ignore[arg-type]


def read_files(files: Any, check: Checker, key: str = "files") -> Dict[str, FileEntry]:
    """The ``files`` object as ``{relative path: FileEntry}``; every problem goes to ``check``.

    Refused: a path that leaves the folder or holds a NUL, an empty listing, a listing with no
    ONNX graph, two files of one role claiming the same precision, an engine whose ``onnx``
    is not a listed ONNX file."""
    if not isinstance(files, dict):
        check.bad(key, files, "an object {relative path: {role, precision, sha256, size}}")
        return {}
    out: Dict[str, FileEntry] = {}
    for rel, raw in files.items():
        problem = path_problem(rel)
        if problem:
            check.note(f"{key}: {problem}")
            continue
        entry = FileEntry.from_json(raw, check, f"{key}[{rel!r}]")
        if entry is not None:
            out[rel] = entry
    if not files:
        check.note(f"{key} is empty: a bundle lists at least its ONNX graph (model.onnx)")
    elif len(out) == len(files) and not any(e.role == "onnx" for e in out.values()):
        check.note(f"{key} lists no ONNX graph (role 'onnx'): nothing could run")
    seen: Dict[Tuple[str, str, str], str] = {}
    for rel, e in out.items():
        if e.role == "onnx" and e.precision is not None:
            if ("onnx", e.precision, "") in seen:
                check.note(f"{key}: {seen[('onnx', e.precision, '')]!r} and {rel!r} both claim to be the "
                           f"{e.precision} ONNX graph")
            seen[("onnx", e.precision, "")] = rel
        source_role = "camera-onnx" if e.role == "camera-engine" else "onnx"
        if e.role in ("engine", "camera-engine") and e.onnx is not None and (
                e.onnx not in out or out[e.onnx].role != source_role):
            check.note(f"{key}[{rel!r}].onnx is {e.onnx!r}, expected a listed ONNX file")
    return out


class BundleFiles(Mapping):
    """The manifest's ``files`` section ``{relative path: FileEntry}``, queried by role and precision.

    >>> f = BundleFiles({"model.onnx": FileEntry("onnx", "fp32", "0" * 64, 1),
    ...                  "model.int8.onnx": FileEntry("onnx", "int8", "1" * 64, 1)})
    >>> f.precisions("onnx"), f.find("onnx", "int8"), f.nearest("onnx", "fp16")
    (['fp32', 'int8'], 'model.int8.onnx', 'fp32')
    """

    def __init__(self, files: Mapping[str, FileEntry]):
        self._files = dict(files)

    @classmethod
    def of(cls, manifest: Any) -> "BundleFiles":
        """The files of a :class:`~edgepose.manifest.Manifest` (or of its JSON document, checked)."""
        if not isinstance(manifest, dict):
            return manifest.listing
        check = Checker()
        files = read_files(manifest.get("files"), check)
        if check.problems:
            raise BundleError("the manifest's files section is malformed:\n    " + "\n    ".join(check.problems),
                              hint="re-export the bundle: edgepose-export RUN --out BUNDLE")
        return cls(files)

    def __getitem__(self, rel: str) -> FileEntry:
        return self._files[rel]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def with_role(self, role: str, precision: Optional[str] = None) -> Dict[str, FileEntry]:
        """``{rel: entry}`` of the files with this role (and precision), in manifest order."""
        return {rel: e for rel, e in self._files.items()
                if e.role == role and (precision is None or e.precision == precision)}

    def find(self, role: str, precision: Optional[str] = None) -> Optional[str]:
        """Relative path of the first file with this role (and precision), or ``None``."""
        return next(iter(self.with_role(role, precision)), None)

    def precisions(self, role: str = "onnx") -> List[str]:
        """Precisions that have a ``role`` file, in canonical order."""
        have = {e.precision for e in self.with_role(role).values()}
        return [p for p in PRECISIONS if p in have]

    def by_precision(self, role: str = "onnx") -> Dict[str, str]:
        """``{precision: rel}`` of the first ``role`` file of each precision."""
        return {p: self.find(role, p) for p in self.precisions(role)}  # type: ignore[misc]

    def nearest(self, role: str, precision: str, allowed: Optional[Iterable[str]] = None,
                strict: bool = False) -> Optional[str]:
        """The first precision of :func:`fallback_order` that has a ``role`` file (and is in
        ``allowed``), or ``None``."""
        have = set(self.precisions(role))
        if allowed is not None:
            have &= set(allowed)
        return next((p for p in fallback_order(precision, strict) if p in have), None)

    def to_json(self) -> Dict[str, dict]:
        return {rel: e.to_json() for rel, e in self._files.items()}
