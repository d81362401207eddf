"""Poses into a bag: ``edgepose-run BUNDLE --source flight.mcap --topic /cam --out poses.mcap``.

Writes ``geometry_msgs/PoseWithCovarianceStamped`` on ``/edgepose/pose`` (topic and
``frame_id`` configurable) with ``header.stamp`` = the image's stamp. The bag's LOG time is
the recording clock: with a bag source each pose is logged at its image message's log time
(a sim-time recording has stamps near 0 s and log times of the recording day; comparing the
two clocks lost frames and put poses in 1970), so ``ros2 bag play`` and Foxglove show each
pose beside its image; without a bag source the stamp is the only clock and is used.
``copy_images`` copies the input image topic through message by message (the messages of
every frame the pipeline took), with the publisher QoS the source recorded.

The bag is rosbag2 metadata version 8 (:data:`BAG_VERSION`): QoS profiles as a YAML string
with integer enums, which ROS 2 Humble's rosbag2 decodes (``metadata_io.cpp`` reads
``offered_qos_profiles`` with ``as<std::string>()``, ``qos.cpp`` the enums with
``as<int>()``) and Jazzy reads too; version 9 (named enums, a YAML sequence) fails on Humble.
``poses.mcap`` is one MCAP file; ``poses_bag/`` (trailing slash) a rosbag2 folder
(``metadata.yaml`` + mcap storage). Failed frames are not published: the bag's
``custom_data`` and the sidecar ``<out>.summary.json`` say how many, and what the pose is of
(the camera optical frame or the base).

Nothing half-written: the bag is built in a hidden ``.partial`` folder beside the target and
moved into place by :meth:`close`, which the CLI calls however the run ends (Ctrl-C
included). An existing target is refused unless ``overwrite``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Union

from edgepose.atomic import atomic_write_json
from edgepose.errors import ConfigError

from ..results import PoseResult
from ..sinks import Sink
from . import require_rosbags
from .messages import (DEFAULT_FRAME_ID, DEFAULT_POSE_TOPIC, POSE_QOS, POSE_TYPE, get_typestore, pose_message,
                       to_rosbags, to_rosbags_qos)


#: rosbag2 metadata version written: the newest that ROS 2 Humble decodes (see the module docstring)
BAG_VERSION = 8


def summary_path(out: Union[str, Path]) -> Path:
    p = Path(str(out).rstrip("/"))
    return p.with_name(p.name + ".summary.json")


class BagSink(Sink):
    """Write each ``ok`` :class:`PoseResult` as a ``PoseWithCovarianceStamped``.

    Args:
        path: ``*.mcap`` (one file) or a folder (rosbag2 with mcap storage).
        topic, frame_id: where the poses go and the world frame they are in.
        overwrite: replace an existing output (a file, or a folder holding ``metadata.yaml``).
        source: the :class:`~.bag_source.BagSource` the frames come from: each pose is logged at
            its image's log time, and its camera ``frame_id`` goes into the summary.
        copy_images: copy ``source``'s image topic through on close.
        pose_of: what the pose is of, for the summary and ``custom_data`` (e.g.
            ``"camera_optical_frame"`` or ``"base (--camera-to-base ...)"``).
    """

    def __init__(self, path: Union[str, Path], topic: str = DEFAULT_POSE_TOPIC, frame_id: str = DEFAULT_FRAME_ID,
                 overwrite: bool = False, source=None, copy_images: bool = False,
                 pose_of: str = "camera_optical_frame"):
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
        if copy_images and source is None:
            raise ConfigError("copy_images needs the bag source the frames come from",
                              hint="pass source=BagSource(...) (edgepose-run does with a bag --source)")
        self.topic, self.frame_id, self.source, self.copy_images, self.pose_of = \
            topic, frame_id, source, copy_images, pose_of
        if source is not None:
            source.track = True
        self.typestore = get_typestore()
        self.written = self.failed = self.zero_stamps = 0
        self.frames_seen = 0  # 1 + the highest frame index the pipeline returned (ok or not)
        self.camera_frame_id: Optional[str] = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=str(self.path.parent)))
        stem = self.path.stem if self.single_file else self.path.name
        self._bag = self._tmp / stem
        self.writer = Writer(self._bag, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.conn = self.writer.add_connection(topic, POSE_TYPE, typestore=self.typestore,
                                               offered_qos_profiles=[to_rosbags_qos(POSE_QOS)])

    def write(self, result: PoseResult) -> None:
        if self.writer is None:
            return
        self.frames_seen = max(self.frames_seen, int(result.index) + 1)
        rec = self.source.take_record(result.index) if self.source is not None else None
        if rec is not None and rec.frame_id and self.camera_frame_id is None:
            self.camera_frame_id = rec.frame_id
        if not result.ok:
            self.failed += 1
            return
        pm = pose_message(result, self.frame_id)
        if pm.stamp_ns == 0:
            self.zero_stamps += 1
            if self.zero_stamps == 1:
                warnings.warn(f"frame {result.index} has header.stamp 0 (a driver that does not stamp its images): "
                              "its pose keeps stamp 0, which tf2 and robot_localization read as 'latest'; "
                              "fix the camera driver's stamps")
        data = self.typestore.serialize_cdr(to_rosbags(pm, self.typestore), POSE_TYPE)
        # the recording's clock (the image message's log time); the stamp when there is no bag source
        self.writer.write(self.conn, rec.log_ns if rec is not None else pm.stamp_ns, data)
        self.written += 1

    def _copy_images(self, writer) -> int:
        """Copy the source topic's first ``frames_seen`` messages (raw CDR, same log time), with
        the publisher QoS the source recorded (REP 2003: camera drivers publish reliable)."""
        qos = list(getattr(self.source, "offered_qos", None) or [])
        n, conns = 0, {}
        for c, log_ns, raw in self.source.raw_messages():
            if n >= self.frames_seen:
                break
            if c.msgtype not in conns:
                conns[c.msgtype] = writer.add_connection(self.source.topic, c.msgtype, typestore=self.typestore,
                                                         offered_qos_profiles=qos)
            writer.write(conns[c.msgtype], log_ns, raw)
            n += 1
        return n

    def summary(self) -> dict:
        return {"bag": str(self.path), "topic": self.topic, "frame_id": self.frame_id, "type": POSE_TYPE,
                "pose_of": self.pose_of, "camera_frame_id": self.camera_frame_id,
                "log_time": "image message log time" if self.source is not None else "header.stamp",
                "rosbag2_metadata_version": BAG_VERSION,
                "poses": self.written, "failed_frames_not_published": self.failed,
                "zero_stamps": self.zero_stamps, "images_copied": getattr(self, "copied", 0)}

    def close(self) -> None:
        """Finalise the bag (index, metadata) and move it into place; idempotent."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        try:
            self.copied = self._copy_images(writer) if self.copy_images and self.frames_seen else 0
            writer.set_custom_data("edgepose.poses", str(self.written))
            writer.set_custom_data("edgepose.failed_frames", str(self.failed))
            writer.set_custom_data("edgepose.pose_of", self.pose_of)
            if self.camera_frame_id:
                writer.set_custom_data("edgepose.camera_frame_id", self.camera_frame_id)
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
