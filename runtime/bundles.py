"""A read-only view of a bundle for the runtime: manifest, input spec, and which file serves
which backend and precision (with the never-silent precision fallback)."""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from edgepose.bundle import BundleFiles, FileEntry, check_precision
from edgepose.bundle_integrity import verified_file
from edgepose.errors import BundleError, ConfigError
from edgepose.manifest import Manifest

from .spec import InputSpec


#: a file modified this recently (s) is hashed at every load (see :meth:`BundleView.verified`)
RACY_S = 2.0


class PrecisionFallbackWarning(UserWarning):
    """The asked precision has no file in the bundle; a neighbouring one is used instead."""


@dataclass
class BundleView:
    """``path`` (folder) and typed ``manifest`` of one bundle."""

    path: Path
    manifest: Manifest
    #: rel -> ((size, mtime ns, inode) when verified, path): see :meth:`verified`
    _verified: Dict[str, tuple] = field(default_factory=dict, repr=False, compare=False)

    @property
    def input_spec(self) -> InputSpec:
        return self.manifest.input

    @property
    def listing(self) -> BundleFiles:
        """The manifest's files, queried by role and precision."""
        return self.manifest.listing

    def files(self, role: str) -> Dict[str, FileEntry]:
        return self.listing.with_role(role)

    def precisions(self, role: str = "onnx") -> List[str]:
        return self.listing.precisions(role)

    def file_for(self, role: str, precision: Optional[str]) -> Optional[Path]:
        """The path of the ``role`` file (of ``precision``), verified before anything loads it:
        inside the bundle, no symbolic link, size and sha256 as listed."""
        rel = self.listing.find(role, precision)
        return None if rel is None else self.verified(rel)

    def verified(self, rel: str) -> Path:
        """:func:`~edgepose.bundle_integrity.verified_file` of listed file ``rel``, hashed once
        per view while the file is unchanged (same size, modification time and inode, link or
        not): a runner's camera twins and a reopened graph do not hash it again. A file modified
        less than :data:`RACY_S` before it was hashed is not remembered (file times are coarse:
        a rewrite within the same tick would keep them, git's "racily clean" rule)."""
        try:
            st = os.lstat(self.path / rel)
            key = (st.st_size, st.st_mtime_ns, st.st_ino)
            if time.time() - st.st_mtime < RACY_S:
                key = None
        except OSError:
            key = None
        seen = self._verified.get(rel)
        if key is not None and seen is not None and seen[0] == key:
            return seen[1]
        p = verified_file(self.path, self.manifest, rel)
        if key is not None:
            self._verified[rel] = (key, p)
        return p

    def resolve_precision(self, role: str, precision: str, strict: bool = False,
                          allowed: Optional[Tuple[str, ...]] = None) -> Tuple[str, Path]:
        """``(precision, path)`` of the ``role`` file for ``precision``.

        When there is none, the nearest available precision is used and a
        :class:`PrecisionFallbackWarning` is printed (never silently); with ``strict=True``
        a :class:`BundleError` is raised instead.
        """
        try:
            check_precision(precision)
        except ConfigError as exc:
            raise BundleError(str(exc)) from None
        p = self.file_for(role, precision)
        if p is not None:
            return precision, p
        have = [q for q in self.precisions(role) if allowed is None or q in allowed]
        if not have:
            raise BundleError(f"bundle {self.path} has no {role!r} file (files: {sorted(self.manifest.files)})",
                              hint=f"export one with: edgepose-export RUN --out {self.path}")
        if strict:
            raise BundleError(f"bundle {self.path} has no {precision} {role} file; it has {have}",
                              hint=f"pick one of {have}, or export it: edgepose-export {self.path} "
                                   f"--precision {precision}")
        q = self.listing.nearest(role, precision, allowed=have)
        if q is None:  # pragma: no cover - have is not empty
            raise BundleError(f"no usable {role} file in {self.path}")
        msg = (f"bundle {self.path} has no {precision} {role} file; using {q} instead "
               f"(pass strict=True / --strict to make this an error)")
        warnings.warn(msg, PrecisionFallbackWarning, stacklevel=3)
        return q, self.file_for(role, q)


def open_bundle(path: Union[str, Path, BundleView]) -> BundleView:
    """Load and check ``path/edgepose.json``; raises :class:`BundleError` with what to do."""
    if isinstance(path, BundleView):
        return path
    path = Path(path)
    return BundleView(path, Manifest.load(path))

