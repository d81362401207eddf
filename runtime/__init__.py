"""edgepose.runtime: runners, buffers, the streaming pipeline, sources, filter and bench.

Imports only numpy and edgepose at import time; each backend (tensorrt + CUDA bindings,
onnxruntime, torch) is imported lazily by the runner that needs it, so this package runs
on a Jetson that has TensorRT and numpy but no torch.
"""
