"""Runners: one interface (:class:`Runner`) for TensorRT, ONNX Runtime and torch."""
from .base import Runner
from .factory import BACKENDS, DESCRIPTIONS, auto_backend, create_runner, open_runner, register_backend

__all__ = ["Runner", "BACKENDS", "DESCRIPTIONS", "auto_backend", "create_runner", "open_runner", "register_backend"]
