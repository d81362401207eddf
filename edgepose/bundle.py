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
``engine`` (with a ``fingerprint``), ``checkpoint``, ``parity``. Engines are named by
:func:`engine_filename` and never carry extra bytes: a plain TensorRT runtime loads them as
they are.

This module is the manifest's one model: the precision names (:data:`PRECISIONS`) and their
fallback order (:data:`NEAREST`, :func:`fallback_order`), file names (:func:`onnx_filename`),
the ``files`` section queried by role and precision (:class:`BundleFiles`), the ``input``
section (:class:`~edgepose.input_spec.InputSpec`), the ``outputs`` and ``normalization``
sections (:func:`outputs_section`, :func:`normalization_section`). The exporter writes with
it, the runtime, the bench and the test bundles read with it.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .atomic import atomic_write_json
from .bundle_integrity import file_problem, manifest_problems, sha256_file, verified_file  # noqa: F401
from .errors import BundleError, ConfigError, EngineMismatchError
from .input_spec import InputMismatchError, InputSpec  # noqa: F401  (the manifest's input section)

SCHEMA = "edgepose.bundle/1"
MANIFEST = "edgepose.json"
#: precision names, in canonical order (the order files, rows and tables use)
PRECISIONS = ("fp32", "fp16", "int8")
#: for each precision, the others from nearest to farthest: the never-silent fallback order
NEAREST: Dict[str, Tuple[str, ...]] = {"fp32": ("fp16", "int8"), "fp16": ("fp32", "int8"), "int8": ("fp16", "fp32")}
#: what a listed file is for
ROLES = ("onnx", "engine", "checkpoint", "parity", "calibration-cache")
CONVENTIONS = {
    "pose": "T_world_from_camera: position = camera centre in world (m), rotation = camera-to-world",
    "quaternion": "wxyz, Hamilton, unit, w >= 0",
    "camera_axes": "OpenCV: x right, y down, z forward",
    "sigma": "expected position error (m) and rotation error (rad) of this frame",
}


# --------------------------------------------------------------------------- precisions
def check_precision(name: str, what: str = "precision") -> str:
    """``name`` if it is one of :data:`PRECISIONS`, else :class:`ConfigError` listing them."""
    if name not in PRECISIONS:
        raise ConfigError(f"{what} {name!r}: unknown precision; expected one of {', '.join(PRECISIONS)}")
    return name


def fallback_order(precision: str, strict: bool = False) -> Tuple[str, ...]:
    """``precision`` then, unless ``strict``, the others from nearest to farthest.

    >>> fallback_order("int8")
    ('int8', 'fp16', 'fp32')
    """
    check_precision(precision)
    return (precision,) if strict else (precision,) + NEAREST[precision]


def onnx_filename(precision: str) -> str:
    """``model.onnx`` for fp32, ``model.<precision>.onnx`` for the others.

    >>> [onnx_filename(p) for p in PRECISIONS]
    ['model.onnx', 'model.fp16.onnx', 'model.int8.onnx']
    """
    return "model.onnx" if check_precision(precision) == "fp32" else f"model.{precision}.onnx"


# --------------------------------------------------------------------------- files by role
class BundleFiles(Mapping):
    """The manifest's ``files`` section ``{relative path: entry}``, queried by role and precision.

    >>> f = BundleFiles({"model.onnx": {"role": "onnx", "precision": "fp32"},
    ...                  "model.int8.onnx": {"role": "onnx", "precision": "int8"}})
    >>> f.precisions("onnx"), f.find("onnx", "int8"), f.nearest("onnx", "fp16")
    (['fp32', 'int8'], 'model.int8.onnx', 'fp32')
    """

    def __init__(self, files: Mapping[str, dict]):
        self._files = files

    @classmethod
    def of(cls, manifest: Mapping) -> "BundleFiles":
        return cls(manifest.get("files") or {})

    def __getitem__(self, rel: str) -> dict:
        return self._files[rel]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def with_role(self, role: str, precision: Optional[str] = None) -> Dict[str, dict]:
        """``{rel: entry}`` of the files with this role (and precision), in manifest order."""
        return {rel: e for rel, e in self._files.items()
                if e.get("role") == role and (precision is None or e.get("precision") == precision)}

    def find(self, role: str, precision: Optional[str] = None) -> Optional[str]:
        """Relative path of the first file with this role (and precision), or ``None``."""
        return next(iter(self.with_role(role, precision)), None)

    def precisions(self, role: str = "onnx") -> List[str]:
        """Precisions that have a ``role`` file, in canonical order."""
        have = {e.get("precision") for e in self.with_role(role).values()}
        return [p for p in PRECISIONS if p in have]

    def by_precision(self, role: str = "onnx") -> Dict[str, str]:
        """``{precision: rel}`` of the first ``role`` file of each precision."""
        return {p: self.find(role, p) for p in self.precisions(role)}  # type: ignore[misc]

    def nearest(self, role: str, precision: str, allowed: Optional[Iterable[str]] = None,
                strict: bool = False) -> Optional[str]:
        """The first precision of :func:`fallback_order` that has a ``role`` file (and is in
        ``allowed``), or ``None``."""
        have = set(self.precisions(role))
        if allowed is not None:
            have &= set(allowed)
        return next((p for p in fallback_order(precision, strict) if p in have), None)


def find_file(manifest: dict, role: str, precision: Optional[str] = None) -> Optional[str]:
    """Relative path of the first file with this role (and precision), or ``None``."""
    return BundleFiles.of(manifest).find(role, precision)


# --------------------------------------------------------------------------- sections
def outputs_section(dynamic: bool, batch: int = 1) -> dict:
    """The manifest's ``outputs``: position (m), rotation (wxyz), sigma ([m, rad]), ``N = -1`` if dynamic."""
    n = -1 if dynamic else int(batch)
    return {
        "position": {"shape": [n, 3], "dtype": "float32", "unit": "m",
                     "meaning": "camera centre in the world frame"},
        "rotation": {"shape": [n, 4], "dtype": "float32", "convention": "wxyz, Hamilton, unit, w >= 0, camera-to-world"},
        "sigma": {"shape": [n, 2], "dtype": "float32", "unit": ["m", "rad"],
                  "meaning": "expected position error and rotation error of this frame"},
    }


def normalization_section(position_mean: Sequence[float], position_scale: float) -> dict:
    """The manifest's ``normalization``: ``position = head * position_scale + position_mean`` in FP32."""
    return {"position_mean": [float(v) for v in position_mean], "position_scale": float(position_scale),
            "where": "graph-fp32",
            "note": "position = head * position_scale + position_mean, kept in float32 in every precision"}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def file_entry(bundle_dir: Union[str, Path], rel: str, role: str, precision: Optional[str] = None,
               **extra) -> dict:
    """A ``files`` entry for ``bundle_dir/rel`` with its sha256 and size."""
    p = Path(bundle_dir) / rel
    entry = {"role": role, "precision": precision, "sha256": sha256_file(p), "size": p.stat().st_size}
    entry.update(extra)
    return entry


def write_manifest(bundle_dir: Union[str, Path], manifest: dict) -> Path:
    """Write ``edgepose.json`` atomically, stamping ``schema`` and ``created`` if absent."""
    manifest = dict(manifest)
    manifest.setdefault("schema", SCHEMA)
    manifest.setdefault("created", now_iso())
    manifest.setdefault("conventions", CONVENTIONS)
    return atomic_write_json(Path(bundle_dir) / MANIFEST, manifest)


def load_manifest(bundle_dir: Union[str, Path]) -> dict:
    """Read and check ``BUNDLE/edgepose.json``; raise :class:`BundleError` with what to do."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise BundleError(f"bundle folder not found: {bundle_dir}",
                          hint="create one with: edgepose-export RUN --out BUNDLE")
    if not path.is_file():
        raise BundleError(f"{bundle_dir} is not a bundle: {MANIFEST} is missing",
                          hint="create one with: edgepose-export RUN --out BUNDLE")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})",
                          hint="re-export the bundle") from None
    schema = manifest.get("schema") if isinstance(manifest, dict) else None
    if schema != SCHEMA:
        raise BundleError(f"{path}: schema is {schema!r}; this edgepose reads {SCHEMA!r}",
                          hint="re-export the bundle with this version of edgepose")
    for key in ("model", "input", "outputs", "normalization", "files"):
        if key not in manifest:
            raise BundleError(f"{path}: required key {key!r} is missing", hint="re-export the bundle")
    problems = manifest_problems(manifest)
    if problems:
        raise BundleError(f"{path} is not a well-formed manifest:\n    " + "\n    ".join(problems),
                          hint="re-export the bundle (edgepose-export RUN --out BUNDLE)")
    return manifest


def verify_files(bundle_dir: Union[str, Path], manifest: Optional[dict] = None,
                 only: Optional[List[str]] = None) -> List[str]:
    """Check size and sha256 of every listed file (or those in ``only``).

    Returns the checked names; raises :class:`BundleError` listing every mismatch.
    """
    bundle_dir = Path(bundle_dir)
    manifest = manifest or load_manifest(bundle_dir)
    problems, checked = [], []
    for rel, entry in manifest["files"].items():
        if only is not None and rel not in only:
            continue
        problem = file_problem(bundle_dir, rel, entry, sha256_file)  # inside the folder, no links, hash
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


def profile_shapes(input_spec: dict, batch: Optional[dict] = None) -> Tuple[Shape, Shape, Shape]:
    """``(min, opt, max)`` input shapes from the manifest's input spec.

    >>> profile_shapes({"layout": "NHWC", "shape": [-1, 24, 32, 3], "batch": {"min": 1, "opt": 4, "max": 8}})
    ((1, 24, 32, 3), (4, 24, 32, 3), (8, 24, 32, 3))
    """
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


def check_engine(entry: dict, device: EngineFingerprint, bundle_dir: Union[str, Path] = "BUNDLE") -> None:
    """Raise :class:`EngineMismatchError` (with the rebuild command) unless ``entry`` fits ``device``."""
    built = EngineFingerprint.from_json(entry.get("fingerprint", {}))
    diffs = [d for d in built.differences(device) if not d.startswith("precision")]
    if diffs:
        raise EngineMismatchError(
            "TensorRT engine does not match this device or bundle:\n    " + "\n    ".join(diffs),
            hint=f"rebuild it here with: edgepose-export {bundle_dir} --precision {built.precision} --engine yes",
        )
