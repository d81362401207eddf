"""Runners: one interface (:class:`Runner`) for TensorRT, ONNX Runtime and torch."""
from .base import DEFAULT_PRECISION, Runner
from .factory import (BACKENDS, DESCRIPTIONS, auto_backend, open_runner, register_backend,
                      resolve_backend, runner_class)

__all__ = ["Runner", "BACKENDS", "DESCRIPTIONS", "DEFAULT_PRECISION", "auto_backend",
           "open_runner", "register_backend", "resolve_backend", "runner_class"]
