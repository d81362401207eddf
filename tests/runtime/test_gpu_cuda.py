"""runtime/cuda.py on a real GPU (marked ``gpu``; ``make gpu-check``): pinned buffers, async
copies, events, stream ordering and CUDA-graph capture/launch around a real kernel (CuPy on our
stream), compared with numpy. No TensorRT needed. Skipped with the reason elsewhere."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.runtime.runners.torch_runner import TorchCudaRunner

pytestmark = pytest.mark.gpu


@pytest.fixture()
def cuda_api(cuda_gpu):
    from edgepose.runtime.cuda import load_cuda

    api = load_cuda()
    if api.binding == "pycuda":
        pytest.skip("CUDA graphs need cuda-python; this process bound pycuda")
    api.set_device(0)
    return api


def test_pinned_copies_kernel_events_and_a_captured_graph_on_our_stream(cuda_api, gpu_record):
    cp = pytest.importorskip("cupy", reason="CuPy is not installed (the kernel on our stream comes from CuPy)")
    from edgepose.runtime.cuda import capture_graph

    api, n = cuda_api, 1 << 20
    nbytes = 4 * n
    rng = np.random.default_rng(0)
    h_in, h_out = api.pinned_array((n,), np.float32), api.pinned_array((n,), np.float32)
    d_in, d_out = api.malloc(nbytes), api.malloc(nbytes)
    stream = api.stream_create()
    ev = [api.event_create() for _ in range(2)]
    graph = graph_exec = None
    try:
        def device_array(ptr):
            mem = cp.cuda.UnownedMemory(ptr, nbytes, api)
            return cp.ndarray((n,), cp.float32, cp.cuda.MemoryPointer(mem, 0))

        din, dout = device_array(d_in), device_array(d_out)

        def work():  # H2D -> kernel -> D2H, all on our stream, no synchronisation in between
            api.memcpy_htod_async(d_in, h_in.ptr, nbytes, stream)
            cp.multiply(din, 2.0, out=dout)
            cp.add(dout, 1.0, out=dout)
            api.memcpy_dtoh_async(h_out.ptr, d_out, nbytes, stream)

        with cp.cuda.ExternalStream(api.stream_handle(stream)):
            x = rng.standard_normal(n).astype(np.float32)
            h_in.array[:] = x
            work()  # first run: CuPy compiles its kernels outside any capture
            api.synchronize(stream)
            x = rng.standard_normal(n).astype(np.float32)
            h_in.array[:] = x
            h_out.array[:] = np.nan
            api.event_record(ev[0], stream)
            work()
            api.event_record(ev[1], stream)
            api.synchronize(stream)  # the one synchronisation: stream order did the rest
            np.testing.assert_array_equal(h_out.array, x * np.float32(2) + np.float32(1))
            ms = api.event_elapsed_ms(ev[0], ev[1])
            assert ms > 0

            graph, graph_exec, why = capture_graph(api, stream, work)
            assert why is None, why
            for k in range(3):  # the graph reads the pinned input at launch time: new data each time
                y = rng.standard_normal(n).astype(np.float32)
                h_in.array[:] = y
                api.graph_launch(graph_exec, stream)
                api.synchronize(stream)
                np.testing.assert_array_equal(h_out.array, y * np.float32(2) + np.float32(1))
        gpu_record("cuda_wrapper", mbytes=nbytes / 1e6, plain_round_trip_ms=round(ms, 3), graph_launches=3)
    finally:
        api.graph_destroy(graph, graph_exec)
        for e in ev:
            api.event_destroy(e)
        api.stream_destroy(stream)
        api.free(d_in)
        api.free(d_out)
        h_in.free()
        h_out.free()


def test_capture_of_work_that_cannot_be_captured_falls_back_with_a_reason(cuda_api):
    """A synchronous call inside capture is illegal in ThreadLocal mode: no graph, a reason, no crash."""
    from edgepose.runtime.cuda import capture_graph

    api = cuda_api
    stream = api.stream_create()
    try:
        graph, graph_exec, why = capture_graph(api, stream, lambda: api.synchronize(stream))
        assert graph_exec is None and why
        api.synchronize(stream)  # the stream is usable afterwards
    finally:
        api.stream_destroy(stream)


def test_torch_cuda_backend_is_available_on_this_gpu(cuda_gpu):
    assert TorchCudaRunner.available() is None
