"""TensorRT timing cache: one file per TensorRT version, reused across builds.

A timing cache remembers which tactic was fastest for each layer, so the second build of the
same model (or a similar one) on the same device takes seconds instead of minutes. Caches
from another TensorRT version are useless or rejected, so the file name carries the version,
as jetson-inference does (``tensorrt.<version>.timingcache``).

Default folder: ``$EDGEPOSE_CACHE`` or ``~/.cache/edgepose``. Writes are atomic.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

from edgepose.atomic import atomic_write_bytes

PathLike = Union[str, Path]


def default_cache_dir() -> Path:
    env = os.environ.get("EDGEPOSE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgepose"


def timing_cache_path(trt_version: str, cache_dir: Optional[PathLike] = None) -> Path:
    """``<cache_dir>/tensorrt.<trt_version>.timingcache``.

    >>> timing_cache_path("8.5.2.2", "/tmp/c").as_posix()
    '/tmp/c/tensorrt.8.5.2.2.timingcache'
    """
    safe = re.sub(r"[^0-9A-Za-z._-]+", "-", str(trt_version)) or "unknown"
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"tensorrt.{safe}.timingcache"


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


def attach_timing_cache(config, path: PathLike):
    """Create a timing cache from ``path`` (or empty) and set it on a ``trt.IBuilderConfig``.

    Returns the cache object, or ``None`` when this TensorRT has no timing-cache API.
    """
    if not hasattr(config, "create_timing_cache"):
        return None
    cache = config.create_timing_cache(read_cache_bytes(path))
    config.set_timing_cache(cache, True)  # ignore_mismatch: a stale cache is ignored, not fatal
    return cache


def save_timing_cache(config, path: PathLike) -> Optional[Path]:
    """Serialize the config's timing cache (after a build) to ``path``."""
    getter = getattr(config, "get_timing_cache", None)
    if getter is None:
        return None
    cache = getter()
    if cache is None:
        return None
    return write_cache_bytes(path, memoryview(cache.serialize()).tobytes())
