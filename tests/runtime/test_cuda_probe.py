"""Argument lists of every CUDA runtime call of runtime/cuda.py against the cuda-python line
installed here (real bindings, no GPU: CUDA answers an error code, a wrong signature raises
TypeError first), the optional CUDA graph's fallback, and engine checks that need no TensorRT.

The other cuda-python lines (11.8 for JetPack 5, 12.x for JetPack 6) are checked by
``benchmarks/cuda_python_matrix.py`` (results in benchmarks/results/cuda_python_matrix.md).
"""
from __future__ import annotations

import ast
import inspect
import json

import pytest

from edgepose.bundle import load_manifest, sha256_file
from edgepose.manifest import Manifest
from edgepose.errors import BundleError, EdgePoseError, EngineMismatchError

cudart = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings (cuda-python) is not installed")

from edgepose.runtime.cuda import CudaApi, CudaError, CudartApi, capture_graph  # noqa: E402
from edgepose.runtime.cuda_probe import probe, signature_ok  # noqa: E402


class Recorder:
    """The real binding module, with every call's name and arguments recorded on the way through."""

    def __init__(self, module):
        self._m, self.calls = module, []

    def __getattr__(self, name):
        real = getattr(self._m, name)
        if not callable(real) or not name.startswith("cuda") or isinstance(real, type):
            return real

        def call(*args):
            self.calls.append((name, args))
            return real(*args)
        return call


def _cuda_functions_in_source() -> dict:
    """{CudartApi method: the CUDA runtime functions its body calls}, read from runtime/cuda.py's
    source (``self.rt.cudaXxx(...)``), independently of the probe's CALLS table."""
    (cls,) = ast.parse(inspect.getsource(CudartApi)).body
    found = {}
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef):
            names = {n.func.attr for n in ast.walk(fn)
                     if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr.startswith("cuda")}
            if names:
                found[fn.name] = names
    return found


def test_every_cudart_call_reaches_cuda_with_the_installed_binding():
    in_source = _cuda_functions_in_source()
    rows = probe(CudartApi(cudart, "cuda.bindings.runtime"))
    # each method that calls CUDA has its row, naming exactly the functions its body calls; not
    # probed on their own: _check's cudaGetErrorString (the error text, reached only by a failing
    # call) and thread_context's cudaSetDevice (set_device's call; its order is checked below)
    probed = {}
    for r in rows[:-1]:  # a method that makes two CUDA calls has a row per call
        probed.setdefault(r["method"], set()).add(r["cuda"])
    assert probed == {m: f for m, f in in_source.items() if m not in ("_check", "thread_context")}
    wrong = [r for r in rows if not signature_ok(r)]
    assert wrong == [], wrong


def test_every_cuda_function_cudartapi_calls_is_reached_by_the_probe():
    rec = Recorder(cudart)
    probe(CudartApi(rec, "recorded"))
    used = set().union(*_cuda_functions_in_source().values()) - {"cudaGetErrorString"}  # reached on failure only
    assert used - {name for name, _ in rec.calls} == set()


def test_graph_instantiation_uses_the_with_flags_form_every_line_shares():
    """cudaGraphInstantiate(graph, 0) is a TypeError on cuda-python 11.8 (JetPack 5): the runner
    must call cudaGraphInstantiateWithFlags(graph, 0)."""
    rec = Recorder(cudart)
    api = CudartApi(rec, "recorded")
    with pytest.raises(CudaError):  # no driver here: the call reached CUDA
        api.graph_instantiate(cudart.cudaGraph_t())
    name, args = rec.calls[0]
    assert name == "cudaGraphInstantiateWithFlags" and len(args) == 2 and args[1] == 0


def test_set_device_is_called_before_allocations_and_again_in_each_thread_context():
    rec = Recorder(cudart)
    api = CudartApi(rec, "recorded")
    for fn in (lambda: api.set_device(1), lambda: api.malloc(16)):
        with pytest.raises(CudaError):
            fn()
    api.device = 1  # as after a successful set_device on a machine with two GPUs
    with pytest.raises(CudaError):
        with api.thread_context():
            pass
    calls = [(n, a) for n, a in rec.calls if n != "cudaGetErrorString"]  # the error text of each failure
    assert calls == [("cudaSetDevice", (1,)), ("cudaMalloc", (16,)), ("cudaSetDevice", (1,))]


# --------------------------------------------------------------------------- the optional graph
class ScriptedApi(CudaApi):
    """Capture calls that succeed or fail as scripted; records what was called."""

    def __init__(self, fail_at=None, error=None):
        self.fail_at, self.error, self.calls = fail_at, error, []

    def _do(self, name, result=None):
        self.calls.append(name)
        if name == self.fail_at:
            raise self.error
        return result

    def begin_capture(self, stream):
        return self._do("begin_capture")

    def end_capture(self, stream):
        return self._do("end_capture", "graph")

    def graph_instantiate(self, graph):
        return self._do("graph_instantiate", "exec")

    def graph_destroy(self, graph, graph_exec):
        self.calls.append(("graph_destroy", graph, graph_exec))


# the message cuda-python 11.8 gives for cudaGraphInstantiate(graph, 0) (benchmarks/results/cuda_python_matrix.md)
LEGACY = TypeError("cudaGraphInstantiate() takes exactly 3 positional arguments (2 given)")


@pytest.mark.parametrize("fail_at,error", [
    ("graph_instantiate", LEGACY),
    ("begin_capture", CudaError("cudaStreamBeginCapture", "cudaErrorStreamCaptureUnsupported", 900)),
    ("enqueue", EdgePoseError("TensorRT execute_async_v3 returned False")),
])
def test_any_capture_failure_means_no_graph_and_a_reason_never_an_exception(fail_at, error):
    api = ScriptedApi(fail_at, error)
    ran = []

    def enqueue():
        ran.append(1)
        if fail_at == "enqueue":
            raise error
    graph, graph_exec, why = capture_graph(api, "stream", enqueue)
    assert graph is None and graph_exec is None and type(error).__name__ in why
    if fail_at != "begin_capture":
        assert "end_capture" in api.calls  # the stream leaves capture mode before plain enqueue resumes
    if fail_at == "graph_instantiate":
        assert ("graph_destroy", "graph", None) in api.calls


def test_capture_that_works_returns_the_instantiated_graph():
    api = ScriptedApi()
    assert capture_graph(api, "stream", lambda: None) == ("graph", "exec", None)


# --------------------------------------------------------------------------- engines vs the bundle
def test_engine_buffers_follow_the_engine_profile_and_refuse_a_narrower_one():
    from edgepose.runtime.runners.tensorrt_runner import check_profile

    prof = [(1, 24, 32, 3), (4, 24, 32, 3), (8, 24, 32, 3)]
    assert check_profile(prof, (1, 24, 32, 3), (8, 24, 32, 3), "e.engine") == (8, 24, 32, 3)
    assert check_profile(prof, (2, 24, 32, 3), (4, 24, 32, 3), "e.engine") == (4, 24, 32, 3)
    with pytest.raises(BundleError, match=r"profile takes \(1, 24, 32, 3\)..\(8, 24, 32, 3\)"):
        check_profile(prof, (1, 24, 32, 3), (16, 24, 32, 3), "e.engine")
    with pytest.raises(BundleError):
        check_profile(prof, (1, 32, 24, 3), (8, 32, 24, 3), "e.engine")  # another resolution


def test_a_re_exported_bundle_does_not_reuse_its_stale_engine(tmp_path, bundle):
    import shutil

    from edgepose.bundle import EngineFingerprint, engine_filename, file_entry, write_manifest
    from edgepose.runtime import open_bundle
    from edgepose.runtime.runners.tensorrt_runner import bundle_profile, select_engine

    dst = tmp_path / "b"
    shutil.copytree(bundle[0], dst)
    m = load_manifest(dst)
    fp = EngineFingerprint("10.3.0", "Orin [Orin Nano]", "8.7", "fp32", onnx_sha256=sha256_file(dst / "model.onnx"),
                           profile=bundle_profile(Manifest.from_json(m)))
    name = engine_filename(fp)
    (dst / name).write_bytes(b"selection reads the manifest only")
    m["files"][name] = file_entry(dst, name, "engine", "fp32", fingerprint=json.loads(json.dumps(fp.to_json())),
                                  onnx="model.onnx")
    write_manifest(dst, m)
    here = EngineFingerprint("10.3.0", "Orin [Orin Nano]", "8.7", "fp32")
    assert select_engine(open_bundle(dst), "fp32", here, strict=True)[1].name == name
    (dst / "model.onnx").write_bytes((dst / "model.onnx").read_bytes() + b"\n")  # a re-export
    m["files"]["model.onnx"] = file_entry(dst, "model.onnx", "onnx", "fp32")
    write_manifest(dst, m)
    with pytest.raises(EngineMismatchError, match="ONNX file sha256"):
        select_engine(open_bundle(dst), "fp32", here, strict=True)


def test_the_runtime_names_this_jetson_as_the_exporter_did():
    """Export and runtime must agree on the GPU label, or every engine is refused on an Orin."""
    from edgepose.bundle import check_engine
    from edgepose.export.tensorrt.device_fingerprint import DeviceInfo
    from edgepose.jetson import gpu_label, jetson_module
    from edgepose.runtime.runners.tensorrt_runner import local_fingerprint

    module = jetson_module("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00")
    built = DeviceInfo("10.3.0", gpu_label("Orin", module), "8.7", module=module).fingerprint("fp16")
    check_engine({"fingerprint": built.to_json()}, local_fingerprint("10.3.0", "Orin", "8.7", "fp16", module))
    other = local_fingerprint("10.3.0", "Orin", "8.7", "fp16", jetson_module("NVIDIA Jetson AGX Orin Developer Kit"))
    with pytest.raises(EngineMismatchError, match="gpu: engine has 'Orin \\[Orin Nano\\]'"):
        check_engine({"fingerprint": built.to_json()}, other)
