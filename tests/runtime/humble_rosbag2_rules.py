"""What ROS 2 Humble's rosbag2 accepts in a bag's metadata and QoS, as a checker for tests.

Mirrors the yaml-cpp conversions of ros2/rosbag2 branch ``humble`` (read at commit
d256a5bad515cae54c5274edf1a870e3ee8668b2):

* ``rosbag2_storage/src/rosbag2_storage/metadata_io.cpp``, ``convert<BagMetadata>::decode``:
  ``version`` ``as<int>``; ``storage_identifier`` ``as<std::string>``; ``duration.nanoseconds``,
  ``starting_time.nanoseconds_since_epoch``, ``message_count`` ``as<uint64_t>``;
  ``topics_with_message_count`` a sequence (``IsSequence``) whose items have
  ``topic_metadata.{name,type,serialization_format}`` ``as<std::string>``, from version 4
  ``offered_qos_profiles`` ``as<std::string>``, and ``message_count`` ``as<uint64_t>``;
  ``relative_file_paths`` ``as<std::vector<std::string>>``; from version 3
  ``compression_format``/``compression_mode`` ``as<std::string>``; from version 5 ``files``
  (``path`` string, ``starting_time``, ``duration``, ``message_count``). Other keys are ignored.
* ``rosbag2_transport/src/rosbag2_transport/qos.cpp``, ``convert<Rosbag2QoS>::decode``
  (the player loads ``offered_qos_profiles`` with ``YAML::Load(...).as<std::vector<Rosbag2QoS>>()``,
  ``player.cpp``; an empty string means the default profile): ``history``, ``reliability``,
  ``durability``, ``liveliness``, ``depth`` ``as<int>``; ``deadline``, ``lifespan``,
  ``liveliness_lease_duration`` ``{sec, nsec}`` ``as<uint64_t>``;
  ``avoid_ros_namespace_conventions`` ``as<bool>``.
* ``rosbag2_storage_mcap/src/mcap_storage.cpp``: a channel's ``offered_qos_profiles``
  metadata entry becomes the topic's profile string (decoded as above).

yaml-cpp keeps every scalar as text: ``as<std::string>`` takes any scalar (never a map or a
sequence), ``as<int>`` and ``as<uint64_t>`` only text that is a number in range, ``as<bool>``
only yaml-cpp's boolean words. Each rule raises :class:`HumbleDecodeError` ("bad conversion"
in Humble) naming the key.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

BOOL_WORDS = {"y", "yes", "true", "on", "n", "no", "false", "off"}  # yaml-cpp convert<bool>, any case


class HumbleDecodeError(ValueError):
    """What ``ros2 bag info/play`` on Humble reports as yaml-cpp's 'bad conversion'."""


def _scalar_text(node, where: str) -> str:
    if node is None or isinstance(node, (dict, list)):
        raise HumbleDecodeError(f"{where}: expected a scalar, found {type(node).__name__}")
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def as_string(node, where: str) -> str:
    return _scalar_text(node, where)


def as_int(node, where: str, lo: int = -(2 ** 31), hi: int = 2 ** 31 - 1) -> int:
    text = _scalar_text(node, where).strip()
    if not re.fullmatch(r"[-+]?(0x[0-9a-fA-F]+|0o?[0-7]+|\d+)", text):
        raise HumbleDecodeError(f"{where}: expected an integer, found {text!r}")
    value = int(text, 0) if text.lstrip("+-").startswith("0x") else int(text)
    if not lo <= value <= hi:
        raise HumbleDecodeError(f"{where}: {value} out of range")
    return value


def as_uint64(node, where: str) -> int:
    return as_int(node, where, 0, 2 ** 64 - 1)


def as_bool(node, where: str) -> bool:
    text = _scalar_text(node, where).strip().lower()
    if text not in BOOL_WORDS:
        raise HumbleDecodeError(f"{where}: expected a boolean, found {text!r}")
    return text in {"y", "yes", "true", "on"}


def _load(text: str):
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


def decode_qos_profiles(text: str, where: str) -> List[dict]:
    """``offered_qos_profiles`` as Humble's player decodes it (``[]`` for the empty string)."""
    if text == "":
        return []
    node = _load(text)
    if not isinstance(node, list):
        raise HumbleDecodeError(f"{where}: expected a sequence of QoS profiles, found {type(node).__name__}")
    out = []
    for i, p in enumerate(node):
        w = f"{where}[{i}]"
        if not isinstance(p, dict):
            raise HumbleDecodeError(f"{w}: expected a map")
        q = {k: as_int(p.get(k), f"{w}.{k}") for k in ("history", "reliability", "durability", "liveliness", "depth")}
        for k in ("deadline", "lifespan", "liveliness_lease_duration"):
            t = p.get(k)
            if not isinstance(t, dict):
                raise HumbleDecodeError(f"{w}.{k}: expected a map with sec and nsec")
            q[k] = (as_uint64(t.get("sec"), f"{w}.{k}.sec"), as_uint64(t.get("nsec"), f"{w}.{k}.nsec"))
        q["avoid_ros_namespace_conventions"] = as_bool(p.get("avoid_ros_namespace_conventions"),
                                                       f"{w}.avoid_ros_namespace_conventions")
        out.append(q)
    return out


def decode_metadata(text: str, where: str = "metadata.yaml") -> dict:
    """``metadata.yaml`` as Humble decodes it; returns ``{topic: [qos dicts]}``."""
    info = (_load(text) or {}).get("rosbag2_bagfile_information")
    if not isinstance(info, dict):
        raise HumbleDecodeError(f"{where}: no rosbag2_bagfile_information map")
    version = as_int(info.get("version"), f"{where}: version")
    as_string(info.get("storage_identifier"), f"{where}: storage_identifier")
    as_uint64((info.get("duration") or {}).get("nanoseconds"), f"{where}: duration.nanoseconds")
    as_uint64((info.get("starting_time") or {}).get("nanoseconds_since_epoch"), f"{where}: starting_time")
    as_uint64(info.get("message_count"), f"{where}: message_count")
    topics = info.get("topics_with_message_count")
    if not isinstance(topics, list):
        raise HumbleDecodeError(f"{where}: topics_with_message_count is not a sequence")
    qos = {}
    for i, t in enumerate(topics):
        w = f"{where}: topics_with_message_count[{i}]"
        tm = (t or {}).get("topic_metadata")
        if not isinstance(tm, dict):
            raise HumbleDecodeError(f"{w}: no topic_metadata map")
        name = as_string(tm.get("name"), f"{w}.name")
        as_string(tm.get("type"), f"{w}.type")
        as_string(tm.get("serialization_format"), f"{w}.serialization_format")
        if version >= 4:
            qos[name] = decode_qos_profiles(as_string(tm.get("offered_qos_profiles"), f"{w}.offered_qos_profiles"),
                                            f"{w}.offered_qos_profiles")
        as_uint64(t.get("message_count"), f"{w}.message_count")
    paths = info.get("relative_file_paths")
    if not isinstance(paths, list):
        raise HumbleDecodeError(f"{where}: relative_file_paths is not a sequence")
    for i, p in enumerate(paths):
        as_string(p, f"{where}: relative_file_paths[{i}]")
    if version >= 3:
        as_string(info.get("compression_format"), f"{where}: compression_format")
        as_string(info.get("compression_mode"), f"{where}: compression_mode")
    if version >= 5:
        files = info.get("files")
        if not isinstance(files, list):
            raise HumbleDecodeError(f"{where}: files is not a sequence")
        for i, f in enumerate(files):
            as_string(f.get("path"), f"{where}: files[{i}].path")
            as_uint64((f.get("starting_time") or {}).get("nanoseconds_since_epoch"), f"{where}: files[{i}].starting_time")
            as_uint64((f.get("duration") or {}).get("nanoseconds"), f"{where}: files[{i}].duration")
            as_uint64(f.get("message_count"), f"{where}: files[{i}].message_count")
    return qos


def check_bag(path: Path) -> dict:
    """Decode a bag's metadata.yaml (folder) and every MCAP channel's QoS as Humble would;
    returns ``{topic: [qos dicts]}`` from the MCAP channels (the file that ``ros2 bag play`` reads)."""
    from mcap.reader import make_reader

    path = Path(path)
    files = sorted(path.glob("*.mcap")) if path.is_dir() else [path]
    if path.is_dir():
        decode_metadata((path / "metadata.yaml").read_text(), str(path / "metadata.yaml"))
    qos = {}
    for f in files:
        with open(f, "rb") as fh:
            summary = make_reader(fh).get_summary()
        for ch in summary.channels.values():
            qos[ch.topic] = decode_qos_profiles(ch.metadata.get("offered_qos_profiles", ""),
                                                f"{f.name}: channel {ch.topic} offered_qos_profiles")
    return qos
