"""One error family for every user-facing failure.

Messages say what was expected, what was found, where (``file:line`` for data) and what to
do. Code never uses ``assert`` for user errors.
"""
from __future__ import annotations

from typing import Optional


class EdgePoseError(Exception):
    """Base class of every error edgepose raises on purpose.

    ``hint`` is the sentence telling the user what to do next; it is appended to the message.
    """

    def __init__(self, message: str, hint: Optional[str] = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  -> {hint}")


class DataFormatError(EdgePoseError):
    """A dataset file is malformed. Carries ``path`` and ``line`` (1-based) when known."""

    def __init__(self, message: str, path=None, line: Optional[int] = None, hint: Optional[str] = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message, hint)


class MissingDependencyError(EdgePoseError, ImportError):
    """An optional package is needed for this feature and is not importable."""

    def __init__(self, package: str, feature: str, install: str):
        self.package = package
        super().__init__(
            f"{feature} needs the Python package '{package}', which is not importable here.",
            hint=f"install it with: {install}",
        )


class BundleError(EdgePoseError):
    """A bundle is missing, corrupt, or does not match what was asked for."""


class EngineMismatchError(BundleError):
    """A TensorRT engine was built for another TensorRT version, GPU or precision."""


class ConfigError(EdgePoseError):
    """A command-line option or configuration value is invalid."""


def _reraise_interrupt(exc: BaseException) -> None:
    """A Ctrl-C (or SIGTERM) that lands while a native module initialises comes back as that
    module's ``ImportError`` (pybind11 raises "initialization failed" from it: onnxruntime): the
    interrupt is raised again instead of calling the package missing."""
    seen = 0
    cause = exc.__cause__ or exc.__context__
    while cause is not None and seen < 32:
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        cause, seen = cause.__cause__ or cause.__context__, seen + 1


def require(module: str, feature: str, install: Optional[str] = None):
    """Import ``module`` lazily, raising :class:`MissingDependencyError` if it is absent.

    >>> require("json", "reading manifests").__name__
    'json'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised with a blocked import in tests
        _reraise_interrupt(exc)
        top = module.split(".")[0]
        raise MissingDependencyError(top, feature, install or f"pip install {top}") from exc
