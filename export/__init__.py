"""edgepose.export: ONNX export, FP16/INT8 passes, TensorRT engine builder, bundle writer.

The entry point is :func:`export_bundle` with an :class:`ExportConfig` (``edgepose-export``
is a thin CLI over it); the precision passes are the table :data:`edgepose.export.passes.PASSES`.
Both names load on first use, so ``import edgepose.export.<module>`` stays light.
"""
from __future__ import annotations

__all__ = ["ExportConfig", "ExportResult", "export_bundle"]


def __getattr__(name: str):
    if name == "ExportConfig":
        # lazy (PEP 562): `import edgepose.export` stays cheap; the exporter loads on first use
        from .config import ExportConfig

        return ExportConfig
    if name in ("ExportResult", "export_bundle"):
        from . import api  # lazy (PEP 562), as above

        return getattr(api, name)
    raise AttributeError(f"module 'edgepose.export' has no attribute {name!r}")
