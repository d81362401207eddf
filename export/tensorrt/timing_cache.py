"""TensorRT timing cache: one file per TensorRT version AND device, reused across builds.

A timing cache remembers which tactic was fastest for each layer, so the second build of the
same model on the same device takes seconds instead of minutes. What we do, following
Polygraphy (NVIDIA/TensorRT ``tools/Polygraphy/polygraphy/backend/trt/config.py`` and
``loader.py``) rather than the TensorRT samples' ``ignore_mismatch=True``:

* the file name carries the TensorRT version, the GPU name and the compute capability
  (:func:`timing_cache_path`): TensorRT ``NvInfer.h`` (10.3) warns that using a cache made on
  another device with ``ignoreMismatch`` "may lead to functional/performance bugs";
* the cache is attached with ``ignore_mismatch=False`` (:func:`attach_timing_cache`), and its
  answer is read: ``IBuilderConfig::setTimingCache`` returns false when it rejects the cache
  (``NvInfer.h`` 10.3), in which case the build says so and starts from an empty cache;
* the file is read and written under an exclusive lock (:func:`locked`), and what another
  process saved meanwhile is merged (``ITimingCache.combine``) before the atomic write
  (:func:`save_timing_cache`).

Default folder: ``$EDGEPOSE_CACHE`` or ``~/.cache/edgepose``.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterator, Optional, Union

from edgepose.atomic import atomic_write_bytes

PathLike = Union[str, Path]


def default_cache_dir() -> Path:
    env = os.environ.get("EDGEPOSE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgepose"


def _safe(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "-", str(text)).strip("-") or "unknown"


def timing_cache_path(trt_version: str, gpu: str, compute_capability: str,
                      cache_dir: Optional[PathLike] = None) -> Path:
    """``<cache_dir>/tensorrt.<version>.<gpu>.sm<cc>.timingcache``.

    >>> timing_cache_path("10.3.0", "Orin (nvgpu)", "8.7", "/tmp/c").as_posix()
    '/tmp/c/tensorrt.10.3.0.Orin-nvgpu.sm87.timingcache'
    """
    cc = _safe(str(compute_capability).replace(".", ""))
    name = f"tensorrt.{_safe(trt_version)}.{_safe(gpu)}.sm{cc}.timingcache"
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / name


@contextlib.contextmanager
def locked(path: PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (``fcntl.flock``; a no-op where fcntl is missing)."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: builds there are not concurrent in practice
        yield
        return
    with open(lock, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_cache_bytes(path: PathLike) -> bytes:
    """The cache file's bytes, or ``b""`` when it does not exist or cannot be read (a fresh cache)."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def write_cache_bytes(path: PathLike, data: bytes) -> Optional[Path]:
    """Write the serialized cache atomically; return the path, or ``None`` if nothing to write."""
    if not data:
        return None
    return atomic_write_bytes(path, bytes(data))


def attach_timing_cache(config, path: PathLike, log=print):
    """Create a timing cache from ``path`` (or empty) and set it on a ``trt.IBuilderConfig``
    with ``ignore_mismatch=False``. Returns the cache, or ``None`` without a timing-cache API.

    A cache the config rejects (``set_timing_cache`` returns false: another device or TensorRT
    wrote it) is reported and replaced by an empty one; the save after the build overwrites it.
    """
    if not hasattr(config, "create_timing_cache"):
        return None
    with locked(path):
        data = read_cache_bytes(path)
    cache = config.create_timing_cache(data)
    if config.set_timing_cache(cache, False) is False:  # a cache from another device is refused, not trusted
        log(f"timing cache {path} was rejected by this TensorRT/device (set_timing_cache returned false); "
            "building with an empty cache, which will replace it")
        cache = config.create_timing_cache(b"")
        if config.set_timing_cache(cache, False) is False:
            log("the empty timing cache was rejected too; building without a timing cache")
            return None
    return cache


def save_timing_cache(config, path: PathLike, log=print) -> Optional[Path]:
    """Merge the config's cache (after a build) with the file's current content, write it atomically."""
    getter = getattr(config, "get_timing_cache", None)
    cache = getter() if getter is not None else None
    if cache is None:
        return None
    with locked(path):
        on_disk = read_cache_bytes(path)
        if on_disk and hasattr(cache, "combine"):
            other = config.create_timing_cache(on_disk)
            if not cache.combine(other, False):  # what another build saved meanwhile
                log(f"timing cache {path}: the saved cache does not match this device; replacing it")
        return write_cache_bytes(path, memoryview(cache.serialize()).tobytes())
