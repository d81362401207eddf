"""What ``edgepose-export --out DIR`` may touch: only the files an export wrote there.

An export never deletes a user's file. In ``DIR`` it may replace the files the existing
``edgepose.json`` lists *and* that still match their recorded size and sha256 (so they are
exactly what an export wrote), and the manifest itself. Anything else in ``DIR`` (a user's
notes, a ``sub/data.csv``, a listed file someone edited) is *unknown*:

* without ``--overwrite`` the export refuses before doing any work and names those files;
* with ``--overwrite`` they stay where they are; one that has the name of a file the new
  bundle writes is moved aside to ``DIR/kept-by-edgepose-export-<UTC time>/`` first.

The new bundle is built in a hidden sibling ``.DIR.<pid>.<random>.partial`` (see
:func:`edgepose.atomic.atomic_dir`); a fresh ``DIR`` is renamed into place in one step. An
existing one is updated file by file with the manifest removed first and written last, so a
crash half-way leaves a folder without a valid manifest (refused by every reader), never a
bundle that looks valid. A ``.partial`` folder left by a killed export is removed by the next
export to the same ``DIR`` only when its ownership record proves an export made it and that
process is gone (:func:`clean_stale_partials`).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
from pathlib import Path
from typing import List, Set, Union

from edgepose.atomic import _fsync_dir
from edgepose.bundle_integrity import file_problem
from edgepose.errors import BundleError
from edgepose.manifest import MANIFEST, Manifest
from edgepose.outputs import OWNER_FILE, read_owner, write_owner

PathLike = Union[str, Path]
KEPT_PREFIX = "kept-by-edgepose-export-"
#: the tool named in a temporary bundle folder's ownership record
PARTIAL_TOOL = "edgepose-export (bundle being written)"


def _files_under(root: Path) -> List[str]:
    """Relative paths of every file (and link) under ``root``, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        for name in filenames + [n for n in dirnames if (d / n).is_symlink()]:
            out.append((d / name).relative_to(root).as_posix())
    return sorted(out)


def owned_files(out: Path) -> Set[str]:
    """The files of ``out`` an export wrote: its manifest and every listed file that still matches
    (a manifest this edgepose cannot read owns nothing but itself)."""
    manifest_path = out / MANIFEST
    if not manifest_path.is_file() or manifest_path.is_symlink():
        return set()
    try:
        manifest = Manifest.load(out)
    except BundleError:
        return {MANIFEST}
    return {MANIFEST} | {rel for rel, entry in manifest.files.items() if file_problem(out, rel, entry) is None}


def unknown_files(out: Path) -> List[str]:
    """Files in ``out`` that no export wrote (empty for a missing or empty folder)."""
    if not out.is_dir():
        return []
    owned = owned_files(out)
    return [rel for rel in _files_under(out) if rel not in owned and not rel.startswith(KEPT_PREFIX)]


def check_out_dir(out: PathLike, overwrite: bool = False) -> None:
    """Refuse ``--out`` when it is a file, or holds files no export wrote (unless ``overwrite``)."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BundleError(f"--out {out} is a {'link' if out.is_symlink() else 'file'}; expected a bundle folder",
                          hint="pick another --out path")
    unknown = unknown_files(out)
    if unknown and not overwrite:
        shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        raise BundleError(f"--out {out} holds {len(unknown)} file(s) no edgepose export wrote (not listed in its "
                          f"{MANIFEST}, or changed since): {shown}; export never deletes them",
                          hint=f"pick a new or empty folder for --out, or pass --overwrite to export into {out} anyway "
                               f"(those files are kept; one named like a bundle file is moved to {out}/{KEPT_PREFIX}...)")


def clean_stale_partials(out: PathLike) -> List[Path]:
    """Remove the ``.OUT.<pid>.*.partial`` siblings left by exports that were killed: only
    folders whose ownership record (:data:`edgepose.outputs.OWNER_FILE`, written when the export
    created them) names ``edgepose-export`` and a process that is gone. A folder that merely has
    such a name is a user's, and stays."""
    out = Path(out)
    removed: List[Path] = []
    if not out.parent.is_dir():
        return removed
    prefix = f".{out.name}."
    for sib in out.parent.iterdir():
        if not (sib.name.startswith(prefix) and sib.name.endswith(".partial")) or sib.is_symlink() or not sib.is_dir():
            continue
        record = read_owner(sib)
        pid = record.get("pid") if record is not None and record["tool"] == PARTIAL_TOOL else None
        if not isinstance(pid, int) or _alive(pid):
            continue  # not ours, or another export to the same folder is running
        shutil.rmtree(sib, ignore_errors=True)
        removed.append(sib)
    return removed


def mark_partial(tmp: Path) -> None:
    """Record that this process created the temporary bundle folder ``tmp``."""
    write_owner(tmp, PARTIAL_TOOL, pid=os.getpid(), out=tmp.name)


def unmark_partial(tmp: Path) -> None:
    """Remove the record before ``tmp`` becomes the bundle (it is not a bundle file)."""
    with contextlib.suppress(FileNotFoundError):
        (tmp / OWNER_FILE).unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def install(tmp: Path, out: Path, overwrite: bool = False) -> None:
    """Put the finished bundle in ``tmp`` at ``out``, touching only what an export wrote."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
        _fsync_dir(out.parent)
        return
    owned = owned_files(out)
    unknown = set(unknown_files(out))
    if unknown and not overwrite:  # the folder changed since the check at the start
        check_out_dir(out, overwrite)
    new = _files_under(tmp)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for rel in new:  # a user's file with a bundle file's name: moved aside, never overwritten
        if rel in unknown or (out / rel).is_dir():
            dst = out / f"{KEPT_PREFIX}{stamp}" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(out / rel, dst)
    with contextlib.suppress(FileNotFoundError):
        (out / MANIFEST).unlink()  # from here until the end the folder is not a valid bundle
    for rel in new:
        if rel == MANIFEST:
            continue
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, out / rel)
    for rel in sorted(owned - set(new) - {MANIFEST}):  # files of the old bundle the new one has not
        with contextlib.suppress(FileNotFoundError):
            (out / rel).unlink()
    os.replace(tmp / MANIFEST, out / MANIFEST)
    _fsync_dir(out)
