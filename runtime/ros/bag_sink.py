"""Poses into a bag: ``edgepose-run BUNDLE --source flight.mcap --topic /cam --out poses.mcap``.

Writes ``geometry_msgs/PoseWithCovarianceStamped`` on ``/edgepose/pose`` (topic and
``frame_id`` configurable) with ``header.stamp`` = the image's stamp, and the same stamp as
the bag's log time, so ``ros2 bag play`` and Foxglove show the trajectory next to the
camera. ``poses.mcap`` is one MCAP file; ``poses_bag/`` (trailing slash) a rosbag2 folder
(``metadata.yaml`` + mcap storage). Failed frames are not published: the bag's
``custom_data`` and the sidecar ``<out>.summary.json`` say how many. ``copy_images`` copies
the input image topic through (the messages up to the last frame processed), so one file
shows both.

Nothing half-written: the bag is built in a hidden ``.partial`` folder beside the target and
moved into place by :meth:`close`, which the CLI calls however the run ends (Ctrl-C
included). An existing target is refused unless ``overwrite``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Tuple, Union

from edgepose.atomic import atomic_write_json
from edgepose.errors import ConfigError

from ..results import PoseResult
from ..sinks import Sink
from . import require_rosbags
from .messages import (DEFAULT_FRAME_ID, DEFAULT_POSE_TOPIC, IMAGE_QOS, POSE_QOS, POSE_TYPE, get_typestore,
                       pose_message, to_rosbags, to_rosbags_qos)


def summary_path(out: Union[str, Path]) -> Path:
    p = Path(str(out).rstrip("/"))
    return p.with_name(p.name + ".summary.json")


class BagSink(Sink):
    """Write each ``ok`` :class:`PoseResult` as a ``PoseWithCovarianceStamped``.

    Args:
        path: ``*.mcap`` (one file) or a folder (rosbag2 with mcap storage).
        topic, frame_id: where the poses go and the world frame they are in.
        overwrite: replace an existing output (a file, or a folder holding ``metadata.yaml``).
        copy_images: ``(input bag path, image topic)`` to copy through on close.
    """

    def __init__(self, path: Union[str, Path], topic: str = DEFAULT_POSE_TOPIC, frame_id: str = DEFAULT_FRAME_ID,
                 overwrite: bool = False, copy_images: Optional[Tuple[Union[str, Path], str]] = None):
        require_rosbags("writing bags")
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.single_file = Path(str(path)).suffix.lower() == ".mcap" and not str(path).endswith("/")
        self.path = Path(str(path).rstrip("/"))
        if self.path.exists() or self.path.is_symlink():
            if not overwrite:
                raise ConfigError(f"output {self.path} exists; refusing to replace it",
                                  hint="pass --overwrite to replace it, or choose another --out")
            if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
                raise ConfigError(f"output {self.path} is a folder but not a rosbag2 bag (no metadata.yaml); "
                                  "not replacing it even with --overwrite", hint="choose another --out")
        self.topic, self.frame_id, self.copy_images = topic, frame_id, copy_images
        self.typestore = get_typestore()
        self.written = self.failed = 0
        self.last_stamp: Optional[int] = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=str(self.path.parent)))
        stem = self.path.stem if self.single_file else self.path.name
        self._bag = self._tmp / stem
        self.writer = Writer(self._bag, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.conn = self.writer.add_connection(topic, POSE_TYPE, typestore=self.typestore,
                                               offered_qos_profiles=[to_rosbags_qos(POSE_QOS)])

    def write(self, result: PoseResult) -> None:
        if self.writer is None:
            return
        if not result.ok:
            self.failed += 1
            return
        pm = pose_message(result, self.frame_id)
        data = self.typestore.serialize_cdr(to_rosbags(pm, self.typestore), POSE_TYPE)
        self.writer.write(self.conn, pm.stamp_ns, data)
        self.written += 1
        self.last_stamp = pm.stamp_ns if self.last_stamp is None else max(self.last_stamp, pm.stamp_ns)

    def _copy_images(self, writer) -> int:
        """Copy the input topic's messages (raw, same log time) up to the last pose written."""
        from rosbags.highlevel import AnyReader

        src, topic = self.copy_images
        n, conns = 0, {}
        with AnyReader([Path(src)], default_typestore=self.typestore) as reader:
            wanted = [c for c in reader.connections if c.topic == topic]
            for c, log_ns, raw in reader.messages(connections=wanted):
                if self.last_stamp is not None and log_ns > self.last_stamp:
                    break
                if c.msgtype not in conns:
                    conns[c.msgtype] = writer.add_connection(topic, c.msgtype, typestore=self.typestore,
                                                                  offered_qos_profiles=[to_rosbags_qos(IMAGE_QOS)])
                if Path(src).suffix.lower() == ".bag":  # ROS 1 serialisation -> CDR
                    raw = self.typestore.ros1_to_cdr(raw, c.msgtype)
                writer.write(conns[c.msgtype], log_ns, raw)
                n += 1
        return n

    def summary(self) -> dict:
        return {"bag": str(self.path), "topic": self.topic, "frame_id": self.frame_id, "type": POSE_TYPE,
                "poses": self.written, "failed_frames_not_published": self.failed,
                "images_copied": getattr(self, "copied", 0)}

    def close(self) -> None:
        """Finalise the bag (index, metadata) and move it into place; idempotent."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        try:
            self.copied = self._copy_images(writer) if self.copy_images and self.written else 0
            writer.set_custom_data("edgepose.poses", str(self.written))
            writer.set_custom_data("edgepose.failed_frames", str(self.failed))
            writer.close()
            built = self._bag / f"{self._bag.name}.mcap" if self.single_file else self._bag
            if self.path.is_dir() and not self.single_file:
                old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
                os.replace(self.path, old)
                os.replace(built, self.path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(built, self.path)
            atomic_write_json(summary_path(self.path), self.summary())
        except BaseException:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - already failing; the original error is raised
                pass
            raise
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
