"""The bundle's manifest, typed: :class:`Manifest`, read and validated in one place.

``BUNDLE/edgepose.json`` (schema ``edgepose.bundle/1``, README "Bundle format") is read by
:meth:`Manifest.load` -> :meth:`Manifest.from_json`, which checks every field once, by type
and range, and refuses the whole file with one line per problem, each naming the file and the
key (``edgepose.json: input.batch is min 1, max 8 but the graph's batch is fixed at 1``).
:meth:`Manifest.to_json` writes it back; :meth:`Manifest.save` writes it atomically. The
exporter writes through it, and the runtime, the bench, ``--verify`` and the test bundles read
through it: no module reads a manifest key from a raw dict.

The input size is stored once, in ``input.shape``: :attr:`Manifest.input_size` derives
``(W, H)`` from it, and ``outputs`` is derived from the input's batch. Bundles written before
this (with ``model.input_size`` and ``model.config.input_size`` copies) still load when the
copies agree with ``input.shape``, and are refused with the re-export command when they do not.

Adding a section (an extension point): give :class:`Manifest` one more field with a default
(``camera: Optional[CameraSizes] = None``), read it in :meth:`Manifest.from_json` with the
:class:`~edgepose.manifest_checks.Checker` (``check.obj(data, "camera", "camera",
required=False, nullable=True)``), and write it in :meth:`Manifest.to_json`. Keys this
version does not know are kept, unread, in :attr:`Manifest.extra` and written back as they were.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .atomic import atomic_write_json
from .bundle_files import BundleFiles, FileEntry, read_files
from .errors import BundleError
from .input_spec import InputSpec
from .manifest_checks import Checker, shown

SCHEMA = "edgepose.bundle/1"
MANIFEST = "edgepose.json"
#: a manifest is a few kB; one larger than this is not ours (and is not read into memory)
MAX_MANIFEST_BYTES = 16 << 20
#: farther from the origin than this (m) a float32 position has no centimetres left
MAX_POSITION_M = 1e7
REEXPORT = "re-export the bundle: edgepose-export RUN --out BUNDLE"
CONVENTIONS = {
    "pose": "T_world_from_camera: position = camera centre in world (m), rotation = camera-to-world",
    "quaternion": "wxyz, Hamilton, unit, w >= 0",
    "camera_axes": "OpenCV: x right, y down, z forward",
    "sigma": "expected position error (m) and rotation error (rad) of this frame",
}
#: model config keys stored elsewhere in the manifest (the input size, the normalisation)
_DUPLICATED = ("input_size", "position_mean", "position_scale", "pixel_mean", "pixel_std")
#: sections kept as written, each an object or null
_FREE_SECTIONS = ("calibration", "sigma_calibration", "memory")
_KNOWN = ("schema", "created", "edgepose_version", "model", "input", "outputs", "normalization", "conventions",
          "training", "validation", "files") + _FREE_SECTIONS


@dataclass(frozen=True)
class ModelInfo:
    """``model``: the backbone, pixel mean/std (on RGB/255, applied inside the graph), the
    head's width and the rest of the model config (without the keys stored elsewhere)."""

    backbone: str
    mean: Tuple[float, ...] = ()
    std: Tuple[float, ...] = ()
    hidden: Optional[int] = None
    config: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict) -> "ModelInfo":
        """From a model config (``edgepose.train`` checkpoints' ``config``)."""
        return cls(str(config["backbone"]), tuple(float(v) for v in config.get("pixel_mean", ())),
                   tuple(float(v) for v in config.get("pixel_std", ())), config.get("hidden"),
                   {k: v for k, v in config.items() if k not in _DUPLICATED})

    def to_json(self) -> dict:
        return {"backbone": self.backbone, "mean": list(self.mean), "std": list(self.std), "hidden": self.hidden,
                "config": dict(self.config)}


@dataclass(frozen=True)
class Normalization:
    """``normalization``: ``position = head * position_scale + position_mean`` (m), in FP32."""

    position_mean: Tuple[float, float, float]
    position_scale: float
    where: str = "graph-fp32"

    def to_json(self) -> dict:
        return {"position_mean": list(self.position_mean), "position_scale": self.position_scale,
                "where": self.where,
                "note": "position = head * position_scale + position_mean, kept in float32 in every precision"}


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


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Manifest:
    """One bundle's ``edgepose.json`` (see the module docstring and README "Bundle format").

    Attributes:
        model, input, normalization, files: the typed sections.
        training: the run's ``{checkpoint, metrics, data}``.
        validation: ``{row: {median_position_m, drift_p50_m, ...}}`` per precision.
        calibration, sigma_calibration, memory: INT8 calibration, sigma's scale and the pose
            memory, as written (``None`` when absent).
        created, edgepose_version: provenance.
        extra: other top-level keys (``parity``, ``export``, ``validation_frames``, and keys a
            newer version wrote), kept as written.
    """

    model: ModelInfo
    input: InputSpec
    normalization: Normalization
    files: Dict[str, FileEntry]
    training: Dict[str, Any] = field(default_factory=dict)
    validation: Dict[str, Any] = field(default_factory=dict)
    calibration: Optional[dict] = None
    sigma_calibration: Optional[dict] = None
    memory: Optional[dict] = None
    created: Optional[str] = None
    edgepose_version: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- derived
    @property
    def input_size(self) -> Tuple[int, int]:
        """Network resolution ``(W, H)`` (stored once, in ``input.shape``)."""
        return self.input.size

    @property
    def listing(self) -> BundleFiles:
        """The files, queried by role and precision."""
        return BundleFiles(self.files)

    @property
    def training_metrics(self) -> dict:
        return dict(self.training.get("metrics") or {})

    def with_files(self, files: Dict[str, FileEntry]) -> "Manifest":
        return replace(self, files=dict(files))

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> dict:
        """The document :meth:`from_json` reads back (``outputs`` and ``conventions`` derived)."""
        doc: Dict[str, Any] = {"schema": SCHEMA, "created": self.created,
                               "edgepose_version": self.edgepose_version,
                               "model": self.model.to_json(), "input": self.input.to_manifest(),
                               "outputs": outputs_section(self.input.dynamic, self.input.opt),
                               "normalization": self.normalization.to_json(), "conventions": dict(CONVENTIONS),
                               "training": dict(self.training), "calibration": self.calibration,
                               "sigma_calibration": self.sigma_calibration, "memory": self.memory,
                               "validation": dict(self.validation)}
        doc.update(self.extra)
        doc["files"] = BundleFiles(self.files).to_json()
        return doc

    @classmethod
    def from_json(cls, data: Any, where: Union[str, Path] = MANIFEST) -> "Manifest":
        """Validate ``data`` (a parsed ``edgepose.json``) and return it typed; otherwise
        :class:`BundleError` listing every problem as ``where: key is FOUND, expected ...``."""
        check = Checker()
        m = _read(data, check) if isinstance(data, dict) else None
        if not isinstance(data, dict):
            check.bad("the manifest", data, "a JSON object")
        if check.problems or m is None:
            raise BundleError(f"{where} is not a manifest this edgepose reads:\n    "
                              + "\n    ".join(f"{Path(where).name}: {p}" for p in check.problems[:40])
                              + (f"\n    ... and {len(check.problems) - 40} more" if len(check.problems) > 40 else ""),
                              hint=REEXPORT)
        return m

    # ----------------------------------------------------------------- files
    @classmethod
    def load(cls, bundle_dir: Union[str, Path]) -> "Manifest":
        """Read and validate ``bundle_dir/edgepose.json``; :class:`BundleError` with what to do."""
        path = Path(bundle_dir) / MANIFEST
        return cls.from_json(read_document(Path(bundle_dir)), path)

    def save(self, bundle_dir: Union[str, Path]) -> Path:
        """Write ``bundle_dir/edgepose.json`` atomically (stamping ``created`` when unset)."""
        stamped = self if self.created else replace(self, created=now_iso())
        return atomic_write_json(Path(bundle_dir) / MANIFEST, stamped.to_json())


def read_document(bundle_dir: Path) -> Any:
    """The parsed JSON of ``bundle_dir/edgepose.json``, or :class:`BundleError` saying why not
    (missing, not a regular file, too large, not UTF-8, not JSON, nested too deeply)."""
    path = bundle_dir / MANIFEST
    make = "create one with: edgepose-export RUN --out BUNDLE"
    try:
        if not bundle_dir.is_dir():
            raise BundleError(f"bundle folder not found: {bundle_dir}", hint=make)
        if not path.exists():
            raise BundleError(f"{bundle_dir} is not a bundle: {MANIFEST} is missing", hint=make)
        if not path.is_file():
            raise BundleError(f"{path} is not a regular file", hint=REEXPORT)
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path} is {path.stat().st_size} bytes; a manifest is a few kB "
                              f"(at most {MAX_MANIFEST_BYTES >> 20} MiB)", hint=REEXPORT)
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}", hint=REEXPORT) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path}: byte {exc.start} is {raw[exc.start:exc.start + 1]!r}, not UTF-8 text; "
                          "a manifest is UTF-8 JSON", hint=REEXPORT) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})", hint=REEXPORT) from None
    except RecursionError:
        raise BundleError(f"{path}: JSON nested too deeply to be a manifest", hint=REEXPORT) from None


def _read(data: dict, check: Checker) -> Optional[Manifest]:
    """Every section of ``data``; problems go to ``check``."""
    schema = data.get("schema")
    if schema != SCHEMA:
        check.note(f"schema is {shown(schema)}; this edgepose reads {SCHEMA!r}")
        return None
    model = _read_model(check.obj(data, "model", "model"), check)
    spec = _read_input(data, check)
    norm = _read_normalization(check.obj(data, "normalization", "normalization"), check)
    files = read_files(data.get("files"), check)
    if "conventions" in data:
        check.obj(data, "conventions", "conventions")
    training = check.obj(data, "training", "training", required=False) or {}
    validation = check.obj(data, "validation", "validation", required=False) or {}
    for row, v in validation.items():
        if not isinstance(v, dict):
            check.bad(f"validation[{row!r}]", v, "an object of metrics")
    free = {name: check.obj(data, name, name, required=False, nullable=True) for name in _FREE_SECTIONS}
    scale = (free["sigma_calibration"] or {}).get("scale")
    if scale is not None:
        check.numbers(free["sigma_calibration"], "scale", "sigma_calibration.scale", 2, 0.0, 1e6, lo_open=True)
    created = data.get("created")
    version = data.get("edgepose_version")
    for key, v in (("created", created), ("edgepose_version", version)):
        if v is not None and not isinstance(v, str):
            check.bad(key, v, "a string")
    if spec is not None and model is not None:
        _check_size_copies(data, spec, check)
    if check.problems or None in (model, spec, norm):
        return None
    return Manifest(model, spec, norm, files, training, validation, free["calibration"],  # type: ignore[arg-type]
                    free["sigma_calibration"], free["memory"], created, version,
                    {k: v for k, v in data.items() if k not in _KNOWN})


def _read_model(model: Optional[dict], check: Checker) -> Optional[ModelInfo]:
    if model is None:
        return None
    backbone = check.text(model, "backbone", "model.backbone")
    mean = model.get("mean") or []
    std = model.get("std") or []
    if mean or std:
        mean = check.numbers(model, "mean", "model.mean", 3, -10.0, 10.0) or []
        std = check.numbers(model, "std", "model.std", 3, 0.0, 10.0, lo_open=True) or []
    hidden = check.whole(model, "hidden", "model.hidden", 1, 1 << 20, default=None) if model.get("hidden") is not None \
        else None
    config = check.obj(model, "config", "model.config", required=False) or {}
    if backbone is None:
        return None
    return ModelInfo(backbone, tuple(mean), tuple(std), hidden, {k: v for k, v in config.items() if k not in _DUPLICATED})


def _read_input(data: dict, check: Checker) -> Optional[InputSpec]:
    section = check.obj(data, "input", "input")
    spec = InputSpec.from_json(section, check) if section is not None else None
    outputs = check.obj(data, "outputs", "outputs")
    if spec is None or outputs is None:
        return spec
    n = spec.shape[0]
    for name, width in (("position", 3), ("rotation", 4), ("sigma", 2)):
        out = check.obj(outputs, name, f"outputs.{name}")
        if out is not None and out.get("shape") != [n, width]:
            check.bad(f"outputs.{name}.shape", out.get("shape"), f"[{n}, {width}] (the input's batch {n})")
    return spec


def _read_normalization(norm: Optional[dict], check: Checker) -> Optional[Normalization]:
    if norm is None:
        return None
    mean = check.numbers(norm, "position_mean", "normalization.position_mean", 3, -MAX_POSITION_M, MAX_POSITION_M,
                         default=[0.0, 0.0, 0.0])
    scale = check.number(norm, "position_scale", "normalization.position_scale", 0.0, MAX_POSITION_M, lo_open=True,
                         default=1.0)
    where = check.text(norm, "where", "normalization.where", choices=("graph-fp32", "host"), default="graph-fp32")
    if None in (mean, scale, where):
        return None
    return Normalization(tuple(mean), float(scale), where)  # type: ignore[arg-type]


def _check_size_copies(data: dict, spec: InputSpec, check: Checker) -> None:
    """Bundles written before the size was stored once carry two copies: they must agree."""
    model = data.get("model") or {}
    copies: List[Tuple[str, Any]] = [("model.input_size", model.get("input_size"))]
    if isinstance(model.get("config"), dict):
        copies.append(("model.config.input_size", model["config"].get("input_size")))
    for key, v in copies:
        if v is not None and v != list(spec.size):
            check.note(f"{key} is {shown(v)} but input.shape {list(spec.shape)} says {list(spec.size)} (W, H): "
                       "the copies disagree, so it is unknown which size the graph takes")
