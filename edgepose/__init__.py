"""edgepose: camera-pose regression from training to real-time inference on NVIDIA Jetson.

The core package (this one) needs only numpy and pillow: geometry, dataset formats,
synthetic scenes, the bundle manifest, metrics and errors. ``import edgepose`` never
imports torch. Stage packages: ``edgepose.train`` (torch), ``edgepose.export`` (onnx,
TensorRT), ``edgepose.runtime`` (numpy + one backend).
"""
from .errors import BundleError, ConfigError, DataFormatError, EdgePoseError, MissingDependencyError

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "EdgePoseError",
    "DataFormatError",
    "BundleError",
    "ConfigError",
    "MissingDependencyError",
]
