"""``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` to ``uint8 (H, W, 3)`` RGB.

Works on any object with the message's fields (a ``rosbags`` message or an ``rclpy`` one), so
the bag source and the ROS 2 node decode the same way. numpy and Pillow only (no cv_bridge).
A message that cannot be decoded raises :class:`ImageDecodeError` naming what was found: one
failed frame, the stream goes on.
"""
from __future__ import annotations

import numpy as np

from edgepose.errors import DataFormatError, EdgePoseError
from edgepose.image_decode import decode_bytes

#: ``Image.encoding`` -> (channels, dtype, channel order). 16-bit intensity is scaled by its
#: range (:func:`scale16`); depth encodings (:data:`DEPTH_ENCODINGS`) are refused unless asked.
ENCODINGS = {
    "rgb8": (3, np.uint8, "rgb"), "bgr8": (3, np.uint8, "bgr"),
    "rgba8": (4, np.uint8, "rgb"), "bgra8": (4, np.uint8, "bgr"),
    "mono8": (1, np.uint8, "mono"), "8UC1": (1, np.uint8, "mono"), "8UC3": (3, np.uint8, "bgr"),
    "rgb16": (3, np.uint16, "rgb"), "bgr16": (3, np.uint16, "bgr"), "mono16": (1, np.uint16, "mono"),
    "16UC1": (1, np.uint16, "mono"),
}
#: ``CompressedImage.format`` words Pillow decodes (the format is e.g. ``"jpeg"`` or
#: ``"bgr8; jpeg compressed bgr8"`` as image_transport writes it)
COMPRESSED = ("jpeg", "jpg", "png")

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
#: what depth cameras publish (REP 118: ``16UC1`` millimetres, ``32FC1`` metres); 16UC1 is
#: decoded as intensity only with ``allow_depth`` (``--allow-depth``)
DEPTH_ENCODINGS = ("16UC1", "32FC1")
#: the significant-bit depths of 16-bit containers (mono16 cameras deliver 10, 12, 14 or 16 bits)
BIT_DEPTHS = (8, 10, 12, 14, 16)


def is_depth_topic(topic: str) -> bool:
    """A topic named like a depth stream (``/camera/depth/image_rect_raw``, ``.../aligned_depth_to_color/...``)."""
    return "depth" in topic.lower()


def scale16(px: np.ndarray) -> np.ndarray:
    """16-bit intensity -> ``uint8`` by its range: ``round(v * 255 / (2**bits - 1))``, where
    ``bits`` is the smallest of 8, 10, 12, 14, 16 that holds the frame's largest value.

    A 12-bit camera in a mono16 container (values 0..4095) keeps its contrast instead of
    becoming near black (keeping the top 8 bits gives 0..15); a full-range 16-bit image gets
    ``round(v * 255 / 65535)``, the folder reader's rule (:mod:`edgepose.image_decode`).
    """
    top = int(px.max()) if px.size else 0
    bits = next(b for b in BIT_DEPTHS if top < (1 << b))
    full = (1 << bits) - 1
    return ((px.astype(np.uint32) * 255 + full // 2) // full).astype(np.uint8)


class ImageDecodeError(EdgePoseError):
    """One image message could not be turned into pixels."""


def decode_raw(msg, allow_depth: bool = False) -> np.ndarray:
    """``sensor_msgs/Image`` -> RGB ``uint8 (H, W, 3)``; honours ``step`` and ``is_bigendian``.

    A depth encoding raises :class:`ImageDecodeError` unless ``allow_depth`` (then 16UC1 is
    read as 16-bit intensity)."""
    enc = str(msg.encoding)
    if enc in DEPTH_ENCODINGS and not (allow_depth and enc in ENCODINGS):
        raise ImageDecodeError(f"Image encoding {enc} is depth (REP 118), not a camera frame: refused",
                               hint="choose the colour or infrared topic; --allow-depth reads 16UC1 as intensity")
    if enc not in ENCODINGS:
        raise ImageDecodeError(f"unsupported Image encoding {enc!r}; supported: {', '.join(ENCODINGS)}",
                               hint="republish as rgb8/bgr8/mono8 (e.g. image_proc) or as a jpeg/png CompressedImage")
    ch, dtype, order = ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    item = np.dtype(dtype).itemsize
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, np.uint8)
    if h <= 0 or w <= 0 or step < w * ch * item:
        raise ImageDecodeError(f"Image header is inconsistent: {w}x{h}, step {step} for {enc} "
                               f"(a row needs {w * ch * item} bytes)")
    if data.size < step * h:
        raise ImageDecodeError(f"Image data is truncated: {data.size} bytes for {w}x{h} {enc} "
                               f"with step {step} (expected {step * h})")
    rows = data[: step * h].reshape(h, step)[:, : w * ch * item]
    if item == 2:
        px = rows.copy().view(">u2" if int(msg.is_bigendian) else "<u2").reshape(h, w, ch)
        px = scale16(px)
    else:
        px = rows.reshape(h, w, ch)
    if order == "mono":
        return np.repeat(px, 3, axis=2)
    px = px[:, :, :3]
    return np.ascontiguousarray(px[:, :, ::-1] if order == "bgr" else px)


def decode_compressed(msg) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg, png) -> RGB ``uint8 (H, W, 3)``, upright.

    Decoded by the folder reader's decoder (:func:`edgepose.image_decode.decode_bytes`): EXIF
    orientation applied, float pixels and corrupt data refused, by one rule. Its 16-bit rule is
    this module's :func:`scale16` (a 16-bit PNG is image_transport's ``mono16; png compressed
    mono16``), so a camera's compressed and raw topics decode alike.
    """
    fmt = str(msg.format).lower()
    if not any(word in fmt for word in COMPRESSED) or "compresseddepth" in fmt:
        raise ImageDecodeError(f"unsupported CompressedImage format {msg.format!r}; supported: jpeg, png",
                               hint="depth images (compressedDepth) are not camera frames for pose regression")
    data = bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes()
    try:
        return decode_bytes(data, gray16=scale16)
    except DataFormatError as exc:
        raise ImageDecodeError(f"CompressedImage ({msg.format}, {len(data)} bytes) does not decode: {exc.message}",
                               hint=exc.hint) from None


def decode_image(msg, msgtype: str, allow_depth: bool = False) -> np.ndarray:
    """Decode an image message of ROS 2 type name ``msgtype`` (``sensor_msgs/msg/Image`` ...)."""
    name = msgtype.replace("/msg/", "/")
    if name == "sensor_msgs/Image":
        return decode_raw(msg, allow_depth)
    if name == "sensor_msgs/CompressedImage":
        return decode_compressed(msg)
    raise ImageDecodeError(f"{msgtype} is not an image message; expected one of {', '.join(IMAGE_TYPES)}")


def stamp_ns(msg) -> int:
    """The message's ``header.stamp`` in integer nanoseconds (exact, as ROS keeps it)."""
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)
