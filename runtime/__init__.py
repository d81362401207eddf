"""edgepose.runtime: runners, buffers, the streaming pipeline, sources, filter and sinks.

Imports only numpy and edgepose at import time; each backend (tensorrt + CUDA bindings,
onnxruntime, torch), OpenCV and matplotlib are imported lazily by the code that needs them,
so this package runs on a Jetson that has TensorRT and numpy but no torch.

Public API (stable, used by ``edgepose.runtime.bench``):

* ``open_runner(bundle, backend="auto", precision=None, **options) -> Runner``, a context
  manager with ``.infer(batch) -> PoseBatch``, ``.name``, ``.input_spec``, ``.last_timing``;
* ``BACKENDS`` (name -> runner class), ``DESCRIPTIONS``;
* ``preprocess_batch(images, spec, out=None)``;
* ``PoseEstimator.from_bundle(path, backend="auto", precision=None)`` with ``.predict``
  and ``.stream``; ``Pipeline``, ``open_source``, ``PoseFilter``, the sinks.
"""
from .bundles import BundleView, PrecisionFallbackWarning, open_bundle
from .estimator import PoseEstimator
from .filter import PoseFilter, make_filter
from .pipeline import POLICIES, Pipeline, PipelineError, PipelineStats
from .results import PoseBatch, PoseResult
from .runners import BACKENDS, DESCRIPTIONS, Runner, auto_backend, open_runner, register_backend
from .endpoints import open_sinks, open_source
from .sinks import CsvSink, JsonlSink, TrajectoryPlot
from .sources import (ArraySource, CameraSource, DatasetSource, Frame, GStreamerSource, ImageFolderSource, Source,
                      VideoFileSource)
from .spec import InputMismatchError, InputSpec, allocate_batch, preprocess_batch

__all__ = [
    "open_runner", "BACKENDS", "DESCRIPTIONS", "register_backend", "auto_backend", "Runner",
    "PoseBatch", "PoseResult", "InputSpec", "InputMismatchError", "preprocess_batch", "allocate_batch",
    "PoseEstimator", "Pipeline", "PipelineError", "PipelineStats", "POLICIES",
    "Source", "Frame", "ImageFolderSource", "VideoFileSource", "CameraSource", "GStreamerSource", "DatasetSource",
    "ArraySource", "open_source", "PoseFilter", "make_filter", "JsonlSink", "CsvSink", "TrajectoryPlot",
    "open_sinks", "BundleView", "open_bundle", "PrecisionFallbackWarning",
]
