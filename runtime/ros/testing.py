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

from .messages import get_typestore

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
                    extra_topics: Sequence[str] = ()) -> Path:
    """Write ``images`` (``uint8 (H, W, 3)`` RGB) to a bag and return its path.

    ``path`` ending in ``.mcap`` gives one MCAP file, ``.bag`` a ROS 1 bag, anything else a
    rosbag2 folder with ``storage`` (``"mcap"`` or ``"sqlite3"``). Frame ``i`` is logged at
    ``stamps[i]`` (default 30 fps from :data:`T0_NS`). ``extra_topics`` get one
    ``std_msgs/String`` each (a bag with other topics than images).
    """
    ts = get_typestore()
    path = Path(path)
    stamps = list(stamps) if stamps is not None else frame_stamps(len(images))
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
                w.write(conns[ty], stamps[i], ts.serialize_ros1(m, ty))
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
            w.write(conns[ty], stamps[i], ts.serialize_cdr(m, ty))
        for t in extra_topics:
            c = w.add_connection(t, "std_msgs/msg/String", typestore=ts)
            w.write(c, stamps[0], ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="x"), "std_msgs/msg/String"))
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
