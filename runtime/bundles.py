"""A read-only view of a bundle for the runtime: manifest, input spec, and which file serves
which backend and precision (with the never-silent precision fallback)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from edgepose.bundle import BundleFiles, FileEntry, check_precision
from edgepose.bundle_integrity import verified_file
from edgepose.errors import BundleError, ConfigError
from edgepose.manifest import Manifest

from .spec import InputSpec


class PrecisionFallbackWarning(UserWarning):
    """The asked precision has no file in the bundle; a neighbouring one is used instead."""


@dataclass
class BundleView:
    """``path`` (folder) and typed ``manifest`` of one bundle."""

    path: Path
    manifest: Manifest

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
        return None if rel is None else verified_file(self.path, self.manifest, rel)

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

