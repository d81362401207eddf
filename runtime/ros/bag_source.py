"""Frames from a bag: ``edgepose-run BUNDLE --source flight.mcap --topic /camera/image_raw``.

Reads rosbag2 (folder with ``metadata.yaml``, sqlite3 or mcap storage; a folder without it),
a single ``.mcap`` file and ROS 1 ``.bag`` files through :mod:`.bag_reader` (no schema of
another topic can stop it). Each frame is stamped with its message's ``header.stamp``
(``Frame.stamp_ns``; ``Frame.timestamp`` is the same in seconds, what the filter uses); the
message's log time and ``header.frame_id`` are kept per frame for the bag sink
(:meth:`BagSource.take_record`), which logs each pose at its image's log time. A message that does not decode (unsupported encoding,
truncated data) is one failed frame and the stream goes on. A bag that ends mid-message (a
recording that was killed) is read up to the break: an ``.mcap`` without its footer is
scanned record by record, the frames before the break are kept, and the break is reported
as a last failed frame and a warning; :attr:`~edgepose.runtime.sources.Source.incomplete` says
why (``edgepose-run`` exits 1, as for a truncated video).
"""
from __future__ import annotations

import importlib
import struct
import time
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from edgepose.errors import ConfigError, EdgePoseError

from ..sources import Frame, IncompleteSourceWarning, Source
from . import require_rosbags
from .bag_reader import BagOpenError, open_bag
from .images import IMAGE_TYPES, ImageDecodeError, decode_image, is_depth_topic, stamp_ns
from .messages import get_typestore

_READ_ERRORS = (struct.error, TypeError, ValueError, EOFError, OSError)
#: what reading imports on first use (:meth:`BagSource.preload`): the readers of
#: :func:`.bag_reader.open_bag` and :func:`_tolerant_mcap_reader`, and the modules that the code
#: rosbags generates per message type imports when it first (de)serialises one
PRELOAD = ("rosbags.rosbag1", "rosbags.rosbag2", "rosbags.rosbag2.errors", "rosbags.rosbag2.storage_mcap",
           "rosbags.serde", "rosbags.serde.primitives", "rosbags.serde.utils")


def _tolerant_mcap_reader(path: Path):
    """A rosbags ``McapReader`` that scans an ``.mcap`` without footer/summary up to its end."""
    from rosbags.rosbag2.errors import ReaderError
    from rosbags.rosbag2.storage_mcap import McapReader

    class TolerantMcapReader(McapReader):
        scan_error: Optional[str] = None

        def _open(self) -> None:
            assert self.bio
            if self.bio.read(8) != b"\x89MCAP0\r\n":
                raise ReaderError("File magic is invalid.")
            self.bio.seek(0, 2)
            size = self.bio.tell()
            self.bio.seek(8)
            self.bio.read(1)
            n = struct.unpack("<Q", self.bio.read(8))[0]
            self.bio.seek(n, 1)
            self.data_start, self.data_end = self.bio.tell(), size
            try:
                self.meta_scan()
            except (ReaderError, *_READ_ERRORS) as exc:  # the break: schemas/channels before it are kept
                self.scan_error = str(exc) or type(exc).__name__

    reader = TolerantMcapReader(path)
    reader.open()
    return reader


def _cut_mcap(path: Path, exc: BaseException) -> Optional[Path]:
    """The ``.mcap`` of a recording that was cut (no footer, or a rosbag2 folder without
    ``metadata.yaml`` holding one ``.mcap``), or ``None`` when ``exc`` is another problem."""
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        files = sorted(path.glob("*.mcap"))
        return files[0] if len(files) == 1 else None
    if path.suffix.lower() == ".mcap" and "end magic" in str(exc).lower():
        return path
    return None


class MessageRecord(NamedTuple):
    """Where frame ``i`` came from: its message's log time (ns, the recording clock) and
    ``header.frame_id`` (the camera frame)."""

    log_ns: int
    frame_id: str


class BagSource(Source):
    """The image messages of one topic of a bag, in log-time order.

    Args:
        path: ``.mcap`` / ``.db3`` / ``.bag`` file or rosbag2 folder.
        topic: the image topic; ``None`` raises :class:`ConfigError` listing the image topics.
        fps: unused for stamps (messages carry them); kept for ``open_source``'s signature.
        allow_depth: read a depth topic (name with ``depth``; 16UC1/32FC1 encodings) as frames.
    """

    def __init__(self, path: Union[str, Path], topic: Optional[str] = None, fps: float = 30.0,
                 allow_depth: bool = False):
        self._prepare(path, topic, allow_depth)
        topics = self._topics()
        if self.recovered and not topics:
            raise EdgePoseError(f"{self.path} was cut (no MCAP footer or metadata.yaml) before any complete chunk "
                                "before the break: nothing can be read from it",
                                hint="record again; ros2 bag record finalises the file on Ctrl-C")
        images, depth = split_image_topics(topics)
        if topic is None:
            raise ConfigError(f"{self.path}: name the image topic with --topic; {describe_image_topics(topics)}",
                              hint=f"e.g. --topic {next(iter(images))}" if images else
                              "this bag has no sensor_msgs/Image or CompressedImage messages")
        if topic not in topics:
            raise ConfigError(f"{self.path} has no topic {topic!r}; {_describe(topics, 'topics')}",
                              hint=f"image topics: {', '.join(images) or 'none'}")
        if topic in depth and not allow_depth:
            raise ConfigError(f"topic {topic} of {self.path} is a depth image topic, not camera frames: a pose "
                              "regressor trained on colour/intensity images gives confident nonsense on depth",
                              hint=f"camera topics: {', '.join(images) or 'none'}; pass --allow-depth if {topic} "
                                   "really carries intensity images")
        if topic not in images and topic not in depth:
            raise ConfigError(f"topic {topic} of {self.path} carries {', '.join(topics[topic][0])}, not images; "
                              f"expected {' or '.join(IMAGE_TYPES)}", hint=f"image topics: {', '.join(images) or 'none'}")
        self.count = topics[topic][1]

    def _prepare(self, path: Union[str, Path], topic: Optional[str], allow_depth: bool) -> None:
        require_rosbags("reading bags")
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f"bag not found: {self.path}")
        self.topic, self.typestore, self.recovered, self.ros1 = topic, get_typestore(), False, False
        self.allow_depth = allow_depth
        self.name = f"{self.path}:{topic}"
        self.records: Dict[int, MessageRecord] = {}
        self.track = False  # keep a MessageRecord per frame read (the bag sink turns it on and takes them)
        self.offered_qos: list = []

    @classmethod
    def listing(cls, path: Union[str, Path]) -> str:
        """The image topics of the bag at ``path`` with their types and counts (depth apart)."""
        src = cls.__new__(cls)
        src._prepare(path, None, False)
        return describe_image_topics(src._topics())

    # -- opening --------------------------------------------------------------------------
    def _open(self, every_topic: bool = False, quiet: bool = False):
        """``(reader, connections of the topic, messages(conns))``; a cut MCAP is scanned instead."""
        try:
            reader = open_bag(self.path)
        except BagOpenError as exc:
            cut = _cut_mcap(self.path, exc.cause or exc)
            if cut is None:
                raise
            reader = _tolerant_mcap_reader(cut)
            self.recovered = True
            conns = [c for c in reader.connections if every_topic or c.topic == self.topic]
            return reader, conns, reader.messages_scan
        if reader.warning and not (every_topic or quiet):
            warnings.warn(reader.warning)
        self.ros1 = reader.is_ros1
        conns = [c for c in reader.connections if every_topic or c.topic == self.topic]
        return reader, conns, reader.messages

    def _topics(self) -> Dict[str, Tuple[List[str], int]]:
        reader, conns, _ = self._open(every_topic=True)
        try:
            out: Dict[str, Tuple[List[str], int]] = {}
            counts = self._scan_counts(reader) if self.recovered else None
            for c in conns:
                types, n = out.get(c.topic, ([], 0))
                if c.msgtype not in types:
                    types.append(c.msgtype)
                out[c.topic] = (types, n + (counts.get(c.id, 0) if counts is not None else c.msgcount))
                if c.topic == self.topic:
                    self.offered_qos.extend(getattr(c.ext, "offered_qos_profiles", None) or [])
            return out
        finally:
            reader.close()

    @staticmethod
    def _scan_counts(reader) -> Dict[int, int]:
        counts: Dict[int, int] = {}
        try:
            for c, _, _ in reader.messages_scan(reader.connections):
                counts[c.id] = counts.get(c.id, 0) + 1
        except Exception:  # noqa: BLE001 - the break of a truncated file: count what came before
            pass
        return counts

    def __len__(self) -> int:
        return self.count

    def preload(self) -> None:
        """The readers, the cut-MCAP scanner and what rosbags' generated deserialisers import."""
        for name in PRELOAD:
            importlib.import_module(name)

    def take_record(self, index: int) -> Optional[MessageRecord]:
        """Log time and ``header.frame_id`` of frame ``index``, handed over once (``None`` when
        it was not read, or ``track`` is off): the records never outgrow the frames in flight."""
        return self.records.pop(index, None)

    # -- reading --------------------------------------------------------------------------
    def raw_messages(self) -> Iterator[Tuple[object, int, bytes]]:
        """``(connection, log ns, CDR bytes)`` of the topic, in the order frames are read
        (ROS 1 messages converted to CDR): what ``--copy-images`` copies."""
        reader, conns, messages = self._open(quiet=True)
        try:
            for c, log_ns, raw in messages(conns):
                if self.ros1:  # through the message: ros1_to_cdr with the Humble store failed on ROS 1 Images
                    raw = self.typestore.serialize_cdr(self.typestore.deserialize_ros1(raw, c.msgtype), c.msgtype)
                yield c, log_ns, raw
        finally:
            reader.close()

    def __iter__(self) -> Iterator[Frame]:
        reader, conns, messages_of = self._open()
        if self.recovered:
            self.incomplete = f"{self.path} has no MCAP footer or no metadata.yaml (the recording was cut)"
            warnings.warn(self.incomplete + "; reading up to the break", IncompleteSourceWarning)
        messages = messages_of(conns)
        i = 0
        try:
            while True:
                t0 = time.perf_counter()
                wall = time.time()
                try:
                    item = next(messages)
                except StopIteration:
                    return
                except Exception as exc:  # noqa: BLE001 - the reader's errors (bag ends mid-message)
                    msg = f"bag {self.path} ends mid-message after {i} frames on {self.topic}: {str(exc).rstrip('.')}"
                    self.incomplete = msg
                    warnings.warn(msg + "; the results so far are kept", IncompleteSourceWarning)
                    yield Frame(i, wall, t0, 0.0, None, msg, f"{self.path}#end")
                    return
                yield self._frame(i, item, wall, t0)
                i += 1
        finally:
            reader.close()

    def _deserialize(self, raw, msgtype: str):
        if self.ros1:
            return self.typestore.deserialize_ros1(raw, msgtype)
        return self.typestore.deserialize_cdr(raw, msgtype)

    def _frame(self, i: int, item, wall: float, t0: float) -> Frame:
        conn, log_ns, raw = item
        image, error, stamp, frame_id = None, None, int(log_ns), ""
        try:
            msg = self._deserialize(raw, conn.msgtype)
            stamp = stamp_ns(msg)
            frame_id = str(msg.header.frame_id)
            image = decode_image(msg, conn.msgtype, allow_depth=self.allow_depth)
        except ImageDecodeError as exc:
            error = exc.message
        except Exception as exc:  # noqa: BLE001 - a message that does not deserialise is one bad frame
            error = f"{conn.msgtype} message at log time {log_ns} does not deserialise: {exc}"
        if self.track:
            self.records[i] = MessageRecord(int(log_ns), frame_id)
        return Frame(i, wall, t0, stamp / 1e9, image, error, f"{self.topic}@{stamp}",
                     (time.perf_counter() - t0) * 1e3, stamp_ns=stamp)


def split_image_topics(topics: Dict[str, Tuple[List[str], int]]):
    """``(camera topics, depth topics)`` among the image topics (depth: by name, REP 118 habits)."""
    images = {t: v for t, v in topics.items() if any(ty in IMAGE_TYPES for ty in v[0])}
    depth = {t: v for t, v in images.items() if is_depth_topic(t)}
    return {t: v for t, v in images.items() if t not in depth}, depth


def describe_image_topics(topics: Dict[str, Tuple[List[str], int]]) -> str:
    """The image topics with types and counts; depth topics named apart."""
    images, depth = split_image_topics(topics)
    text = _describe(images, "image topics")
    if depth:
        text += "; " + _describe(depth, "depth topics (not camera frames; --allow-depth reads them)")[4:]
    return text


def _describe(topics: Dict[str, Tuple[List[str], int]], what: str) -> str:
    if not topics:
        return f"it has no {what}"
    rows = [f"{t} ({', '.join(ty)}, {n} messages)" for t, (ty, n) in sorted(topics.items())]
    return f"its {what}: " + "; ".join(rows)
