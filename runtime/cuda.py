"""A thin wrapper over the CUDA runtime for the TensorRT runner: pinned host buffers, device
buffers, a non-default stream, async copies and CUDA-graph capture.

The binding is picked once, on first use (never at ``import edgepose.runtime``), in order:
cuda-python's runtime module in its new layout (``from cuda.bindings import runtime``), its
old layout (``from cuda import cudart``), then pycuda. Every failing call becomes a
:class:`CudaError` naming the call, the CUDA error and what to do.

cuda-python has three API lines our users meet: 11.8.x (JetPack 5, CUDA 11.4), 12.x (JetPack
6) and 13.x. Only calls whose signature is the same in all three are used here; in particular
``cudaGraphInstantiateWithFlags(graph, 0)``, because ``cudaGraphInstantiate`` takes
``(graph, pLogBuffer, bufferSize)`` in 11.8 and ``(graph, flags)`` from 12 (cuda-python's
generated ``cudart.pyx`` of each line). ``benchmarks/cuda_python_matrix.py`` calls every
method below against a wheel of each line (:mod:`.cuda_probe`); its results are in
``benchmarks/results/cuda_python_matrix.md``.

Device choice: :meth:`CudaApi.set_device` selects the CUDA device before anything is
allocated, and :meth:`CudaApi.thread_context` makes it current in whatever thread runs
inference (``cudaSetDevice`` is per host thread).
"""
from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Callable, Optional, Tuple

import numpy as np

from edgepose.errors import EdgePoseError, MissingDependencyError

#: the cuda-python line that matches each platform's CUDA (the bindings must not be newer than the driver)
CUDA_INSTALL = ("pip install 'cuda-python>=11.8,<12' on JetPack 5 (CUDA 11.4), "
                "'cuda-python>=12,<13' on JetPack 6 (CUDA 12.x), 'cuda-python>=13' with a CUDA 13 driver; "
                "or pycuda")

#: what to tell the user for the errors people actually meet
ADVICE = {
    "cudaErrorInsufficientDriver": "the NVIDIA driver is missing or older than this CUDA runtime: "
                                   "install a driver that supports it (on a Jetson, use the CUDA that "
                                   "came with JetPack), or run on ONNX Runtime with --backend onnxruntime",
    "cudaErrorNoDevice": "no CUDA GPU is visible: check nvidia-smi / CUDA_VISIBLE_DEVICES, "
                         "or run on ONNX Runtime with --backend onnxruntime",
    "cudaErrorMemoryAllocation": "out of GPU or pinned memory: close other GPU processes or use a smaller batch",
    "cudaErrorStreamCaptureUnsupported": "this work cannot be captured in a CUDA graph: run without --cuda-graph",
}


class CudaError(EdgePoseError):
    """A CUDA runtime call failed. ``code`` is the CUDA error name (``"cudaErrorNoDevice"``)."""

    def __init__(self, call: str, code: str, number: int, detail: str = ""):
        self.call, self.code, self.number = call, code, number
        msg = f"CUDA call {call} failed: {code} ({number})" + (f": {detail}" if detail else "")
        super().__init__(msg, hint=ADVICE.get(code, "check the GPU with nvidia-smi (tegrastats on a Jetson)"))


class HostBuffer:
    """Pinned host memory seen as a numpy array (``.array``); freed by :meth:`free`."""

    def __init__(self, api: "CudaApi", ptr: int, nbytes: int, shape, dtype):
        self.api, self.ptr, self.nbytes = api, int(ptr), int(nbytes)
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self.api.free_host(self.ptr)
            self.ptr = 0


class CudaApi:
    """Common calls; subclasses bind them to cuda-python or pycuda."""

    binding = "?"
    device: Optional[int] = None

    def thread_context(self):
        """Context manager making the chosen device current in this thread."""
        return contextlib.nullcontext()

    def pinned_array(self, shape, dtype) -> HostBuffer:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return HostBuffer(self, self.malloc_host(nbytes), nbytes, tuple(shape), dtype)


class CudartApi(CudaApi):
    """cuda-python's runtime module (either import layout)."""

    def __init__(self, cudart, binding: str):
        self.rt = cudart
        self.binding = binding

    def _check(self, call: str, result):
        if not isinstance(result, tuple):
            result = (result,)
        err, values = result[0], result[1:]
        number = int(err)
        if number != 0:
            name = getattr(err, "name", None) or f"cudaError {number}"
            detail = ""
            try:
                e2, text = self.rt.cudaGetErrorString(err)
                detail = text.decode() if isinstance(text, bytes) else str(text)
            except Exception:  # pragma: no cover - best effort
                pass
            raise CudaError(call, name, number, detail)
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def device_count(self) -> int:
        return int(self._check("cudaGetDeviceCount", self.rt.cudaGetDeviceCount()))

    def set_device(self, device: int) -> None:
        """Select CUDA device ``device`` for this process's later calls (before any allocation)."""
        self._check("cudaSetDevice", self.rt.cudaSetDevice(int(device)))
        self.device = int(device)

    @contextlib.contextmanager
    def thread_context(self):
        if self.device is not None:  # cudaSetDevice is per host thread: repeat it in worker threads
            self._check("cudaSetDevice", self.rt.cudaSetDevice(self.device))
        yield

    def device_properties(self, device: int = 0) -> Tuple[str, str]:
        """``(gpu name, compute capability "8.7")`` of ``device``."""
        prop = self._check("cudaGetDeviceProperties", self.rt.cudaGetDeviceProperties(device))
        name = prop.name
        name = name.split(b"\0", 1)[0].decode() if isinstance(name, (bytes, bytearray)) else str(name)
        return name.strip(), f"{prop.major}.{prop.minor}"

    def malloc_host(self, nbytes: int) -> int:
        return int(self._check("cudaMallocHost", self.rt.cudaMallocHost(nbytes)))

    def free_host(self, ptr: int) -> None:
        self._check("cudaFreeHost", self.rt.cudaFreeHost(ptr))

    def malloc(self, nbytes: int) -> int:
        return int(self._check("cudaMalloc", self.rt.cudaMalloc(nbytes)))

    def free(self, ptr: int) -> None:
        self._check("cudaFree", self.rt.cudaFree(ptr))

    def stream_create(self):
        flags = getattr(self.rt, "cudaStreamNonBlocking", 1)
        return self._check("cudaStreamCreateWithFlags", self.rt.cudaStreamCreateWithFlags(flags))

    def stream_destroy(self, stream) -> None:
        self._check("cudaStreamDestroy", self.rt.cudaStreamDestroy(stream))

    def stream_handle(self, stream) -> int:
        return int(stream)

    def memcpy_htod_async(self, dst: int, src: int, nbytes: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check("cudaMemcpyAsync(H2D)", self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def memcpy_dtoh_async(self, dst: int, src: int, nbytes: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check("cudaMemcpyAsync(D2H)", self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def synchronize(self, stream) -> None:
        self._check("cudaStreamSynchronize", self.rt.cudaStreamSynchronize(stream))

    # events, for h2d / compute / d2h timings without extra synchronisation
    def event_create(self):
        return self._check("cudaEventCreate", self.rt.cudaEventCreate())

    def event_record(self, event, stream) -> None:
        self._check("cudaEventRecord", self.rt.cudaEventRecord(event, stream))

    def event_elapsed_ms(self, start, end) -> float:
        return float(self._check("cudaEventElapsedTime", self.rt.cudaEventElapsedTime(start, end)))

    def event_destroy(self, event) -> None:
        self._check("cudaEventDestroy", self.rt.cudaEventDestroy(event))

    # CUDA graphs: capture what is enqueued on ``stream`` between begin and end
    def begin_capture(self, stream) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check("cudaStreamBeginCapture", self.rt.cudaStreamBeginCapture(stream, mode))

    def end_capture(self, stream):
        return self._check("cudaStreamEndCapture", self.rt.cudaStreamEndCapture(stream))

    def graph_instantiate(self, graph):
        # the WithFlags form has one signature in cuda-python 11.8, 12.x and 13.x (see the module docstring)
        return self._check("cudaGraphInstantiateWithFlags", self.rt.cudaGraphInstantiateWithFlags(graph, 0))

    def graph_launch(self, graph_exec, stream) -> None:
        self._check("cudaGraphLaunch", self.rt.cudaGraphLaunch(graph_exec, stream))

    def graph_destroy(self, graph, graph_exec) -> None:
        if graph_exec is not None:
            self._check("cudaGraphExecDestroy", self.rt.cudaGraphExecDestroy(graph_exec))
        if graph is not None:
            self._check("cudaGraphDestroy", self.rt.cudaGraphDestroy(graph))


class PycudaApi(CudaApi):
    """pycuda (the binding of TensorRT 8.5's samples); no CUDA graphs through it."""

    binding = "pycuda"

    def __init__(self, driver):
        self.drv = driver
        try:
            driver.init()
        except driver.Error as exc:
            raise CudaError("cuInit", type(exc).__name__, -1, str(exc)) from None
        self.ctx = None
        self._host = {}

    def set_device(self, device: int) -> None:
        """Use the primary context of device ``device`` (not always device 0)."""
        try:
            self.ctx = self.drv.Device(int(device)).retain_primary_context()
        except self.drv.Error as exc:
            raise CudaError("cuDevicePrimaryCtxRetain", type(exc).__name__, -1, str(exc)) from None
        self.device = int(device)

    @contextlib.contextmanager
    def thread_context(self):
        if self.ctx is None:
            self.set_device(0)
        self.ctx.push()
        try:
            yield
        finally:
            self.drv.Context.pop()

    def _call(self, call, fn, *args):
        try:
            with self.thread_context():
                return fn(*args)
        except self.drv.Error as exc:
            raise CudaError(call, type(exc).__name__, -1, str(exc)) from None

    def device_count(self) -> int:
        return int(self.drv.Device.count())

    def device_properties(self, device: int = 0) -> Tuple[str, str]:
        d = self.drv.Device(device)
        major, minor = d.compute_capability()
        return d.name(), f"{major}.{minor}"

    def malloc_host(self, nbytes: int) -> int:
        arr = self._call("pagelocked_empty", self.drv.pagelocked_empty, (nbytes,), np.uint8)
        ptr = arr.ctypes.data
        self._host[ptr] = arr
        return ptr

    def free_host(self, ptr: int) -> None:
        arr = self._host.pop(ptr, None)
        if arr is not None:
            arr.base.free()

    def malloc(self, nbytes: int) -> int:
        alloc = self._call("mem_alloc", self.drv.mem_alloc, nbytes)
        self._host[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        alloc = self._host.pop(ptr, None)
        if alloc is not None:
            self._call("mem_free", alloc.free)

    def stream_create(self):
        return self._call("Stream", self.drv.Stream)

    def stream_destroy(self, stream) -> None:
        pass

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def memcpy_htod_async(self, dst, src, nbytes, stream) -> None:
        self._call("memcpy_htod_async", self.drv.memcpy_htod_async, dst,
                   (ctypes.c_byte * nbytes).from_address(src), stream)

    def memcpy_dtoh_async(self, dst, src, nbytes, stream) -> None:
        self._call("memcpy_dtoh_async", self.drv.memcpy_dtoh_async,
                   (ctypes.c_byte * nbytes).from_address(dst), src, stream)

    def synchronize(self, stream) -> None:
        self._call("Stream.synchronize", stream.synchronize)

    def event_create(self):
        return self._call("Event", self.drv.Event)

    def event_record(self, event, stream) -> None:
        self._call("Event.record", event.record, stream)

    def event_elapsed_ms(self, start, end) -> float:
        return float(self._call("Event.time_till", start.time_till, end))

    def event_destroy(self, event) -> None:
        pass

    def begin_capture(self, stream):
        raise CudaError("cudaStreamBeginCapture", "cudaErrorNotSupported", 801,
                        "CUDA graphs need cuda-python; this process uses pycuda")

    end_capture = graph_instantiate = graph_launch = begin_capture

    def graph_destroy(self, graph, graph_exec) -> None:
        pass


def capture_graph(api: CudaApi, stream, enqueue: Callable[[], None]) -> Tuple[object, object, Optional[str]]:
    """Capture what ``enqueue()`` puts on ``stream`` into an instantiated CUDA graph.

    Returns ``(graph, graph_exec, None)``, or ``(None, None, reason)`` when anything fails: a
    CUDA error, work that cannot be captured, or a binding line whose signature differs
    (``TypeError``). The caller then runs without the graph; the optional graph never fails
    the runner (trtexec also falls back when capture fails: ``samples/common/sampleInference.cpp``).
    """
    graph = None
    try:
        api.begin_capture(stream)
        try:
            enqueue()
        finally:
            graph = api.end_capture(stream)
        return graph, api.graph_instantiate(graph), None
    except Exception as exc:  # noqa: BLE001 - any failure means "no graph", said in the warning
        with contextlib.suppress(Exception):
            api.graph_destroy(graph, None)
        return None, None, f"{type(exc).__name__}: {exc}"


_API: Optional[CudaApi] = None
_LOCK = threading.Lock()


def load_cuda() -> CudaApi:
    """The process's CUDA binding, chosen on first call (see the module docstring)."""
    global _API
    with _LOCK:
        if _API is None:
            _API = _pick_binding()
        return _API


def _pick_binding() -> CudaApi:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6 layout
        return CudartApi(cudart, "cuda.bindings.runtime")
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python < 12.6 layout (TensorRT 8.6-10 samples)
        return CudartApi(cudart, "cuda.cudart")
    except ImportError:
        pass
    try:
        import pycuda.driver as driver
        return PycudaApi(driver)
    except ImportError:
        pass
    raise MissingDependencyError("cuda-python", "the TensorRT backend (CUDA buffers and streams)", CUDA_INSTALL)
