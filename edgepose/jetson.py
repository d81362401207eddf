"""Which Jetson module this is, from ``/proc/device-tree/model``.

Orin Nano, Orin NX and AGX Orin all report the GPU name "Orin" and compute capability 8.7
(as Xavier NX and AGX Xavier both report "Xavier", 7.2), yet an engine tuned on one is not the
engine for another (different SM counts, clocks and DLA cores). The device tree's model string
tells them apart ("NVIDIA Jetson AGX Orin Developer Kit", "NVIDIA Jetson Orin Nano Developer
Kit", ...), so engine fingerprints carry the module next to the GPU name. Pure parsing here,
used by both the exporter (engine names) and the runtime (engine choice), so they agree.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")

#: (pattern in the model string, short module name), most specific first
MODULES = (
    (r"AGX\s+Orin", "AGX Orin"), (r"Orin\s+NX", "Orin NX"), (r"Orin\s+Nano", "Orin Nano"),
    (r"AGX\s+Thor", "AGX Thor"), (r"AGX\s+Xavier", "AGX Xavier"), (r"Xavier\s+NX", "Xavier NX"),
    (r"TX2", "TX2"), (r"TX1", "TX1"), (r"\bNano\b", "Nano"),
)


def jetson_module(model_text: str) -> Optional[str]:
    """The short module name in a device-tree model string, ``None`` off a Jetson.

    >>> jetson_module("NVIDIA Jetson AGX Orin Developer Kit\\x00"), jetson_module("NVIDIA Jetson Orin Nano Developer Kit")
    ('AGX Orin', 'Orin Nano')
    >>> jetson_module("NVIDIA Orin NX Developer Kit"), jetson_module("QEMU Virtual Machine") is None
    ('Orin NX', True)
    """
    text = str(model_text).replace("\x00", " ").strip()
    if "jetson" not in text.lower() and not re.search(r"Orin|Xavier|Thor", text):
        return None
    for pattern, name in MODULES:
        if re.search(pattern, text, re.IGNORECASE):
            return name
    return text or None


def read_module(path: Union[str, Path] = DEVICE_TREE_MODEL) -> Optional[str]:
    """This machine's Jetson module, ``None`` where the device tree has no Jetson model."""
    try:
        return jetson_module(Path(path).read_bytes().decode("utf-8", errors="replace"))
    except OSError:
        return None


def gpu_label(gpu: str, module: Optional[str]) -> str:
    """The GPU name with the module added when the GPU name alone does not say it.

    >>> gpu_label("Orin", "Orin Nano"), gpu_label("NVIDIA H200", None), gpu_label("Orin (nvgpu)", "AGX Orin")
    ('Orin [Orin Nano]', 'NVIDIA H200', 'Orin (nvgpu) [AGX Orin]')
    """
    gpu = str(gpu).strip()
    if not module or module.lower() in gpu.lower():
        return gpu
    return f"{gpu} [{module}]"
