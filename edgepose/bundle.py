"""The bundle: the folder that travels to the device.

``BUNDLE/edgepose.json`` (the manifest) sits beside the artefacts it describes. Schema
``edgepose.bundle/1`` (documented in README.md, section "Bundle format"):

.. code-block:: text

    schema            "edgepose.bundle/1"
    created           ISO-8601 UTC time
    edgepose_version  version that wrote it
    model             {backbone, input_size [W, H], mean [3], std [3] (on RGB/255)}
    input             {name "image", dtype "uint8"|"float32", layout "NHWC"|"NCHW",
                       shape [N|-1, ...], batch {min, opt, max}}
    outputs           {position {shape, unit "m"}, rotation {shape, convention},
                       sigma {shape, unit ["m", "rad"]}}
    normalization     {position_mean [3] m, position_scale m, where "graph-fp32"|"host"}
    conventions       {pose, quaternion, camera_axes}
    training          metrics of the run that made the model (may be {})
    calibration       {frames, method, frames_sha256, source, cache} or null  (INT8)
    sigma_calibration {method, scale [pos, rot], frames, nominal_coverage} or null: the scale
                      fitted after training and already applied to sigma inside the graph
    memory            {size, k, temperature, blend [pos, rot], disagreement [pos, rot], method, val}
                      or null: the pose memory inside the graph (training views whose pose is
                      blended with the regressor's; edgepose.train.pose_memory)
    validation        {<precision or row>: {median_position_m, ..., drift_p50_m, ...}}
    files             {<relative path>: {role, precision, sha256, size, ...}}

Roles (:data:`ROLES`): ``onnx`` (one per precision: fp32, fp16, int8), ``calibration-cache``,
``engine`` (with a ``fingerprint``), ``engine-report`` (the engine's own per-layer report,
``<engine>.layers.json``, with ``engine``: the engine it describes), ``checkpoint``, ``parity``. Engines are named by
:func:`engine_filename` and never carry extra bytes: a plain TensorRT runtime loads them as
they are.

The manifest's one model is :class:`edgepose.manifest.Manifest` (typed, validated once); its
``files`` section is :mod:`edgepose.bundle_files` (precision names, roles, fallback order) and
its ``input`` section :class:`~edgepose.input_spec.InputSpec`. This module gathers them for
the exporter, the runtime, the bench and the test bundles, and adds the bundle-level helpers:
:func:`file_entry`, :func:`write_manifest` / :func:`load_manifest` (the JSON document, through
:class:`Manifest`, for tools and tests that edit it), :func:`verify_files`, and the engines'
fingerprints and names.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

from .bundle_files import (PRECISIONS, ROLES, BundleFiles, FileEntry, check_precision,  # noqa: F401
                           fallback_order, onnx_filename)
from .bundle_integrity import file_problem, sha256_file, verified_file  # noqa: F401
from .errors import BundleError, EngineMismatchError
from .input_spec import InputMismatchError, InputSpec  # noqa: F401  (the manifest's input section)
from .manifest import (CONVENTIONS, MANIFEST, SCHEMA, Manifest, ModelInfo, Normalization,  # noqa: F401
                       now_iso, outputs_section)


def find_file(manifest: Union[Manifest, dict], role: str, precision: Optional[str] = None) -> Optional[str]:
    """Relative path of the first file with this role (and precision), or ``None`` (of a
    :class:`Manifest`, or of its JSON document, checked by :meth:`BundleFiles.of`)."""
    return BundleFiles.of(manifest).find(role, precision)


def normalization_section(position_mean, position_scale: float) -> dict:
    """The manifest's ``normalization``: ``position = head * position_scale + position_mean`` in FP32."""
    return Normalization(tuple(float(v) for v in position_mean), float(position_scale)).to_json()  # type: ignore[arg-type]


def file_entry(bundle_dir: Union[str, Path], rel: str, role: str, precision: Optional[str] = None,
               **extra) -> dict:
    """A ``files`` entry for ``bundle_dir/rel`` with its sha256 and size."""
    p = Path(bundle_dir) / rel
    return FileEntry(role, precision, sha256_file(p), p.stat().st_size, dict(extra)).to_json()


def write_manifest(bundle_dir: Union[str, Path], manifest: Union[Manifest, dict]) -> Path:
    """Write ``edgepose.json`` atomically, through :class:`Manifest` (a dict is validated first,
    ``schema``/``created``/``conventions`` filled when absent)."""
    if not isinstance(manifest, Manifest):
        doc = dict(manifest)
        doc.setdefault("schema", SCHEMA)
        doc.setdefault("created", now_iso())
        manifest = Manifest.from_json(doc, Path(bundle_dir) / MANIFEST)
    return manifest.save(bundle_dir)


def load_manifest(bundle_dir: Union[str, Path]) -> dict:
    """``BUNDLE/edgepose.json`` validated by :meth:`Manifest.load`, as its JSON document (for
    tools and tests that edit it; library code reads :class:`Manifest`)."""
    return Manifest.load(bundle_dir).to_json()


def verify_files(bundle_dir: Union[str, Path], manifest: Optional[Manifest] = None,
                 only: Optional[List[str]] = None) -> List[str]:
    """Check size, sha256 and content kind of every listed file (or those in ``only``).

    Returns the checked names; raises :class:`BundleError` listing every mismatch.
    """
    bundle_dir = Path(bundle_dir)
    manifest = manifest or Manifest.load(bundle_dir)
    problems, checked = [], []
    for rel, entry in manifest.files.items():
        if only is not None and rel not in only:
            continue
        problem = file_problem(bundle_dir, rel, entry)  # inside the folder, no links, hash, Q/DQ vs label
        if problem:
            problems.append(problem)
            continue
        checked.append(rel)
    if problems:
        raise BundleError(f"bundle {bundle_dir} failed verification:\n    " + "\n    ".join(problems),
                          hint=f"re-export it, or rebuild engines with: edgepose-export {bundle_dir} --engine yes")
    return checked


# --------------------------------------------------------------------------- engines
@dataclass(frozen=True)
class EngineFingerprint:
    """What makes a TensorRT engine valid: it only loads where all of these match."""

    trt_version: str
    gpu: str
    compute_capability: str  # "8.7"
    precision: str
    dla_core: Optional[int] = None
    #: the ONNX file the engine was built from and its optimization profile [[min], [opt], [max]]:
    #: a re-exported bundle (other sha256) or another batch range must not reuse the engine
    onnx_sha256: Optional[str] = None
    profile: Optional[list] = None

    def slug(self) -> str:
        gpu = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-") or "gpu"
        dla = "gpu" if self.dla_core is None else f"dla{self.dla_core}"
        return f"trt{self.trt_version}.{gpu}.sm{self.compute_capability.replace('.', '')}.{dla}.{self.precision}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "EngineFingerprint":
        return cls(**{k: d.get(k) for k in ("trt_version", "gpu", "compute_capability", "precision", "dla_core",
                                             "onnx_sha256", "profile")})

    def differences(self, other: "EngineFingerprint") -> List[str]:
        out = []
        for k in ("trt_version", "gpu", "compute_capability", "dla_core", "precision"):
            a, b = getattr(self, k), getattr(other, k)
            if a != b:
                out.append(f"{k}: engine has {a!r}, this device has {b!r}")
        # the build inputs: compared when the other side knows them (an engine without them is stale)
        for k, what in (("onnx_sha256", "ONNX file sha256"), ("profile", "optimization profile")):
            a, b = getattr(self, k), getattr(other, k)
            if b is not None and _norm(a) != _norm(b):
                out.append(f"{k}: engine was built from {what} {a!r}, the bundle now has {b!r}")
        return out


Shape = Tuple[int, ...]


def profile_shapes(input_spec: Union[InputSpec, dict], batch: Optional[dict] = None) -> Tuple[Shape, Shape, Shape]:
    """``(min, opt, max)`` input shapes from the manifest's input spec (typed or its JSON).

    >>> profile_shapes({"layout": "NHWC", "shape": [-1, 24, 32, 3], "batch": {"min": 1, "opt": 4, "max": 8}})
    ((1, 24, 32, 3), (4, 24, 32, 3), (8, 24, 32, 3))
    """
    if isinstance(input_spec, InputSpec):
        input_spec = input_spec.to_manifest()
    shape = [int(v) for v in input_spec["shape"]]
    b = batch or input_spec.get("batch") or {}
    n = shape[0] if shape[0] > 0 else 1
    lo, opt, hi = int(b.get("min", n)), int(b.get("opt", n)), int(b.get("max", n))
    if not (1 <= lo <= opt <= hi):
        raise BundleError(f"batch range must satisfy 1 <= min <= opt <= max; got {lo}:{opt}:{hi}")
    rest = tuple(shape[1:])
    return (lo,) + rest, (opt,) + rest, (hi,) + rest


def _norm(v):
    """Lists and tuples compare alike (JSON turns tuples into lists)."""
    return [_norm(x) for x in v] if isinstance(v, (list, tuple)) else v


def engine_filename(fp: EngineFingerprint) -> str:
    """``model.<trt>.<gpu>.<sm>.<gpu|dlaN>.<precision>.engine``."""
    return f"model.{fp.slug()}.engine"


def check_engine(entry: Union[FileEntry, dict], device: EngineFingerprint,
                 bundle_dir: Union[str, Path] = "BUNDLE") -> None:
    """Raise :class:`EngineMismatchError` (with the rebuild command) unless ``entry`` (a
    manifest entry, or ``{"fingerprint": ...}``) fits ``device``."""
    fp: Any = entry.fingerprint if isinstance(entry, FileEntry) else entry.get("fingerprint", {})
    built = EngineFingerprint.from_json(fp)
    diffs = [d for d in built.differences(device) if not d.startswith("precision")]
    if diffs:
        raise EngineMismatchError(
            "TensorRT engine does not match this device or bundle:\n    " + "\n    ".join(diffs),
            hint=f"rebuild it here with: edgepose-export {bundle_dir} --precision {built.precision} --engine yes",
        )
