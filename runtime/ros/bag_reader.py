"""Open any bag as one time-ordered stream of raw messages, tolerant of what robots record.

rosbags' ``AnyReader`` parses the message definition of EVERY connection on open, so a bag
with one definition it cannot parse cannot be opened at all: rosbag2 (Jazzy+) records
service-event topics with the raw ``.srv`` text as their schema (ros2/rosbag2 #2365), and the
reader fails before any image topic is read. Image messages need no definition from the bag
(``sensor_msgs/Image`` and ``CompressedImage`` are the same in every ROS 2 distribution and
rosbags converts ROS 1's to CDR), so :func:`open_bag` opens rosbags' per-format readers
directly, never parses a schema, and deserialises with the Humble type store.

Also read: a rosbag2 folder without ``metadata.yaml`` (a recording killed before rosbag2
wrote it, or files copied without it): its ``.mcap``/``.db3`` files are opened one by one
and merged by log time, with a warning that ``ros2 bag reindex`` restores the metadata.
A bag that cannot be opened raises :class:`EdgePoseError` with the fix for ITS format:
``rosbag reindex`` for a ROS 1 bag, ``ros2 bag reindex`` for a rosbag2 folder.
"""
from __future__ import annotations

import heapq
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from edgepose.errors import EdgePoseError


def reindex_hint(path: Path) -> str:
    """What fixes an unreadable bag of this kind."""
    if path.suffix.lower() == ".bag":
        return f"a ROS 1 bag that was not closed needs `rosbag reindex {path}` (ROS 1 tools)"
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        return (f"a rosbag2 folder without metadata.yaml needs `ros2 bag reindex {path}` "
                "(add `-s mcap` or `-s sqlite3` for its storage)")
    if path.suffix.lower() == ".mcap":
        return f"check the file with `mcap doctor {path}` (mcap CLI); a cut recording can be repaired with `mcap recover`"
    return f"check the bag with `ros2 bag info {path}`; a damaged folder can be rebuilt with `ros2 bag reindex {path}`"


class BagReader:
    """Raw messages of one bag (rosbag2 folder, ``.mcap``, ``.db3``, ROS 1 ``.bag``, or a
    rosbag2 folder without metadata), merged in log-time order.

    Attributes:
        connections: rosbags ``Connection`` objects (``topic``, ``msgtype``, ``msgcount``,
            ``ext.offered_qos_profiles`` for rosbag2).
        is_ros1: messages are ROS 1 serialised (convert with ``typestore.ros1_to_cdr``).
        warning: why the bag was read in a degraded way (no metadata.yaml), else ``None``.
    """

    def __init__(self, path: Path, readers: Sequence, is_ros1: bool, warning: Optional[str] = None):
        self.path, self.readers, self.is_ros1, self.warning = path, list(readers), is_ros1, warning
        self.connections = [c for r in self.readers for c in r.connections]

    def messages(self, connections: Sequence = ()) -> Iterator[Tuple[object, int, bytes]]:
        """``(connection, log time ns, raw bytes)`` of the given connections (all when empty)."""
        wanted = list(connections)
        streams = []
        for r in self.readers:
            own = {id(c) for c in r.connections}
            mine = [c for c in wanted if id(c) in own] if wanted else list(r.connections)
            if mine:
                streams.append(r.messages(connections=mine))
        if len(streams) == 1:
            return iter(streams[0])
        return heapq.merge(*streams, key=lambda item: item[1])

    def close(self) -> None:
        for r in self.readers:
            try:
                r.close()
            except Exception:  # noqa: BLE001 - closing what is left; the first error was reported
                pass

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _files_without_metadata(path: Path) -> List[Path]:
    return sorted(path.glob("*.mcap")) or sorted(path.glob("*.db3"))


def open_bag(path: Path) -> BagReader:
    """Open ``path`` (see the module docstring); raises :class:`EdgePoseError` with the fix."""
    from rosbags.rosbag1 import Reader as Reader1
    from rosbags.rosbag2 import Reader as Reader2

    path = Path(path)
    opened: List = []
    warning = None
    try:
        if path.suffix.lower() == ".bag":
            readers, is_ros1 = [Reader1(path)], True
        elif path.is_dir() and not (path / "metadata.yaml").is_file():
            files = _files_without_metadata(path)
            if not files:
                raise EdgePoseError(f"{path} is a folder without metadata.yaml and without .mcap or .db3 files: "
                                    "not a rosbag2 bag", hint="pass the bag's folder or one of its files")
            readers, is_ros1 = [Reader2(f) for f in files], False
            warning = (f"{path} has no metadata.yaml; reading its {len(files)} file(s) "
                       f"({', '.join(f.name for f in files)}) merged by log time. {reindex_hint(path)}")
        else:
            readers, is_ros1 = [Reader2(path)], False
        for r in readers:
            r.open()
            opened.append(r)
    except EdgePoseError:
        raise
    except Exception as exc:  # noqa: BLE001 - rosbags raises its own errors and the stdlib's
        for r in opened:
            try:
                r.close()
            except Exception:  # noqa: BLE001
                pass
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BagOpenError(f"cannot read bag {path}: {first[:300]}", hint=reindex_hint(path), cause=exc) from None
    return BagReader(path, opened, is_ros1, warning)


class BagOpenError(EdgePoseError):
    """A bag that rosbags cannot open; ``cause`` keeps the reader's own exception."""

    def __init__(self, message: str, hint: Optional[str] = None, cause: Optional[BaseException] = None):
        super().__init__(message, hint=hint)
        self.cause = cause
