"""INT8 implicit calibration for TensorRT 8.x (``IInt8EntropyCalibrator2`` with a cache file).

TensorRT 10 deprecates and TensorRT 11 removes implicit calibration in favour of explicit Q/DQ
graphs (``model.int8.onnx``), so this path exists for JetPack 5/6 users on TensorRT 8.5/8.6.
It is fed by the same calibration frames as the Q/DQ pass.

The logic that can be checked without a GPU is pure numpy and tested here:

* :class:`CalibrationBatches`: fixed-size batches (the last incomplete one is dropped, so the
  calibration batch size never changes) in the engine input's dtype and layout;
* :func:`parse_cache_header` / :func:`cache_matches`: a calibration cache starts with a line
  such as ``TRT-8502-EntropyCalibration2`` (8.x) or ``TRT-100300-EntropyCalibration2`` (10.x);
  a cache from another TensorRT version or algorithm is ignored rather than fed to the
  builder (NVIDIA/TensorRT#3612), with a message that says which version wrote it.

:func:`make_entropy_calibrator` creates the ``trt.IInt8EntropyCalibrator2`` subclass lazily
(the class can only exist once ``tensorrt`` is imported) and copies batches to the GPU with
cuda-python.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import numpy as np

from edgepose.atomic import atomic_write_bytes
from edgepose.errors import EdgePoseError, require

ALGORITHM = "EntropyCalibration2"


class CalibrationBatches:
    """Fixed-size calibration batches from preprocessed frames.

    Args:
        images: ``uint8 (N, H, W, 3)`` RGB frames at the network resolution.
        batch_size: frames per batch; ``N // batch_size`` full batches are produced.
        dtype: the engine input's dtype, ``"uint8"`` or ``"float32"`` (values stay 0..255:
            normalisation is inside the graph).
        layout: ``"NHWC"`` or ``"NCHW"``.
    """

    def __init__(self, images: np.ndarray, batch_size: int = 1, dtype: str = "uint8", layout: str = "NHWC"):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise EdgePoseError(f"calibration frames must be uint8 (N, H, W, 3); got {images.dtype} {list(images.shape)}")
        if int(batch_size) < 1:
            raise EdgePoseError(f"calibration batch size must be >= 1; got {batch_size}")
        if images.shape[0] < int(batch_size):
            raise EdgePoseError(
                f"{images.shape[0]} calibration frames cannot fill one batch of {batch_size}",
                hint="pass more frames with --calib-frames, or build with a smaller batch")
        if layout not in ("NHWC", "NCHW") or dtype not in ("uint8", "float32"):
            raise EdgePoseError(f"calibration input must be uint8/float32 NHWC/NCHW; got {dtype} {layout}")
        self.images = images
        self.batch_size = int(batch_size)
        self.dtype = np.dtype(dtype)
        self.layout = layout

    def __len__(self) -> int:
        return self.images.shape[0] // self.batch_size

    @property
    def frames_used(self) -> int:
        """Frames that go into calibration (``len(self) * batch_size``)."""
        return len(self) * self.batch_size

    @property
    def batch_shape(self) -> Tuple[int, ...]:
        n, h, w, c = self.images.shape
        return (self.batch_size, h, w, c) if self.layout == "NHWC" else (self.batch_size, c, h, w)

    @property
    def nbytes(self) -> int:
        """Bytes of one batch (the device buffer size)."""
        return int(np.prod(self.batch_shape)) * self.dtype.itemsize

    def batch(self, i: int) -> np.ndarray:
        """Batch ``i`` as a C-contiguous array of :attr:`batch_shape` and :attr:`dtype`."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        x = self.images[i * self.batch_size:(i + 1) * self.batch_size]
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.batch(i)


def frames_for_calibration_batch(images: np.ndarray, opt_batch: int) -> Tuple[np.ndarray, Optional[str]]:
    """Frames whose count fills at least one batch of the profile's OPT size.

    TensorRT calibrates at the optimization profile's OPT shape (``NvInfer.h``
    ``setCalibrationProfile``: "MIN and MAX values will be overwritten by kOPT"), so
    ``get_batch_size()`` must be OPT and every batch must hold OPT frames; a smaller batch
    hands TensorRT a buffer shorter than it reads. With fewer frames than OPT they are
    repeated (cycled) up to OPT, and the note says so.

    >>> x, note = frames_for_calibration_batch(np.zeros((3, 2, 2, 3), np.uint8), 4)
    >>> x.shape[0], note.startswith("3 calibration frame(s) repeated")
    (4, True)
    """
    images = np.asarray(images)
    n, opt = int(images.shape[0]), int(opt_batch)
    if opt < 1:
        raise EdgePoseError(f"the optimization profile's OPT batch must be >= 1; got {opt}")
    if n == 0:
        raise EdgePoseError("no calibration frames", hint="pass --calib DATA with a training split")
    if n >= opt:
        return images, None
    idx = np.arange(opt) % n
    return images[idx], (f"{n} calibration frame(s) repeated to fill one batch of the profile's OPT size {opt} "
                          "(TensorRT calibrates at OPT); pass more frames with --calib-frames")


# --------------------------------------------------------------------------- cache file
def trt_version_code(trt_version: str) -> int:
    """TensorRT's integer version as written in calibration-cache headers.

    8.x encodes ``MAJOR*1000 + MINOR*100 + PATCH`` (``NvInferRuntimeBase.h`` 8.6); 10.x and 11.x
    use ``NV_TENSORRT_VERSION_INT = MAJOR*10000 + MINOR*100 + PATCH`` (a 10.3 cache starts
    ``TRT-100300-EntropyCalibration2``). TensorRT refuses a mismatched cache by itself; our
    check only makes the message clearer.

    >>> trt_version_code("8.5.2.2"), trt_version_code("10.3.0.26"), trt_version_code("11.1.0")
    (8502, 100300, 110100)
    """
    parts = [int(p) for p in re.findall(r"\d+", str(trt_version))[:3]] + [0, 0, 0]
    major, minor, patch = parts[:3]
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def version_from_code(code: int) -> str:
    """``"10.3.0"`` from ``100300`` and ``"8.5.2"`` from ``8502`` (the inverse of :func:`trt_version_code`)."""
    major, rest = (code // 10000, code % 10000) if code >= 10000 else (code // 1000, code % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def parse_cache_header(data: bytes) -> Optional[Tuple[int, str]]:
    """``(version code, algorithm)`` from a calibration cache's first line, or ``None``.

    >>> parse_cache_header(b"TRT-8502-EntropyCalibration2\\nimage: 3c010a14\\n")
    (8502, 'EntropyCalibration2')
    """
    first = bytes(data[:200]).split(b"\n", 1)[0].decode("ascii", errors="replace").strip()
    m = re.fullmatch(r"TRT-(\d+)-(\w+)", first)
    return (int(m.group(1)), m.group(2)) if m else None


def cache_matches(data: bytes, trt_version: str, algorithm: str = ALGORITHM) -> Tuple[bool, str]:
    """Whether a cache can be reused by this TensorRT and algorithm, and why not."""
    head = parse_cache_header(data)
    if head is None:
        return False, "the file has no 'TRT-<version>-<algorithm>' header"
    code, algo = head
    want = trt_version_code(trt_version)
    if code != want:
        return False, (f"it was written by TensorRT {version_from_code(code)} (header code {code}); this is "
                       f"TensorRT {trt_version} (code {want}), which refuses another version's cache")
    if algo != algorithm:
        return False, f"it was written by {algo}, this build uses {algorithm}"
    return True, "matches"


def read_usable_cache(path: Optional[Union[str, Path]], trt_version: str,
                      algorithm: str = ALGORITHM, log=print) -> Optional[bytes]:
    """The cache bytes if ``path`` exists and matches; otherwise ``None`` (and say why)."""
    if path is None or not Path(path).is_file():
        return None
    data = Path(path).read_bytes()
    ok, why = cache_matches(data, trt_version, algorithm)
    if not ok:
        log(f"calibration cache {path} ignored: {why}; recalibrating")
        return None
    return data


# --------------------------------------------------------------------------- TensorRT part
def _cudart():
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            import importlib

            return importlib.import_module(name)
        except ImportError:
            continue
    return require("cuda.cudart", "INT8 calibration on the GPU",
                   "pip install 'cuda-python>=11.8,<12' on JetPack 5, 'cuda-python>=12,<13' on JetPack 6")


def _check(result):
    err = result[0] if isinstance(result, tuple) else result
    if int(err) != 0:
        raise EdgePoseError(f"CUDA call failed during INT8 calibration: {err}")
    return result[1] if isinstance(result, tuple) and len(result) > 1 else None


def make_entropy_calibrator(trt, batches: CalibrationBatches, cache_path: Optional[Union[str, Path]] = None,
                            log=print):
    """A ``trt.IInt8EntropyCalibrator2`` feeding ``batches``; the cache goes to ``cache_path``.

    Raises :class:`EdgePoseError` on TensorRT versions without implicit calibration (11.x).
    Call ``.free()`` after the build to release the device buffer.
    """
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EdgePoseError(
            f"TensorRT {trt.__version__} has no implicit INT8 calibration (removed in 11)",
            hint="build the INT8 engine from the Q/DQ model instead: --int8-engine qdq")
    cudart = _cudart()
    trt_version = str(trt.__version__)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._iter = iter(batches)
            self._device = _check(cudart.cudaMalloc(batches.nbytes))
            self._host = None  # keeps the last batch alive during the copy

        def get_batch_size(self):
            return batches.batch_size

        def get_batch(self, names):
            b = next(self._iter, None)
            if b is None:
                return None
            self._host = b
            _check(cudart.cudaMemcpy(self._device, b.ctypes.data, b.nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            return [int(self._device)]

        def read_calibration_cache(self):
            return read_usable_cache(cache_path, trt_version, ALGORITHM, log)

        def write_calibration_cache(self, cache):
            if cache_path is not None:
                atomic_write_bytes(cache_path, memoryview(cache).tobytes())

        def free(self):
            if self._device is not None:
                cudart.cudaFree(self._device)
                self._device = None

    return EntropyCalibrator()
