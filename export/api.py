"""``export_bundle(cfg) -> ExportResult``: the exporter, for the CLI, the benchmarks and Python.

Two paths, chosen by the source:

* a training run or a checkpoint: load the model and the frames, run the precision passes
  (:data:`edgepose.export.passes.PASSES`), measure accuracy and drift on the test frames,
  record parity frames, build engines when TensorRT is here, write the bundle atomically;
* an existing bundle: build TensorRT engines from its ONNX files (the Jetson path, no torch).

Progress lines go to ``log`` (``print`` by default); nothing else is printed. Errors of the
user's making raise :class:`~edgepose.errors.EdgePoseError` before anything is written; a
drift bound that is exceeded does not raise: the bundle is written and
:attr:`ExportResult.failures` says which rows failed.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from edgepose.bundle import MANIFEST, PRECISIONS, InputSpec, verify_files
from edgepose.errors import ConfigError, EdgePoseError, require
from edgepose.jsonsafe import json_safe
from edgepose.manifest import Manifest, ModelInfo, Normalization
from edgepose.outputs import check_outputs

from .bundle_writer import CHECKPOINT_NAME, ONNX_NAMES, PARITY_NAME, assemble
from .camera_graph import add_camera_graphs
from .config import DEFAULT_RUN_PRECISIONS, PARITY_FRAMES, ExportConfig
from .frames import calibration_frames_only, load_frames
from .onnx_export import example_images
from .out_folder import check_out_dir
from .passes import PassContext, run_pass
from .tensorrt.engines import build_engines, jetson_instructions, require_tensorrt
from .validation import measure
from .verify import record_parity

Log = Callable[[str], None]


@dataclass
class ExportResult:
    """What one export did.

    Attributes:
        out: the bundle folder.
        from_bundle: True for the engines-only path (the source was a bundle).
        precisions: the precisions exported (or whose engines were asked).
        manifest: the manifest as written (read back, typed), ``None`` when nothing was written.
        onnx_files: ``{precision: relative path}`` of the ONNX graphs.
        validation: the manifest's ``validation`` rows (``{}`` without a dataset).
        failures: one line per row over ``--max-drift-*`` (the bundle is written anyway).
        engines: the engine files built.
        engine_note: why no engine was built (``None`` when engines were built), e.g. the
            commands to run on the Jetson when TensorRT is absent under ``--engine auto``.
        data_root: the dataset the frames came from (``None`` without one).
        checkpoint: the checkpoint exported (``None`` on the engines-only path).
        qat: whether it came from quantization-aware training (INT8 from its own ranges).
        source: the run, checkpoint or bundle exported from.
        seconds: wall time of the export.
    """

    out: Path
    from_bundle: bool
    precisions: List[str]
    manifest: Optional[Manifest] = None
    onnx_files: Dict[str, str] = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    failures: List[str] = field(default_factory=list)
    engines: List[str] = field(default_factory=list)
    engine_note: Optional[str] = None
    data_root: Optional[Path] = None
    checkpoint: Optional[Path] = None
    qat: bool = False
    source: Optional[Path] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No drift bound was exceeded."""
        return not self.failures


def export_bundle(cfg: ExportConfig, log: Log = print) -> ExportResult:
    """Run one export (see the module docstring); returns what was written."""
    cfg.check()
    if (cfg.source / MANIFEST).is_file():
        return engines_for_bundle(cfg, log)
    return export_from_checkpoint(cfg, log)


def _engine_note(cfg: ExportConfig, out: Path, precisions: List[str], spec: dict) -> Optional[str]:
    if cfg.engine != "auto":
        return None
    return jetson_instructions(str(out), precisions, spec, cfg.int8_engine, cfg.dla_core, cfg.workspace_gb)


def engines_for_bundle(cfg: ExportConfig, log: Log = print) -> ExportResult:
    """Build engines from the ONNX files of an existing bundle (no torch)."""
    t0 = time.perf_counter()
    source = cfg.source
    manifest = Manifest.load(source)
    verify_files(source, manifest)
    precisions = cfg.precisions or manifest.listing.precisions("onnx")
    out = cfg.out or source
    # engines go into the bundle itself (its job) or a new folder, never into the --calib dataset
    check_outputs({"--out": out}, {"BUNDLE": source, "--calib": cfg.calib}, same_as_input_ok={"--out": "BUNDLE"})
    spec = manifest.input.to_manifest()
    result = ExportResult(out, True, list(precisions), data_root=cfg.calib)
    trt = require_tensorrt(cfg.engine, str(out), precisions, spec)
    if trt is None and cfg.camera_sizes:  # camera graphs only: onnx is all it needs
        with assemble(out, overwrite=cfg.overwrite) as asm:
            asm.start_from(source, manifest)
            add_camera_graphs(asm, manifest.listing.by_precision("onnx"), cfg.camera_sizes, cfg.camera_channels, log)
            asm.finish(manifest)
        result.manifest = Manifest.load(out)
    if trt is None:
        result.engine_note = ("--engine no: nothing to do for an existing bundle" if cfg.engine == "no"
                              and not cfg.camera_sizes else _engine_note(cfg, out, precisions, spec))
        result.seconds = time.perf_counter() - t0
        return result
    calib = None
    if cfg.int8_engine == "calibrator" and "int8" in precisions:
        calib = calibration_frames_only(cfg, manifest.input_size)
    with assemble(out, overwrite=cfg.overwrite) as asm:
        asm.start_from(source, manifest)
        add_camera_graphs(asm, manifest.listing.by_precision("onnx"), cfg.camera_sizes, cfg.camera_channels, log)
        result.engines = build_engines(trt, asm, spec, precisions, int8_mode=cfg.int8_engine,
                                       dla_core=cfg.dla_core, workspace_gb=cfg.workspace_gb,
                                       allow_slow=cfg.allow_slow_precision, calib_images=calib,
                                       cache_dir=cfg.timing_cache_dir, log=log)
        asm.finish(manifest)
    result.manifest = Manifest.load(out)
    result.seconds = time.perf_counter() - t0
    return result


def export_from_checkpoint(cfg: ExportConfig, log: Log = print) -> ExportResult:
    """A training run or a checkpoint -> a bundle (see the module docstring)."""
    source, out = cfg.source, cfg.out
    if out is None:
        raise ConfigError("--out BUNDLE is required when SOURCE is a run or a checkpoint",
                          hint=f"e.g. edgepose-export {source} --out bundles/{source.name or 'model'}")
    precisions = list(cfg.precisions or DEFAULT_RUN_PRECISIONS)
    lo, opt, hi = cfg.batch_profile
    dynamic = cfg.dynamic_batch is not None
    check_out_dir(out, overwrite=cfg.overwrite)  # before any work: export never deletes a user's file
    trt = require_tensorrt(cfg.engine, str(out), precisions)  # fail fast, before any work

    # lazy: torch, only on the checkpoint path; the engines-from-a-bundle path (a Jetson) runs without it
    from edgepose.train.model import load_model, read_checkpoint, resolve_checkpoint

    ckpt_path = resolve_checkpoint(source)
    ckpt = read_checkpoint(ckpt_path)
    data_root = cfg.calib or (ckpt.get("data") or {}).get("root")
    # the bundle never lands on what the export reads (the checkpoint, the dataset)
    check_outputs({"--out": out}, {"checkpoint": ckpt_path, "--calib" if cfg.calib else "dataset": data_root})
    model = load_model(ckpt_path)
    config = model.config
    size = tuple(int(v) for v in config["input_size"])
    t0 = time.perf_counter()
    frames = load_frames(cfg, ckpt.get("data") or {}, size, need_calib="int8" in precisions and not ckpt.get("qat"),
                         log=log)
    input_spec = InputSpec.for_model(cfg.input, size, (lo, opt, hi), dynamic)
    spec = input_spec.to_manifest()
    result = ExportResult(out, False, precisions, data_root=frames.root, checkpoint=Path(ckpt_path),
                          qat=bool(ckpt.get("qat")), source=source)

    import_native_modules(cfg.simplify)  # before the partial folder exists (see its docstring)
    with assemble(out, overwrite=cfg.overwrite) as asm:
        parity_images = frames.val[:PARITY_FRAMES] if frames.val is not None else None
        log(f"exporting {ckpt_path} ({config['backbone']}, {size[0]}x{size[1]}) to ONNX ...")
        info: Dict[str, dict] = {}
        onnx_files = result.onnx_files
        for prec in ["fp32"] + [p for p in PRECISIONS if p in precisions and p != "fp32"]:
            ctx = PassContext(cfg, fp32=asm.path(ONNX_NAMES["fp32"]), out=asm.path(ONNX_NAMES[prec]), frames=frames,
                              model=model, checkpoint=ckpt, parity_images=parity_images, log=log)
            info[prec] = run_pass(prec, ctx)
            onnx_files[prec] = ONNX_NAMES[prec]
        for prec, rel in onnx_files.items():
            asm.register(rel, "onnx", prec, input=cfg.input)
        add_camera_graphs(asm, onnx_files, cfg.camera_sizes, cfg.camera_channels, log)
        asm.add_file(ckpt_path, CHECKPOINT_NAME, "checkpoint", "fp32", format=ckpt.get("format"))

        if frames.val is not None:
            result.validation, result.failures = measure(asm.dir, onnx_files, frames, cfg.max_drift_m,
                                                         cfg.max_drift_deg)
        if parity_images is None:
            parity_images, parity_source = example_images(size, n=4), "synthetic (no dataset)"
        else:
            parity_source = f"test split of {frames.source}"
        parity = record_parity(asm.dir, parity_images, onnx_files, parity_source)
        asm.register(PARITY_NAME, "parity", None)

        if trt is not None:
            result.engines = build_engines(trt, asm, spec, precisions, int8_mode=cfg.int8_engine,
                                           dla_core=cfg.dla_core, workspace_gb=cfg.workspace_gb,
                                           allow_slow=cfg.allow_slow_precision, calib_images=frames.calib,
                                           cache_dir=cfg.timing_cache_dir, log=log)
        else:
            result.engine_note = _engine_note(cfg, out, precisions, spec)
        asm.finish(Manifest(
            model=ModelInfo.from_config(config), input=input_spec,
            normalization=Normalization(tuple(float(v) for v in config["position_mean"]),  # type: ignore[arg-type]
                                        float(config["position_scale"])),
            files={},  # the files written above (finish lists them)
            training={"checkpoint": str(Path(ckpt_path).resolve()), "metrics": ckpt.get("metrics") or {},
                      "data": ckpt.get("data") or {}},
            validation=result.validation,
            calibration=frames.calib_info,
            # sigma's calibration scale, already applied inside the graph (/post_sigma, FP32)
            sigma_calibration=ckpt.get("calibration"),
            # the pose memory (retrieval of training views, blended inside the graph: /post_memory, FP32)
            memory=ckpt.get("memory"),
            extra={"validation_frames": {"n": 0 if frames.val is None else int(len(frames.val)), "split": "test",
                                         "source": frames.source, "passed": result.ok,
                                         "max_drift_m": cfg.max_drift_m, "max_drift_deg": cfg.max_drift_deg},
                   "parity": parity,
                   "export": {"tool": "edgepose-export", "argv": list(cfg.argv), "precisions": precisions,
                              "opset": cfg.opset, "engine": cfg.engine, "int8_engine": cfg.int8_engine,
                              "onnx": json_safe(info)}}))
    result.manifest = Manifest.load(out)
    result.seconds = time.perf_counter() - t0
    return result


def import_native_modules(simplify: bool = True) -> None:
    """Import onnx, onnxruntime (and onnxsim) now, before anything is written. Their first
    import runs Python callbacks from C++ (nanobind/pybind11 module set-up); a SIGTERM whose
    handler raises there cannot unwind through C++ and aborts the process (exit -6) instead of
    the clean "interrupted" exit, leaving the partial bundle folder behind."""
    require("onnx", "ONNX export", "pip install 'edgepose[export]'")
    require("onnxruntime", "checking exported graphs", "pip install 'edgepose[export]'")
    if simplify:
        try:
            require("onnxsim", "ONNX simplification", "pip install onnxsim")
        except EdgePoseError:
            pass  # optional: export_onnx says so when it skips simplification


def default_argv() -> List[str]:
    """The process's arguments, as the manifest records them."""
    return list(sys.argv[1:]) if sys.argv else []
