"""Call every CUDA runtime method of :class:`~edgepose.runtime.cuda.CudartApi` once and say how
each call ended, to check our argument lists against a cuda-python line without a GPU.

cuda-python's wheels install on any machine; without a GPU or driver a call either returns a
CUDA error code (13.x) or fails in the driver loader (11.8, 12.x), in both cases after the
argument list was accepted; a wrong argument list raises ``TypeError`` first. So ``ok``,
``CUDA error ...`` and ``no driver: ...`` prove the signature, ``TypeError`` disproves it.
Handles are the binding's own types (``cudaStream_t()``, ``cudaEvent_t()``...), as the real
calls would pass them.

Used by ``benchmarks/cuda_python_matrix.py`` (one throwaway venv per cuda-python line, this
file loaded by path, so it imports nothing of ours) and by the tests with the line installed
here.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Tuple

#: (method of CudartApi, the CUDA runtime function(s) it calls)
CALLS: Tuple[Tuple[str, str], ...] = (
    ("device_count", "cudaGetDeviceCount"),
    ("set_device", "cudaSetDevice"),
    ("device_properties", "cudaGetDeviceProperties"),
    ("malloc_host", "cudaMallocHost"),
    ("free_host", "cudaFreeHost"),
    ("malloc", "cudaMalloc"),
    ("free", "cudaFree"),
    ("stream_create", "cudaStreamCreateWithFlags"),
    ("memcpy_htod_async", "cudaMemcpyAsync"),
    ("memcpy_dtoh_async", "cudaMemcpyAsync"),
    ("synchronize", "cudaStreamSynchronize"),
    ("event_create", "cudaEventCreate"),
    ("event_record", "cudaEventRecord"),
    ("event_elapsed_ms", "cudaEventElapsedTime"),
    ("event_destroy", "cudaEventDestroy"),
    ("begin_capture", "cudaStreamBeginCapture"),
    ("end_capture", "cudaStreamEndCapture"),
    ("graph_instantiate", "cudaGraphInstantiateWithFlags"),
    ("graph_launch", "cudaGraphLaunch"),
    ("graph_destroy", "cudaGraphExecDestroy"),  # each CUDA call alone: the first's error would
    ("graph_destroy", "cudaGraphDestroy"),  # hide whether the second's arguments fit
    ("stream_destroy", "cudaStreamDestroy"),
)


#: what cuda-python 11.8/12.x raise when the call got past argument parsing but libcuda.so is absent
NO_DRIVER = ("libcuda", "cuInit")


def outcome(fn: Callable[[], object]) -> str:
    """``"ok"``, ``"CUDA error <name>"`` (our CudaError), ``"no driver: ..."``, ``"TypeError: ..."``
    or another exception.

    cuda-python 13 answers a CUDA error code without a driver; 11.8 and 12.x raise
    ``RuntimeError`` ("Failed to dlopen libcuda.so.1", then 'Function "cuInit" not found') from
    the driver loader, which runs after the wrapper has checked and converted the arguments
    (a wrong argument count raises ``TypeError`` first, as the legacy row shows). Both mean the
    argument list fits.
    """
    try:
        fn()
    except TypeError as exc:
        return f"TypeError: {exc}"
    except Exception as exc:  # noqa: BLE001 - the point is to name whatever happened
        code = getattr(exc, "code", None)
        if code:
            return f"CUDA error {code}"
        if isinstance(exc, RuntimeError) and any(k in str(exc) for k in NO_DRIVER):
            return f"no driver: {exc}"
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def probe(api) -> List[Dict[str, str]]:
    """One row per entry of :data:`CALLS`: ``{"method", "cuda", "outcome"}``; then the legacy
    ``cudaGraphInstantiate(graph, 0)`` call the runner used to make, for comparison."""
    rt = api.rt
    stream, event, graph, graph_exec = rt.cudaStream_t(), rt.cudaEvent_t(), rt.cudaGraph_t(), rt.cudaGraphExec_t()
    args = {
        "device_count": (), "set_device": (0,), "device_properties": (0,), "malloc_host": (64,),
        "free_host": (0,), "malloc": (64,), "free": (0,), "stream_create": (),
        "memcpy_htod_async": (0, 0, 64, stream), "memcpy_dtoh_async": (0, 0, 64, stream),
        "synchronize": (stream,), "event_create": (), "event_record": (event, stream),
        "event_elapsed_ms": (event, event), "event_destroy": (event,), "begin_capture": (stream,),
        "end_capture": (stream,), "graph_instantiate": (graph,), "graph_launch": (graph_exec, stream),
        "stream_destroy": (stream,),
    }
    args_of_call = {"cudaGraphExecDestroy": (None, graph_exec), "cudaGraphDestroy": (graph, None)}
    rows = []
    for method, cuda in CALLS:
        rows.append({"method": method, "cuda": cuda,
                     "outcome": outcome(lambda: getattr(api, method)(*args_of_call.get(cuda, args.get(method))))})
    rows.append({"method": "(legacy) cudaGraphInstantiate(graph, 0)", "cuda": "cudaGraphInstantiate",
                 "outcome": outcome(lambda: api._check("cudaGraphInstantiate", rt.cudaGraphInstantiate(graph, 0)))})
    return rows


def signature_ok(row: Dict[str, str]) -> bool:
    """The call reached CUDA (``ok`` or a CUDA error): its argument list fits this binding."""
    return row["outcome"] == "ok" or row["outcome"].startswith(("CUDA error", "no driver:"))
