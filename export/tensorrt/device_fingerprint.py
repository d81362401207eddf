"""What the build machine is: TensorRT version, GPU, compute capability, DLA cores, JetPack.

An engine only loads where all of these match (see :class:`edgepose.bundle.EngineFingerprint`),
so the exporter names engines by them and records them in the manifest. Detection is thin and
never needs torch (a Jetson may have none):

* TensorRT version and DLA cores: from the ``tensorrt`` module (``builder.num_DLA_cores``).
* GPU name and compute capability: cuda-python (both the old ``cuda.cudart`` and the new
  ``cuda.bindings.runtime`` layouts), else ``nvidia-smi``, else torch if it happens to be there.
* Jetson module: ``/proc/device-tree/model`` (:mod:`edgepose.jetson`), added to the GPU name,
  since Orin Nano, NX and AGX all report "Orin" at sm 8.7.
* Fast FP16/INT8: from the compute capability (:func:`~.plan.fast_precisions`), not
  ``builder.platform_has_fast_*`` (deprecated from TensorRT 10.5, gone in 11).
* JetPack: parsed from ``/etc/nv_tegra_release`` (the L4T release is exact; the JetPack name is
  looked up in :data:`L4T_TO_JETPACK`, a table of known releases, ``None`` when unknown).

The parsers (:func:`parse_tegra_release`, :func:`parse_nvidia_smi`) are pure functions, tested
without a GPU.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

from edgepose.bundle import EngineFingerprint
from edgepose.errors import EdgePoseError
from edgepose.jetson import gpu_label, read_module

from .plan import fast_precisions

TEGRA_RELEASE = Path("/etc/nv_tegra_release")

#: L4T release -> JetPack release (NVIDIA's JetPack archive; the L4T number is what is recorded
#: as fact, the JetPack name is a convenience and is ``None`` for releases not listed here).
L4T_TO_JETPACK = {
    "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4", "32.7.5": "4.6.5",
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3",
    "35.6.0": "5.1.4", "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2",
    "36.4.4": "6.2.1",
}


class DeviceDetectionError(EdgePoseError):
    """The GPU could not be identified (no CUDA bindings, no nvidia-smi, no torch.cuda)."""


@dataclass(frozen=True)
class DeviceInfo:
    """The build machine.

    Attributes:
        trt_version: ``tensorrt.__version__`` (e.g. ``"8.5.2.2"``).
        gpu: GPU name as the driver reports it (``"Orin"``, ``"NVIDIA H100 80GB HBM3"``).
        compute_capability: ``"major.minor"`` (``"8.7"``).
        dla_cores: number of DLA cores TensorRT sees (0 on GPUs and Orin Nano).
        l4t: L4T release ``"35.3.1"`` on a Jetson, else ``None``.
        jetpack: JetPack release for ``l4t`` when known, else ``None``.
        fast_fp16, fast_int8: whether the GPU has fast FP16/INT8 (from the compute capability).
        module: the Jetson module (``"Orin Nano"``), ``None`` off a Jetson; already in ``gpu``.
    """

    trt_version: str
    gpu: str
    compute_capability: str
    dla_cores: int = 0
    l4t: Optional[str] = None
    jetpack: Optional[str] = None
    fast_fp16: Optional[bool] = None
    fast_int8: Optional[bool] = None
    module: Optional[str] = None

    def fingerprint(self, precision: str, dla_core: Optional[int] = None, onnx_sha256: Optional[str] = None,
                    profile=None) -> EngineFingerprint:
        """The :class:`EngineFingerprint` of an engine built here with ``precision`` from the ONNX
        file of that sha256 with that optimization profile (a re-export makes the engine stale)."""
        return EngineFingerprint(trt_version=self.trt_version, gpu=self.gpu,
                                 compute_capability=self.compute_capability, precision=precision,
                                 dla_core=dla_core, onnx_sha256=onnx_sha256, profile=profile)

    def to_json(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- pure parsers
def parse_tegra_release(text: str) -> Tuple[Optional[str], Optional[str]]:
    """``(l4t, jetpack)`` from the text of ``/etc/nv_tegra_release``.

    >>> parse_tegra_release("# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref")
    ('35.3.1', '5.1.1')
    >>> parse_tegra_release("garbage")
    (None, None)
    """
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?", text)
    if not m:
        return None, None
    l4t = f"{int(m.group(1))}.{int(m.group(2))}.{int(m.group(3) or 0)}"
    return l4t, L4T_TO_JETPACK.get(l4t)


def parse_nvidia_smi(text: str, index: int = 0) -> Optional[Tuple[str, str]]:
    """``(name, "major.minor")`` from ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader``.

    >>> parse_nvidia_smi("NVIDIA H100 80GB HBM3, 9.0\\n")
    ('NVIDIA H100 80GB HBM3', '9.0')
    """
    rows = [r for r in text.strip().splitlines() if r.strip()]
    if len(rows) <= index:
        return None
    parts = [p.strip() for p in rows[index].rsplit(",", 1)]
    if len(parts) != 2 or not re.fullmatch(r"\d+\.\d+", parts[1]):
        return None
    return parts[0], parts[1]


def trt_major(trt_version: str) -> int:
    """``8`` from ``"8.5.2.2"``; raises :class:`EdgePoseError` on a malformed version."""
    try:
        return int(str(trt_version).split(".")[0])
    except ValueError:
        raise EdgePoseError(f"cannot read the TensorRT version {trt_version!r}; expected 'MAJOR.MINOR...'") from None


# --------------------------------------------------------------------------- detection
def detect_jetpack(path: Path = TEGRA_RELEASE) -> Tuple[Optional[str], Optional[str]]:
    """``(l4t, jetpack)`` of this machine, ``(None, None)`` off a Jetson."""
    try:
        return parse_tegra_release(Path(path).read_text(errors="replace"))
    except OSError:
        return None, None


def _gpu_from_cuda_python(device: int) -> Optional[Tuple[str, str]]:
    cudart = None
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            import importlib

            cudart = importlib.import_module(name)
            break
        except ImportError:
            continue
    if cudart is None:
        return None
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        return None
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00").strip(), f"{props.major}.{props.minor}"


def _gpu_from_nvidia_smi(device: int) -> Optional[Tuple[str, str]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(out.stdout, device) if out.returncode == 0 else None


def _gpu_from_torch(device: int) -> Optional[Tuple[str, str]]:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


def detect_gpu(device: int = 0) -> Tuple[str, str]:
    """``(gpu name, compute capability)`` of CUDA device ``device``."""
    for probe in (_gpu_from_cuda_python, _gpu_from_nvidia_smi, _gpu_from_torch):
        try:
            found = probe(device)
        except Exception:  # a broken binding must not hide the next probe
            found = None
        if found:
            return found
    raise DeviceDetectionError(
        f"cannot identify CUDA device {device}: no cuda-python bindings, no nvidia-smi, no torch.cuda",
        hint="install the CUDA Python bindings: pip install cuda-python (JetPack ships them as python3-cuda)")


def detect_device(trt, builder=None, device: int = 0) -> DeviceInfo:
    """:class:`DeviceInfo` of CUDA device ``device``, given the imported ``tensorrt`` module.

    ``builder`` (a ``trt.Builder``) is used for the DLA count; one is created when omitted.
    """
    if builder is None:
        builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    gpu, cc = detect_gpu(device)
    l4t, jetpack = detect_jetpack()
    module = read_module()
    fast_fp16, fast_int8 = fast_precisions(cc)
    return DeviceInfo(
        trt_version=str(trt.__version__), gpu=gpu_label(gpu, module), compute_capability=cc,
        dla_cores=int(getattr(builder, "num_DLA_cores", 0) or 0), l4t=l4t, jetpack=jetpack,
        fast_fp16=fast_fp16, fast_int8=fast_int8, module=module,
    )
