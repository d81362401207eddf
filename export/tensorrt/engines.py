"""Build the TensorRT engines of a bundle being assembled, or say how to build them on a Jetson.

:func:`build_engines` runs, for each precision, :func:`~.builder.plan_build` and
:func:`~.builder.build_serialized_engine`, names the engine by its fingerprint
(:func:`edgepose.bundle.engine_filename`) and lists it in the bundle with role ``engine``, the
fingerprint, the build plan, the engine's own report summarised (layers per precision and
device, FP32 post-processing) and the device (JetPack/L4T); the full per-layer report is listed
beside it as ``<engine>.layers.json`` (role ``engine-report``). The engine bytes are the plain
TensorRT plan: nothing is glued to them. No torch is imported here.

:func:`jetson_instructions` is what ``--engine auto`` prints where TensorRT is absent.
"""
from __future__ import annotations

import shlex
from typing import List, Optional, Sequence

import numpy as np

from edgepose.bundle import BundleFiles, engine_filename, profile_shapes
from edgepose.errors import EdgePoseError

from ..bundle_writer import CALIBRATION_CACHE_NAME, ONNX_NAMES, BundleAssembly
from .builder import TrtCaps, build_serialized_engine, check_onnx_files, import_tensorrt, plan_build, trtexec_command
from .calibrator import CalibrationBatches, frames_for_calibration_batch, make_entropy_calibrator, read_usable_cache
from .device_fingerprint import detect_device
from .inspector import engine_report_name
from .timing_cache import timing_cache_path


class TensorRTUnavailableError(EdgePoseError):
    """``--engine yes`` was asked where the ``tensorrt`` package is not importable."""


def jetson_instructions(bundle: str, precisions: Sequence[str], input_spec: dict, int8_mode: str = "qdq",
                        dla_core: Optional[int] = None, workspace_gb: float = 1.0) -> str:
    """The exact commands that build this bundle's engines on the device (ours, and trtexec's)."""
    q = shlex.quote(str(bundle))
    cmd = f"edgepose-export {q} --precision {','.join(precisions)} --engine yes"
    if dla_core is not None:
        cmd += f" --dla-core {dla_core}"
    if int8_mode != "qdq" and "int8" in precisions:
        cmd += f" --int8-engine {int8_mode}"
    lines = ["TensorRT is not installed here, so no engine was built (engines are built on the device",
             "that runs them). Copy the bundle to the Jetson and run there (no torch needed):",
             f"    {cmd}",
             "or, with NVIDIA's trtexec (TensorRT 8.x flags; on 10+ the Q/DQ/FP16 files need --stronglyTyped):"]
    shapes = profile_shapes(input_spec)
    caps = TrtCaps.for_version("8.6")
    for p in precisions:
        try:
            plan = plan_build(caps, p, int8_mode="qdq", dla_core=None)
        except EdgePoseError:  # pragma: no cover - fp32/fp16/int8 qdq always plan on 8.6
            continue
        lines.append("    " + trtexec_command(f"{q}/{ONNX_NAMES[plan.onnx_precision]}", plan, input_spec["name"],
                                              shapes, engine=f"{q}/model.{p}.engine", workspace_gb=workspace_gb))
    return "\n".join(lines)


def require_tensorrt(engine_mode: str, bundle: str, precisions: Sequence[str], input_spec: Optional[dict] = None):
    """``tensorrt`` or ``None``; raises :class:`TensorRTUnavailableError` under ``--engine yes``."""
    if engine_mode == "no":
        return None
    trt = import_tensorrt()
    if trt is None and engine_mode == "yes":
        raise TensorRTUnavailableError(
            "--engine yes asks for TensorRT engines, but the Python package 'tensorrt' is not importable here",
            hint=("run this on the Jetson (JetPack ships python3-libnvinfer): "
                  f"edgepose-export {bundle} --precision {','.join(precisions)} --engine yes; "
                  "or pass --engine auto to write the ONNX files only"))
    return trt


def build_engines(trt, asm: BundleAssembly, input_spec: dict, precisions: Sequence[str], *,
                  int8_mode: str = "qdq", dla_core: Optional[int] = None, workspace_gb: float = 1.0,
                  allow_slow: bool = False, calib_images: Optional[np.ndarray] = None,
                  cache_dir=None, log=print) -> List[str]:
    """Build one engine per precision into ``asm``; return the engine file names."""
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    device = detect_device(trt, builder)
    caps = TrtCaps.from_module(trt)
    shapes = profile_shapes(input_spec)
    dynamic = shapes[0] != shapes[2]
    plans = [plan_build(caps, p, int8_mode=int8_mode, dla_core=dla_core, dla_cores=device.dla_cores,
                        dynamic=dynamic, fast_fp16=device.fast_fp16, fast_int8=device.fast_int8,
                        allow_slow=allow_slow) for p in precisions]
    onnx_by_precision = BundleFiles(asm.files).by_precision("onnx")
    check_onnx_files(list(onnx_by_precision), plans)
    cache = timing_cache_path(device.trt_version, device.gpu, device.compute_capability, cache_dir)
    log(f"TensorRT {device.trt_version} on {device.gpu} (sm {device.compute_capability}, "
        f"{device.dla_cores} DLA core(s){', JetPack ' + device.jetpack if device.jetpack else ''}); "
        f"timing cache {cache}")
    built = []
    for plan in plans:
        for note in plan.notes:
            log(f"note ({plan.precision}): {note}")
        calibrator = None
        if plan.calibrator:
            calibrator = _calibrator(trt, asm, input_spec, calib_images, log)
        onnx_rel = onnx_by_precision[plan.onnx_precision]
        log(f"building {plan.precision} engine from {onnx_rel} (flags {list(plan.flags) or 'none'}, "
            f"strongly typed {plan.strongly_typed}; FP32 post-processing: {plan.fp32_post_processing}) ...")
        report: dict = {}
        try:
            data = build_serialized_engine(trt, asm.path(onnx_rel), plan, input_spec["name"], shapes,
                                           workspace_gb=workspace_gb, timing_cache=cache, calibrator=calibrator,
                                           report=report)
        finally:
            if calibrator is not None:
                calibrator.free()
        fp = device.fingerprint(plan.precision, plan.dla_core, onnx_sha256=asm.files[onnx_rel].sha256,
                                profile=[list(s) for s in shapes])
        rel = _list_engine(asm, data, report, engine_filename(fp), "engine", plan, fp, onnx_rel, device, log)
        if plan.calibrator and asm.path(CALIBRATION_CACHE_NAME).is_file():
            asm.register(CALIBRATION_CACHE_NAME, "calibration-cache", "int8", trt_version=device.trt_version)
        built.append(rel)
        if not plan.calibrator:  # the implicit calibrator calibrates at the network size only
            built += _camera_engines(trt, asm, input_spec, plan, device, workspace_gb, cache, log)
    return built


def camera_engine_name(engine_rel: str, size) -> str:
    """``model.<slug>.engine`` -> ``model.<slug>.cam1920x1080.engine``.

    >>> camera_engine_name("model.10.3.orin.sm87.gpu.fp16.engine", (1920, 1080))
    'model.10.3.orin.sm87.gpu.fp16.cam1920x1080.engine'
    """
    stem = engine_rel[:-len(".engine")] if engine_rel.endswith(".engine") else engine_rel
    return f"{stem}.cam{int(size[0])}x{int(size[1])}.engine"


def camera_input_spec(input_spec: dict, size) -> dict:
    """The network's input section at a camera frame size (uint8 NHWC)."""
    shape = [int(v) for v in input_spec["shape"]]
    return {**input_spec, "dtype": "uint8", "layout": "NHWC", "shape": [shape[0], int(size[1]), int(size[0]), 3]}


def _camera_engines(trt, asm: BundleAssembly, input_spec: dict, plan, device, workspace_gb, cache, log) -> List[str]:
    """One engine per camera-resolution graph of the plan's ONNX precision (role ``camera-engine``)."""
    out = []
    for cam_rel, entry in BundleFiles(asm.files).with_role("camera-onnx", plan.onnx_precision).items():
        size = tuple(int(v) for v in entry.extra["camera"]["size"])
        spec = camera_input_spec(input_spec, size)
        shapes = profile_shapes(spec)
        report: dict = {}
        log(f"building {plan.precision} engine for {size[0]}x{size[1]} camera frames from {cam_rel} ...")
        data = build_serialized_engine(trt, asm.path(cam_rel), plan, spec["name"], shapes, workspace_gb=workspace_gb,
                                       timing_cache=cache, report=report)
        fp = device.fingerprint(plan.precision, plan.dla_core, onnx_sha256=entry.sha256,
                                profile=[list(s) for s in shapes])
        out.append(_list_engine(asm, data, report, camera_engine_name(engine_filename(fp), size), "camera-engine",
                                plan, fp, cam_rel, device, log, camera=dict(entry.extra["camera"])))
    return out


def _list_engine(asm: BundleAssembly, data: bytes, report: dict, rel: str, role: str, plan, fp, onnx_rel: str,
                 device, log, **extra) -> str:
    """Put one built engine into the bundle as ``rel`` (role ``engine`` or ``camera-engine``)
    with its fingerprint, build plan and report summary, and its full per-layer report beside
    it (role ``engine-report``, what ``edgepose-export --inspect`` reads); a rebuild for the same
    device replaces both. Returns ``rel``."""
    if "dla_layers" in report:
        log(f"  DLA takes {report['dla_layers']['on_dla']} of {report['dla_layers']['total']} layers; "
            "the rest run on the GPU")
    layers_json = report.pop("inspector_json", None)
    for old in (rel, engine_report_name(rel)):
        if old in asm.files:
            asm.remove(old)
    asm.add_bytes(data, rel, role, plan.precision, fingerprint=fp.to_json(), onnx=onnx_rel,
                  build={**plan.to_json(), **report}, device={"jetpack": device.jetpack, "l4t": device.l4t,
                                                               "module": device.module}, **extra)
    if layers_json:
        asm.add_bytes(layers_json.encode(), engine_report_name(rel), "engine-report", None, engine=rel)
        pp = report["inspector"]["post_processing"]
        log(f"  engine report: {report['inspector']['by_precision']}; post-processing {pp['layers']} layers, FP32")
    log(f"  wrote {rel} ({len(data) / 1e6:.1f} MB)")
    return rel


def _calibrator(trt, asm: BundleAssembly, input_spec: dict, calib_images, log):
    cache = asm.path(CALIBRATION_CACHE_NAME)
    if calib_images is None:
        if read_usable_cache(cache, str(trt.__version__), log=log) is None:
            raise EdgePoseError("the INT8 calibrator needs calibration frames and the bundle has no usable "
                                "calibration.cache", hint="pass --calib DATA (a dataset folder), or use --int8-engine qdq")
        calib_images = np.zeros((1,) + tuple(int(v) for v in _nhwc(input_spec)), np.uint8)  # never read: cache hit
    opt = profile_shapes(input_spec)[1][0]  # TensorRT calibrates at the profile's OPT batch
    calib_images, note = frames_for_calibration_batch(calib_images, opt)
    if note:
        log(f"note (int8 calibrator): {note}")
    batches = CalibrationBatches(calib_images, batch_size=opt, dtype=input_spec["dtype"], layout=input_spec["layout"])
    return make_entropy_calibrator(trt, batches, cache, log=log)


def _nhwc(input_spec: dict):
    s = [int(v) for v in input_spec["shape"]]
    return (s[1], s[2], 3) if input_spec["layout"] == "NHWC" else (s[2], s[3], 3)
