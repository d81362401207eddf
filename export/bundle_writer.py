"""Assemble a bundle folder: artefacts first, ``edgepose.json`` last, put in place at the end.

:func:`assemble` yields a :class:`BundleAssembly`: every file is written into a temporary
sibling folder and listed with its role, precision, sha256 and size
(:func:`edgepose.bundle.file_entry`); :meth:`BundleAssembly.finish` writes the manifest with
:func:`edgepose.bundle.write_manifest`. Only then is the bundle put at ``BUNDLE``
(:mod:`.out_folder`: a new folder is renamed into place; an existing one has only the files an
export wrote replaced, never a user's), so an error or a crash never leaves a half-written
bundle that looks valid.

Adding engines to an existing bundle (the Jetson path) starts from a copy of it
(:meth:`BundleAssembly.start_from`, hard links where the filesystem allows) and replaces it
the same way.

The manifest is the one typed model, :class:`edgepose.manifest.Manifest`:
:meth:`BundleAssembly.finish` takes one (its ``files`` are replaced by those written here),
validates it and writes it with :meth:`Manifest.save`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Union

from edgepose import __version__
from edgepose.atomic import atomic_write_bytes
from edgepose.bundle import MANIFEST, PRECISIONS, FileEntry, onnx_filename, sha256_file
from edgepose.errors import BundleError
from edgepose.manifest import Manifest

from .out_folder import check_out_dir, clean_stale_partials, install, mark_partial, unmark_partial

PathLike = Union[str, Path]

#: file names inside a bundle (the rule is :func:`edgepose.bundle.onnx_filename`)
ONNX_NAMES = {p: onnx_filename(p) for p in PRECISIONS}
CHECKPOINT_NAME = "model.pt"
CALIBRATION_CACHE_NAME = "calibration.cache"
PARITY_NAME = "parity.npz"


# --------------------------------------------------------------------------- assembly
class BundleAssembly:
    """A bundle being written in a temporary folder. Use :func:`assemble`."""

    def __init__(self, tmp: Path):
        self.dir = tmp
        self.files: Dict[str, FileEntry] = {}

    def path(self, rel: str) -> Path:
        return self.dir / rel

    def start_from(self, bundle: PathLike, manifest: Manifest, drop_roles: Sequence[str] = ()) -> None:
        """Bring the files of an existing bundle (except ``drop_roles``) with their entries."""
        bundle = Path(bundle)
        for rel, entry in manifest.files.items():
            if entry.role in drop_roles:
                continue
            src, dst = bundle / rel, self.dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
            self.files[rel] = entry

    def remove(self, rel: str) -> None:
        self.files.pop(rel, None)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / rel).unlink()

    def add_file(self, src: PathLike, rel: str, role: str, precision: Optional[str] = None, **extra) -> FileEntry:
        """Copy ``src`` into the bundle as ``rel`` and list it."""
        dst = self.dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).resolve() != dst.resolve():
            with contextlib.suppress(FileNotFoundError):
                dst.unlink()  # may be a hard link into the old bundle: never write through it
            shutil.copyfile(src, dst)
        return self.register(rel, role, precision, **extra)

    def add_bytes(self, data: bytes, rel: str, role: str, precision: Optional[str] = None, **extra) -> FileEntry:
        atomic_write_bytes(self.dir / rel, data)
        return self.register(rel, role, precision, **extra)

    def register(self, rel: str, role: str, precision: Optional[str] = None, **extra) -> FileEntry:
        """List a file already written at ``self.path(rel)``."""
        p = self.path(rel)
        if not p.is_file():
            raise BundleError(f"cannot list {rel}: it was not written into the bundle")
        self.files[rel] = FileEntry(role, precision, sha256_file(p), p.stat().st_size, dict(extra))
        return self.files[rel]

    def finish(self, manifest: Manifest) -> Manifest:
        """Write ``edgepose.json`` (listing the files written here) into the temporary folder,
        through :meth:`Manifest.from_json` so a manifest this edgepose could not read is never
        written; returns it."""
        manifest = replace(manifest, files=dict(self.files), edgepose_version=__version__, created=None)
        manifest = Manifest.from_json(manifest.to_json(), self.dir / MANIFEST)
        manifest.save(self.dir)
        return manifest


@contextlib.contextmanager
def assemble(out: PathLike, overwrite: bool = False) -> Iterator[BundleAssembly]:
    """Yield a :class:`BundleAssembly`; call ``finish(manifest)`` inside the block.

    On success the new bundle is put at ``out`` touching only files an export wrote there
    (:func:`.out_folder.install`); on any error the temporary folder is removed and ``out``
    is left as it was. A block that never calls ``finish`` is an error (no manifest, no
    bundle). ``.partial`` folders of killed exports to ``out`` are removed first.
    """
    out = Path(out)
    check_out_dir(out, overwrite)
    clean_stale_partials(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=str(out.parent)))
    try:
        mark_partial(tmp)  # the proof, for a later export, that this leftover is ours to remove
        yield BundleAssembly(tmp)
        if not (tmp / MANIFEST).is_file():
            raise BundleError(f"bundle {out} was not finished (no {MANIFEST} written)")
        unmark_partial(tmp)
        install(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
