"""REAL image bags for tests, examples and benchmarks, written with ``rosbags``.

:func:`write_image_bag` records frames as ``sensor_msgs/Image`` (rgb8 unless told) on one
topic, some of them as ``sensor_msgs/CompressedImage`` (PNG) on the same topic, and some
corrupt (an Image whose data is cut short), into a single ``.mcap`` file, a rosbag2 folder
(``storage="mcap"`` or ``"sqlite3"``), or a ROS 1 ``.bag``.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np

from edgepose.runtime.ros.messages import get_typestore

T0_NS = 1_700_000_000_123_456_789  # a realistic epoch stamp with every nanosecond digit used


def frame_stamps(n: int, fps: float = 30.0, t0_ns: int = T0_NS) -> List[int]:
    return [t0_ns + int(round(i * 1e9 / fps)) for i in range(n)]


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def image_message(ts, rgb: np.ndarray, stamp_ns: int, encoding: str = "rgb8", frame_id: str = "camera_optical_frame",
                  truncate: bool = False):
    T = ts.types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                                              nanosec=stamp_ns % 10**9),
                                      frame_id=frame_id)
    h, w = rgb.shape[:2]
    if encoding == "bgr8":
        px = rgb[:, :, ::-1]
    elif encoding == "mono8":
        px = rgb.mean(axis=2).astype(np.uint8)[:, :, None]
    else:
        px = rgb
    data = np.ascontiguousarray(px).reshape(-1)
    if truncate:
        data = data[: data.size // 2]
    return T["sensor_msgs/msg/Image"](header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                                      step=w * px.shape[2], data=data)


def compressed_message(ts, rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera_optical_frame"):
    T = ts.types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                                              nanosec=stamp_ns % 10**9),
                                      frame_id=frame_id)
    return T["sensor_msgs/msg/CompressedImage"](header=header, format="png",
                                                data=np.frombuffer(_png(rgb), np.uint8))


def write_image_bag(path: Union[str, Path], images: Sequence[np.ndarray], topic: str = "/camera/image_raw",
                    stamps: Optional[Sequence[int]] = None, compressed: Iterable[int] = (),
                    corrupt: Iterable[int] = (), encoding: str = "rgb8", storage: str = "mcap",
                    extra_topics: Sequence[str] = (), log_times: Optional[Sequence[int]] = None) -> Path:
    """Write ``images`` (``uint8 (H, W, 3)`` RGB) to a bag and return its path.

    ``path`` ending in ``.mcap`` gives one MCAP file, ``.bag`` a ROS 1 bag, anything else a
    rosbag2 folder with ``storage`` (``"mcap"`` or ``"sqlite3"``). Frame ``i`` has
    ``header.stamp`` ``stamps[i]`` (default 30 fps from :data:`T0_NS`) and is logged at
    ``log_times[i]`` (default the stamp; a sim-time recording has stamps near 0 s). ``extra_topics`` get one
    ``std_msgs/String`` each (a bag with other topics than images).
    """
    ts = get_typestore()
    path = Path(path)
    stamps = list(stamps) if stamps is not None else frame_stamps(len(images))
    logs = list(log_times) if log_times is not None else stamps
    compressed, corrupt = set(compressed), set(corrupt)
    msgs = []
    for i, rgb in enumerate(images):
        if i in compressed:
            msgs.append(("sensor_msgs/msg/CompressedImage", compressed_message(ts, rgb, stamps[i])))
        else:
            msgs.append(("sensor_msgs/msg/Image", image_message(ts, rgb, stamps[i], encoding, truncate=i in corrupt)))
    if path.suffix == ".bag":
        from rosbags.rosbag1 import Writer as Writer1

        with Writer1(path) as w:
            conns = {}
            for i, (ty, m) in enumerate(msgs):
                if ty not in conns:
                    conns[ty] = w.add_connection(topic, ty, typestore=ts)
                w.write(conns[ty], logs[i], ts.serialize_ros1(m, ty))
        return path
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if storage == "mcap" or path.suffix == ".mcap" else StoragePlugin.SQLITE3
    tmp = Path(tempfile.mkdtemp(dir=str(path.parent) if path.parent.exists() else None))
    bag = tmp / (path.stem if path.suffix == ".mcap" else path.name)
    with Writer(bag, version=9, storage_plugin=plugin) as w:
        conns = {}
        for i, (ty, m) in enumerate(msgs):
            if ty not in conns:
                conns[ty] = w.add_connection(topic, ty, typestore=ts)
            w.write(conns[ty], logs[i], ts.serialize_cdr(m, ty))
        for t in extra_topics:
            c = w.add_connection(t, "std_msgs/msg/String", typestore=ts)
            w.write(c, logs[0], ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="x"), "std_msgs/msg/String"))
    if path.suffix == ".mcap":
        os.replace(bag / f"{bag.name}.mcap", path)
    else:
        os.replace(bag, path)
    shutil.rmtree(tmp, ignore_errors=True)
    return path


def gradient_frames(n: int, size=(40, 30)) -> List[np.ndarray]:
    """``n`` RGB frames of a moving gradient (the same pattern as the runtime tests' PNG folder)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    return [np.stack([(xx * 6 + i * 9) % 256, (yy * 8 + i * 5) % 256, np.full_like(xx, (i * 40) % 256)], -1)
            .astype(np.uint8) for i in range(n)]


# -- image messages added to copies of real bags (tests/runtime/bags) ------------------------
def _spread(start_ns: int, end_ns: int, n: int) -> List[int]:
    """``n`` log times strictly inside ``[start, end]`` (evenly spread)."""
    span = max(end_ns - start_ns, n + 1)
    return [start_ns + (i + 1) * span // (n + 1) for i in range(n)]


def _image_payloads(ts, images: Sequence[np.ndarray], stamps: Sequence[int], ros1: bool) -> List[bytes]:
    ty = "sensor_msgs/msg/Image"
    msgs = [image_message(ts, rgb, s) for rgb, s in zip(images, stamps)]
    return [bytes(ts.serialize_ros1(m, ty) if ros1 else ts.serialize_cdr(m, ty)) for m in msgs]


def _interleave(reader, writer, conns, img, pending: List) -> None:
    """Write every recorded message (through ``conns``) and the ``(log ns, bytes)`` images in
    log-time order."""
    for c, t, data in reader.messages():
        while pending and pending[0][0] <= t:
            writer.write(img, *pending.pop(0))
        writer.write(conns[c.id], t, data)
    for item in pending:
        writer.write(img, *item)


def _copy_ros1(src: Path, dst: Path, topic: str, payloads: List[bytes]) -> List[int]:
    from rosbags.rosbag1 import Reader, Writer

    raw, w = src.read_bytes(), Writer(dst)
    for fmt in ("bz2", "lz4"):  # keep the recording's chunk compression
        if f"compression={fmt}".encode() in raw:
            w.set_compression(getattr(Writer.CompressionFormat, fmt.upper()))
    with Reader(src) as r, w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, md5sum=c.digest,
                                        callerid=c.ext.callerid, latching=c.ext.latching) for c in r.connections}
        img = w.add_connection(topic, "sensor_msgs/msg/Image", typestore=get_typestore())
        logs = _spread(r.start_time, r.end_time, len(payloads))
        _interleave(r, w, conns, img, list(zip(logs, payloads)))
    return logs


def _copy_rosbag2_files(files: Sequence[Path], out: Path, storage: str, topic: str, payloads: List[bytes],
                        logs: List[int]) -> None:
    """Write the messages of ``files`` (one rosbag2 bag or one split file) and the images into ``out``."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    from edgepose.runtime.ros.messages import QosChoice, to_rosbags_qos

    ts = get_typestore()
    with Reader(files[0]) as r, Writer(out, version=8, storage_plugin=StoragePlugin[storage.upper()]) as w:
        conns = {}
        for c in r.connections:  # the recorded definition and hash; older bags lack them: the Humble store's
            own = {"msgdef": c.msgdef.data, "rihs01": c.digest or _rihs01(c, ts)} if c.msgdef.data else {"typestore": ts}
            if own.get("rihs01") is None:
                own = {"typestore": ts}
            conns[c.id] = w.add_connection(c.topic, c.msgtype, serialization_format=c.ext.serialization_format,
                                           offered_qos_profiles=c.ext.offered_qos_profiles, **own)
        img = w.add_connection(topic, "sensor_msgs/msg/Image", typestore=ts,
                               offered_qos_profiles=[to_rosbags_qos(QosChoice("reliable", "volatile", 5))])
        _interleave(r, w, conns, img, list(zip(logs, payloads)))


def _rihs01(conn, ts) -> Optional[str]:
    """The RIHS01 hash of a recorded definition (bags before Iron recorded none); ``None`` when
    the definition is partial and the Humble store knows the type (then its definition is used)."""
    from rosbags.typesys import Stores, get_types_from_msg
    from rosbags.typesys import get_typestore as store_of

    store = store_of(Stores.EMPTY)
    store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
    try:
        return store.hash_rihs01(conn.msgtype)
    except KeyError:
        if conn.msgtype in ts.fielddefs:
            return None
        raise


def _restore_metadata(original: Path, written: Path, topic: str, n_images: int) -> None:
    """Put the ORIGINAL metadata.yaml (its version and shape) back, with the image topic and
    the new counts and file names added, so the copy differs from the recording only by them."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    old = yaml.load(original.read_text())
    new = yaml.load(written.read_text())
    info, made = old["rosbag2_bagfile_information"], new["rosbag2_bagfile_information"]
    template = dict(info["topics_with_message_count"][0]["topic_metadata"])
    entry = next(t for t in made["topics_with_message_count"] if t["topic_metadata"]["name"] == topic)
    template.update(name=topic, type="sensor_msgs/msg/Image",
                    offered_qos_profiles=entry["topic_metadata"]["offered_qos_profiles"])
    if "type_description_hash" in template:
        template["type_description_hash"] = entry["topic_metadata"]["type_description_hash"]
    info["topics_with_message_count"].append({"topic_metadata": template, "message_count": n_images})
    for key in ("message_count", "duration", "starting_time", "relative_file_paths"):
        info[key] = made[key]
    if "files" in info:
        info["files"] = made["files"]
    with written.open("w") as f:
        yaml.dump(old, f)


def copy_with_images(src: Union[str, Path], dst: Union[str, Path], images: Sequence[np.ndarray],
                     topic: str = "/camera/image_raw", stamps: Optional[Sequence[int]] = None) -> List[int]:
    """Copy a REAL bag, adding ``images`` as ``sensor_msgs/Image`` (rgb8) on ``topic``; returns
    their log times (spread evenly over the recording's span).

    The copy keeps the recording's structure: every topic, message (raw bytes), definition
    and recorded QoS; a ROS 1 bag its chunk compression; a rosbag2 folder its storage and
    its ORIGINAL ``metadata.yaml`` version and shape; a split folder without metadata.yaml
    its files (the images go to the file whose span holds their log time) and no metadata.
    ``stamps`` are the images' ``header.stamp`` (default: their log times).
    """
    from rosbags.rosbag2 import Reader

    src, dst = Path(src), Path(dst)
    ts = get_typestore()
    if src.suffix == ".bag":
        from rosbags.rosbag1 import Reader as Reader1

        with Reader1(src) as r:
            logs = _spread(r.start_time, r.end_time, len(images))
        payloads = _image_payloads(ts, images, list(stamps) if stamps is not None else logs, ros1=True)
        _copy_ros1(src, dst, topic, payloads)
        return logs
    if (src / "metadata.yaml").is_file():
        with Reader(src) as r:
            logs = _spread(r.start_time, r.end_time, len(images))
        storage = "mcap" if list(src.glob("*.mcap")) else "sqlite3"
        payloads = _image_payloads(ts, images, list(stamps) if stamps is not None else logs, ros1=False)
        _copy_rosbag2_files([src], dst, storage, topic, payloads, logs)
        _restore_metadata(src / "metadata.yaml", dst / "metadata.yaml", topic, len(images))
        return logs
    files = sorted(src.glob("*.mcap"))  # a split folder without metadata.yaml
    spans = []
    for f in files:
        with Reader(f) as r:
            spans.append((r.start_time, r.end_time))
    logs = _spread(spans[0][0], spans[-1][1], len(images))
    payloads = _image_payloads(ts, images, list(stamps) if stamps is not None else logs, ros1=False)
    dst.mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(dir=str(dst.parent)))
    for k, (f, (_, end)) in enumerate(zip(files, spans)):
        lo = spans[k][0] if k else -1
        hi = end if k < len(files) - 1 else 1 << 62
        pick = [i for i, t in enumerate(logs) if lo <= t <= hi or (k and spans[k - 1][1] < t < spans[k][0])]
        part = tmp / f.stem
        _copy_rosbag2_files([f], part, "mcap", topic, [payloads[i] for i in pick], [logs[i] for i in pick])
        os.replace(part / f"{part.name}.mcap", dst / f.name)
    shutil.rmtree(tmp, ignore_errors=True)
    return logs
