"""The engine reports itself: TensorRT's per-layer engine information, parsed and checked.

After a build, ``IEngineInspector`` (TensorRT 8.2+; ``ICudaEngine.create_engine_inspector``,
``get_engine_information(LayerInformationFormat.JSON)``) lists every layer of the built
engine: ``{"Layers": [{"Name", "LayerType", "Inputs": [{"Name", "Format/Datatype", ...}],
"Outputs": [...], ...}], "Bindings": [...]}``. With profiling verbosity DETAILED (set by
:mod:`.builder`) each input and output carries its format and datatype, e.g. ``"Row major
linear FP32"`` or ``"Thirty-two wide channel vectorized row major Int8 format"``; with less,
layers are bare names and nothing can be checked. The format is the one NVIDIA's TensorRT Engine
Explorer (TREx, ``tools/experimental/trt-engine-explorer``) reads; the tests parse TREx's
published examples.

What we read (pure Python, no TensorRT):

* each layer's precision: the datatype of its first output (``FP32``, ``FP16``, ``INT8``,
  ``INT32``, ``BOOL``, ...), and its device (``DLA`` where the layer type names the DLA);
* the post-processing layers: those whose (possibly fused, ``a + b``) name contains a
  ``/post_*/`` node name, every layer downstream of them, and the input-free layers (constants)
  that feed them -- so unnamed layers between named ones are included;
* :func:`check_post_processing_fp32` refuses an engine where a post-processing layer reads or
  writes FP16/INT8/BF16/FP8 (a reformat or cast may read them: it is the conversion), naming
  the layers.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple, Union

from edgepose.bundle import MANIFEST
from edgepose.errors import EdgePoseError
from edgepose.manifest import Manifest

#: datatypes that are not FP32 arithmetic on float data
REDUCED = ("FP16", "BF16", "INT8", "FP8", "FP4", "INT4")
#: layer types that only convert formats/types: their inputs may be reduced, their outputs not
CONVERSIONS = ("Reformat", "NoOp", "Cast")
_TYPE_WORDS = {"fp32": "FP32", "float": "FP32", "fp16": "FP16", "half": "FP16", "bf16": "BF16", "fp8": "FP8",
               "fp4": "FP4", "int4": "INT4", "int8": "INT8", "uint8": "UINT8", "int32": "INT32", "int64": "INT64",
               "bool": "BOOL"}
_TYPE_RE = re.compile(r"\b(" + "|".join(_TYPE_WORDS) + r")\b", re.IGNORECASE)


class EnginePrecisionError(EdgePoseError):
    """A built engine runs post-processing below FP32 (the message names the layers)."""


def datatype(fmt: str) -> str:
    """``"Row major linear FP32"`` -> ``"FP32"``; ``"... Int8 format"`` -> ``"INT8"``; unknown -> ``"?"``.

    >>> datatype("Channel major FP16 format where channel % 8 == 0"), datatype("Row major linear FP32")
    ('FP16', 'FP32')
    """
    m = _TYPE_RE.search(str(fmt))
    return _TYPE_WORDS[m.group(1).lower()] if m else "?"


@dataclass(frozen=True)
class EngineLayer:
    """One record of the engine information.

    Attributes:
        name: the layer's name (fused layers join their network layers with ``" + "``).
        layer_type: ``LayerType`` as the inspector writes it (``"CaskConvolution"``, ``"Reformat"``, ...).
        inputs, outputs: ``(tensor name, datatype)`` pairs.
    """

    name: str
    layer_type: str
    inputs: Tuple[Tuple[str, str], ...]
    outputs: Tuple[Tuple[str, str], ...]

    @property
    def precision(self) -> str:
        return self.outputs[0][1] if self.outputs else "?"

    @property
    def device(self) -> str:
        return "DLA" if "DLA" in self.layer_type.upper() else "GPU"

    def reduced(self) -> List[str]:
        """The reduced-precision tensors this layer computes with (``"out <name> FP16"``)."""
        bad = [f"output {n!r} is {t}" for n, t in self.outputs if t in REDUCED]
        if self.layer_type not in CONVERSIONS:
            bad += [f"input {n!r} is {t}" for n, t in self.inputs if t in REDUCED]
        return bad


@dataclass(frozen=True)
class EngineReport:
    """The parsed engine information: ``layers`` and the I/O ``bindings``; ``detailed`` is
    ``False`` when the layers are bare names (built without DETAILED profiling verbosity)."""

    layers: Tuple[EngineLayer, ...]
    bindings: Tuple[str, ...]
    detailed: bool


def parse_engine_information(data: Union[str, bytes, dict]) -> EngineReport:
    """Parse ``IEngineInspector.get_engine_information(JSON)`` text (or its decoded dict)."""
    doc = json.loads(data) if isinstance(data, (str, bytes)) else data
    if not isinstance(doc, dict) or not isinstance(doc.get("Layers"), list):
        raise EdgePoseError("engine information: expected a JSON object with a 'Layers' list "
                            f"(IEngineInspector JSON), found {type(doc).__name__}",
                            hint="write it with get_engine_information(trt.LayerInformationFormat.JSON)")
    layers, detailed = [], True
    for rec in doc["Layers"]:
        if isinstance(rec, str):  # LAYER_NAMES_ONLY verbosity
            detailed = False
            layers.append(EngineLayer(rec, "?", (), ()))
            continue
        io = {k: tuple((str(t.get("Name", "")), datatype(t.get("Format/Datatype", ""))) for t in rec.get(k, []))
              for k in ("Inputs", "Outputs")}
        layers.append(EngineLayer(str(rec.get("Name", "")), str(rec.get("LayerType", "?")), io["Inputs"], io["Outputs"]))
    return EngineReport(tuple(layers), tuple(str(b) for b in doc.get("Bindings", [])), detailed)


def post_processing_layers(report: EngineReport, post_prefixes: Iterable[str]) -> List[int]:
    """Indices of the post-processing layers: named ``/post_*/``, downstream of those, and the
    input-free layers feeding them."""
    marks = tuple("/" + p.strip("/") + "/" for p in post_prefixes)
    layers = report.layers
    consumers: Dict[str, List[int]] = {}
    for i, layer in enumerate(layers):
        for n, _ in layer.inputs:
            consumers.setdefault(n, []).append(i)
    post = set()
    stack = [i for i, layer in enumerate(layers) if any(m in layer.name for m in marks)]
    while stack:
        i = stack.pop()
        if i in post:
            continue
        post.add(i)
        stack.extend(c for n, _ in layers[i].outputs for c in consumers.get(n, []))
    feeders = [i for i, layer in enumerate(layers) if i not in post and not layer.inputs and layer.outputs
               and all(set(consumers.get(n, [])) <= post and consumers.get(n) for n, _ in layer.outputs)]
    return sorted(post | set(feeders))


def _counts(values: Iterable[str]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def summarise(report: EngineReport, post_prefixes: Sequence[str]) -> dict:
    """The manifest's summary: layers per precision and device, and the post-processing's."""
    post = post_processing_layers(report, post_prefixes)
    offending = [f"{report.layers[i].name}: {'; '.join(report.layers[i].reduced())}"
                 for i in post if report.layers[i].reduced()]
    return {"layers": len(report.layers), "detailed": report.detailed,
            "by_precision": _counts(layer.precision for layer in report.layers),
            "by_device": _counts(layer.device for layer in report.layers),
            "post_processing": {"layers": len(post),
                                "by_precision": _counts(report.layers[i].precision for i in post),
                                "fp32": report.detailed and bool(post) and not offending,
                                "offending": offending}}


def check_post_processing_fp32(report: EngineReport, post_prefixes: Sequence[str], what: str = "the engine") -> dict:
    """Return :func:`summarise`'s summary; raise :class:`EnginePrecisionError` naming every
    post-processing layer that runs below FP32, or when the report cannot show it."""
    summary = summarise(report, post_prefixes)
    pp = summary["post_processing"]
    if not report.detailed:
        raise EnginePrecisionError(f"{what}: the engine information has no per-layer datatypes (built without "
                                   "DETAILED profiling verbosity), so its FP32 post-processing cannot be checked",
                                   hint="rebuild it with this edgepose (it sets ProfilingVerbosity.DETAILED)")
    if not pp["layers"]:
        raise EnginePrecisionError(f"{what}: no post-processing layer (named /post_*) in the engine information "
                                   f"of {summary['layers']} layers",
                                   hint="re-export the bundle with this edgepose (its post-processing nodes are /post_*)")
    if pp["offending"]:
        raise EnginePrecisionError(
            f"{what} runs {len(pp['offending'])} of its {pp['layers']} post-processing layers below FP32, "
            "against the bundle's contract:\n    " + "\n    ".join(pp["offending"]),
            hint="report it with the TensorRT version; build --precision fp32 meanwhile")
    return summary


def engine_report_name(engine_rel: str) -> str:
    """``model.trt10.3.0.orin.sm87.gpu.fp16.engine`` -> ``...fp16.engine.layers.json``."""
    return f"{engine_rel}.layers.json"


def engine_information(trt, engine) -> str:
    """The JSON engine information of a deserialized ``trt.ICudaEngine`` (needs TensorRT 8.2+)."""
    inspector = engine.create_engine_inspector()
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def format_summary(summary: dict) -> str:
    """Lines for ``edgepose-export --inspect``."""
    pp = summary["post_processing"]
    lines = [f"  layers: {summary['layers']}  by precision: {summary['by_precision']}  by device: {summary['by_device']}",
             f"  post-processing: {pp['layers']} layers {pp['by_precision']} -> "
             + ("FP32" if pp["fp32"] else "NOT FP32")]
    lines += [f"    below FP32: {o}" for o in pp["offending"]]
    return "\n".join(lines)


def inspect_path(path, post_prefixes: Sequence[str], log=print) -> bool:
    """``edgepose-export --inspect PATH``: print the per-layer summary of an engine-information
    JSON file, or of every engine a bundle lists (its stored summary, and the engine's own report
    where TensorRT can load it). Returns whether every post-processing checked is FP32."""
    from pathlib import Path

    path = Path(path)
    if path.is_file():
        summary = summarise(parse_engine_information(path.read_text()), post_prefixes)
        log(f"{path}:\n{format_summary(summary)}")
        return bool(summary["post_processing"]["fp32"])
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise EdgePoseError(f"--inspect: {path} is neither an engine-information JSON file nor a bundle "
                            f"(no {MANIFEST})", hint="pass a bundle folder or a file written by IEngineInspector")
    listing = Manifest.load(path).listing
    engines = {**listing.with_role("engine"), **listing.with_role("camera-engine")}
    if not engines:
        log(f"{path}: no TensorRT engine in this bundle (build them on the device: --engine yes)")
        return True
    ok = True
    for rel, entry in sorted(engines.items()):
        summary = (entry.extra.get("build") or {}).get("inspector")
        live = _live_summary(path / rel, post_prefixes)
        stored = path / engine_report_name(rel)
        if live is not None:
            summary = live
        elif stored.is_file():  # the full report written at build
            summary = summarise(parse_engine_information(stored.read_text()), post_prefixes)
        if summary is None:
            log(f"{rel}: no engine report stored (built before edgepose kept one) and TensorRT cannot load it here")
            ok = False
            continue
        log(f"{rel} ({'read from the engine' if live is not None else 'as recorded at build'}):\n"
            f"{format_summary(summary)}")
        ok = ok and bool(summary["post_processing"]["fp32"])
    return ok


def _live_summary(engine_path, post_prefixes: Sequence[str]):
    """The summary from the engine itself, or ``None`` where TensorRT or the engine is unavailable."""
    try:
        import tensorrt as trt
    except ImportError:
        return None
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes()) if engine_path.is_file() else None
    if engine is None:
        return None
    return summarise(parse_engine_information(engine_information(trt, engine)), post_prefixes)
