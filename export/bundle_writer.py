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

The manifest's sections come from the one manifest model, :mod:`edgepose.bundle`
(``InputSpec.for_model(...).to_manifest()``, ``outputs_section``, ``normalization_section``);
:func:`normalization` and :func:`model_section` adapt a model config to them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Union

from edgepose import __version__
from edgepose.atomic import atomic_write_bytes
from edgepose.bundle import MANIFEST, PRECISIONS, file_entry, normalization_section, onnx_filename, write_manifest
from edgepose.errors import BundleError

from .out_folder import check_out_dir, clean_stale_partials, install

PathLike = Union[str, Path]

#: file names inside a bundle (the rule is :func:`edgepose.bundle.onnx_filename`)
ONNX_NAMES = {p: onnx_filename(p) for p in PRECISIONS}
CHECKPOINT_NAME = "model.pt"
CALIBRATION_CACHE_NAME = "calibration.cache"
PARITY_NAME = "parity.npz"


# --------------------------------------------------------------------------- manifest parts
def normalization(config: dict) -> dict:
    """The manifest's ``normalization`` of a model config (:func:`edgepose.bundle.normalization_section`)."""
    return normalization_section(config["position_mean"], config["position_scale"])


def model_section(config: dict) -> dict:
    return {"backbone": config["backbone"], "input_size": [int(v) for v in config["input_size"]],
            "mean": [float(v) for v in config.get("pixel_mean", [])],
            "std": [float(v) for v in config.get("pixel_std", [])],
            "hidden": config.get("hidden"), "config": dict(config)}


# --------------------------------------------------------------------------- assembly
class BundleAssembly:
    """A bundle being written in a temporary folder. Use :func:`assemble`."""

    def __init__(self, tmp: Path):
        self.dir = tmp
        self.files: Dict[str, dict] = {}

    def path(self, rel: str) -> Path:
        return self.dir / rel

    def start_from(self, bundle: PathLike, manifest: dict, drop_roles: Sequence[str] = ()) -> None:
        """Bring the files of an existing bundle (except ``drop_roles``) with their entries."""
        bundle = Path(bundle)
        for rel, entry in manifest["files"].items():
            if entry.get("role") in drop_roles:
                continue
            src, dst = bundle / rel, self.dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
            self.files[rel] = dict(entry)

    def remove(self, rel: str) -> None:
        self.files.pop(rel, None)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / rel).unlink()

    def add_file(self, src: PathLike, rel: str, role: str, precision: Optional[str] = None, **extra) -> dict:
        """Copy ``src`` into the bundle as ``rel`` and list it."""
        dst = self.dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).resolve() != dst.resolve():
            with contextlib.suppress(FileNotFoundError):
                dst.unlink()  # may be a hard link into the old bundle: never write through it
            shutil.copyfile(src, dst)
        return self.register(rel, role, precision, **extra)

    def add_bytes(self, data: bytes, rel: str, role: str, precision: Optional[str] = None, **extra) -> dict:
        atomic_write_bytes(self.dir / rel, data)
        return self.register(rel, role, precision, **extra)

    def register(self, rel: str, role: str, precision: Optional[str] = None, **extra) -> dict:
        """List a file already written at ``self.path(rel)``."""
        if not self.path(rel).is_file():
            raise BundleError(f"cannot list {rel}: it was not written into the bundle")
        self.files[rel] = file_entry(self.dir, rel, role, precision, **extra)
        return self.files[rel]

    def finish(self, manifest: dict) -> dict:
        """Write ``edgepose.json`` (files listed) into the temporary folder; returns the manifest."""
        manifest = dict(manifest)
        manifest["files"] = dict(self.files)
        manifest.setdefault("edgepose_version", __version__)
        write_manifest(self.dir, manifest)
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
        yield BundleAssembly(tmp)
        if not (tmp / MANIFEST).is_file():
            raise BundleError(f"bundle {out} was not finished (no {MANIFEST} written)")
        install(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
