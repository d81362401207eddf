"""Crash-safe writes: a file or folder either appears complete or not at all.

Files are written to a temporary sibling, flushed and fsync'ed, then renamed over the target
(``os.replace`` is atomic on POSIX). Folders are built under a temporary sibling and renamed
at the end, so a crash never leaves a half-written bundle that looks valid.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Union

from .jsonsafe import dumps

PathLike = Union[str, "os.PathLike[str]"]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, writer: Callable[[object], None], mode: str = "wb") -> Path:
    """Call ``writer(fileobj)`` on a temporary file, fsync, and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, mode) as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), "wb")


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text), "w")


def atomic_write_json(path: PathLike, obj, indent: int = 2) -> Path:
    """Write ``obj`` as strict JSON: NaN/Infinity become ``null`` with a reason (:mod:`edgepose.jsonsafe`)."""
    return atomic_write_text(path, dumps(obj, indent=indent, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path``; on error it is removed.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "bundle"
    >>> with atomic_dir(d) as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> (d / "a.txt").read_text()
    'x'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the pid in the name lets a later run tell a killed run's leftover from a live one
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=str(path.parent)))
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(path)
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
