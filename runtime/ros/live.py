"""A live :class:`~edgepose.runtime.sources.Source` fed by image messages from callbacks.

The ROS 2 node's subscription callback calls :meth:`MessageSource.push` with each
``sensor_msgs/Image`` / ``CompressedImage`` (any object with the message's fields: an rclpy
message on the robot, a rosbags one in the tests); the pipeline's source thread iterates it.
It never blocks the callback: when the pipeline has not taken the previous frame yet, that
stale frame is dropped and counted (``dropped``), on top of the pipeline's own ``latest``
policy drops. :meth:`close` ends the iteration (call it before closing the pipeline).
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Iterator, Optional

from ..sources import Frame, Source
from .images import ImageDecodeError, decode_image, stamp_ns


def frame_from_message(msg, msgtype: str, index: int) -> Frame:
    """Decode one image message into a :class:`Frame` stamped with its ``header.stamp``."""
    t0, wall = time.perf_counter(), time.time()
    image, error, stamp = None, None, None
    try:
        stamp = stamp_ns(msg)
        image = decode_image(msg, msgtype)
    except ImageDecodeError as exc:
        error = exc.message
    except Exception as exc:  # noqa: BLE001 - a malformed message is one failed frame
        error = f"{msgtype} message could not be read: {exc}"
    if stamp is None:
        stamp = int(round(wall * 1e9))
    return Frame(index, wall, t0, stamp / 1e9, image, error, f"{msgtype.rsplit('/', 1)[-1]}@{stamp}",
                 (time.perf_counter() - t0) * 1e3, stamp_ns=stamp)


class MessageSource(Source):
    """Frames pushed from another thread; live (the pipeline uses the ``latest`` policy)."""

    live = True

    def __init__(self, name: str = "ros2", msgtype: str = "sensor_msgs/msg/Image", capacity: int = 1):
        self.name, self.msgtype = name, msgtype
        self._q: "queue.Queue[Frame]" = queue.Queue(max(1, int(capacity)))
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self.received = 0
        self.dropped = 0

    def push(self, msg, msgtype: Optional[str] = None) -> None:
        """Decode ``msg`` and queue it, replacing a stale frame the pipeline has not taken."""
        if self._closed.is_set():
            return
        with self._lock:
            frame = frame_from_message(msg, msgtype or self.msgtype, self.received)
            self.received += 1
            while True:
                try:
                    self._q.put_nowait(frame)
                    return
                except queue.Full:
                    try:
                        self._q.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def __iter__(self) -> Iterator[Frame]:
        while not self._closed.is_set():
            try:
                yield self._q.get(timeout=0.05)
            except queue.Empty:
                continue

    def close(self) -> None:
        self._closed.set()
