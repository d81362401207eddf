"""The TensorRT build itself: parse the ONNX file, apply a :class:`~.plan.BuildPlan`,
``build_serialized_network``. Only this module touches ``tensorrt``; every decision that does
not need TensorRT is made in :mod:`.plan` and tested without a GPU. Exercised by the
``@pytest.mark.tensorrt`` tests where TensorRT is installed.

What :func:`build_serialized_engine` does with a plan:

* creation flags: EXPLICIT_BATCH on 8.x, STRONGLY_TYPED on 10.x only (deprecated and ignored
  on 11.x, whose networks are always strongly typed);
* every ONNX parser error listed (not just the first);
* builder flags set and cleared as planned (``TF32`` cleared for the FP32 reference engine:
  it is on by default, ``NvInfer.h``);
* post-processing layers pinned to FP32 with ``layer.precision`` and ``set_output_type`` when
  the plan says so, chosen by reachability (:mod:`.reachability`: from the tensors entering the
  ONNX graph's ``/post_*`` nodes to the network outputs, constants and reshapes included,
  constant/shape/non-float layers skipped as Polygraphy does), with OBEY_PRECISION_CONSTRAINTS
  in the flags (``NvInfer.h`` ``setPrecision``: without it TensorRT may still choose a faster
  kernel); the build fails when no post-processing layer is found;
* the optimization profile; for implicit INT8 the calibration profile (whenever the config
  has ``set_calibration_profile``: ``NvInfer.h`` release/10.3 still requires it);
* profiling verbosity DETAILED, so the engine's inspector report names each layer's precision
  (:mod:`.inspector`);
* DLA: default device DLA, the core, and how many layers ``config.can_run_on_DLA`` accepts
  (none: refused, the engine would run on the GPU under a DLA name);
* the timing cache of :mod:`.timing_cache` (mismatch not ignored, locked, merged).

Sources: NVIDIA/TensorRT ``include/NvInfer.h`` and ``python/docstrings/infer/pyCoreDoc.h``
(release/8.6, 10.x), Polygraphy ``backend/trt/config.py``; deployment-facts.md section 7.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from edgepose.errors import require

from .plan import (INT8_MODES, BuildPlan, Shape, SlowPrecisionError, TensorRTBuildError,  # noqa: F401
                   TrtCaps, check_onnx_files, plan_build, trtexec_command)
from ..onnx_export import NODE_GROUPS
from .inspector import check_post_processing_fp32, engine_information, parse_engine_information
from .reachability import choose_fp32_layers, network_layers, post_processing_inputs
from .timing_cache import attach_timing_cache, save_timing_cache


# --------------------------------------------------------------------------- the build
def _make_logger(trt):
    """A ``trt.ILogger`` that prints warnings and keeps every message for error reports."""

    class CollectingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: List[str] = []

        def log(self, severity, msg):
            self.messages.append(f"[{severity}] {msg}")
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                print(f"TensorRT {severity}: {msg}")

    return CollectingLogger()


def parse_errors(parser) -> List[str]:
    """Every error an ``OnnxParser`` holds, as strings (not just the first)."""
    out = []
    for i in range(int(parser.num_errors)):
        e = parser.get_error(i)
        try:
            out.append(f"{e.desc()} (node {e.node()}, {e.file()}:{e.line()})")
        except Exception:
            out.append(str(e))
    return out


def build_serialized_engine(trt, onnx_path: Union[str, Path], plan: BuildPlan, input_name: str,
                            shapes: Tuple[Shape, Shape, Shape], workspace_gb: float = 1.0,
                            timing_cache: Optional[Union[str, Path]] = None, calibrator=None,
                            report: Optional[dict] = None) -> bytes:
    """Build a serialized engine (plan bytes) from ``onnx_path`` as ``plan`` says.

    ``report`` (a dict) receives what was enforced: ``fp32_layers`` (the reachability choice:
    post-processing layers found, pinned, skipped by reason), for DLA ``dla_layers``
    ``{"on_dla", "total"}``, ``inspector``: the engine's own per-layer report summarised
    (:func:`.inspector.summarise`) and ``inspector_json``: that report in full. An engine whose post-processing the report shows below FP32
    is refused (:class:`.inspector.EnginePrecisionError`, naming the layers).

    Raises :class:`TensorRTBuildError` listing every parser error, or the logged errors when
    ``build_serialized_network`` returns ``None``.
    """
    report = {} if report is None else report
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if plan.explicit_batch:
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if plan.strongly_typed_flag:  # 10.x only: deprecated and ignored on 11.x
        flags |= 1 << int(creation.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = parse_errors(parser) or ["(the parser reported failure without errors)"]
        raise TensorRTBuildError(f"TensorRT {trt.__version__} cannot parse {onnx_path}:\n    " + "\n    ".join(errors),
                                 hint="check the ONNX opset (--opset) and re-export; onnx.checker must pass")

    config = builder.create_builder_config()
    nbytes = int(workspace_gb * (1 << 30))
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)
    else:  # 8.4 and older
        config.max_workspace_size = nbytes
    for name in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.clear_flags:
        if hasattr(trt.BuilderFlag, name):
            config.clear_flag(getattr(trt.BuilderFlag, name))
    if hasattr(config, "profiling_verbosity") and hasattr(trt, "ProfilingVerbosity"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # per-layer precision in the report
    if plan.pin_fp32:
        report["fp32_layers"] = _pin_fp32(trt, network, config, plan, onnx_path)

    profile = None
    inp = network.get_input(0)
    if any(int(d) < 0 for d in inp.shape) or shapes[0] != shapes[2]:
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name or input_name, *shapes)
        config.add_optimization_profile(profile)

    if plan.calibrator:
        if calibrator is None:
            raise TensorRTBuildError("the plan needs an INT8 calibrator and none was given")
        config.int8_calibrator = calibrator
        if plan.calibration_profile and profile is not None and hasattr(config, "set_calibration_profile"):
            config.set_calibration_profile(profile)

    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan.dla_core)
        report["dla_layers"] = _dla_layers(network, config, onnx_path)

    if timing_cache is not None:
        attach_timing_cache(config, timing_cache, log=lambda m: logger.log(trt.ILogger.Severity.WARNING, m))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [m for m in logger.messages if "ERROR" in m.upper()] or logger.messages[-5:]
        raise TensorRTBuildError(f"TensorRT {trt.__version__} failed to build a {plan.precision} engine from "
                                 f"{onnx_path}:\n    " + "\n    ".join(errors or ["(no log)"]),
                                 hint="try a larger --workspace-gb, or another precision")
    if timing_cache is not None:
        save_timing_cache(config, timing_cache)
    data = memoryview(serialized).tobytes()
    report["inspector_json"], report["inspector"] = _inspect(trt, logger, data, plan, onnx_path)
    return data


def _inspect(trt, logger, data: bytes, plan: BuildPlan, onnx_path) -> Tuple[str, dict]:
    """The built engine's own per-layer report (JSON text) and its summary; refuse the engine
    when its post-processing is not FP32."""
    engine = trt.Runtime(logger).deserialize_cuda_engine(data)
    if engine is None:
        raise TensorRTBuildError(f"TensorRT {trt.__version__} cannot load the {plan.precision} engine it just built "
                                 f"from {onnx_path}", hint="report it with the TensorRT version")
    text = engine_information(trt, engine)
    what = f"the {plan.precision} engine from {onnx_path}"
    return text, check_post_processing_fp32(parse_engine_information(text), NODE_GROUPS["post"], what=what)


def _pin_fp32(trt, network, config, plan: BuildPlan, onnx_path) -> dict:
    """Pin every post-processing layer to FP32 (compute and float outputs); return the choice.

    On a DLA build the pinned layers are also placed on the GPU (``IBuilderConfig.setDeviceType``):
    the DLA runs FP16/INT8 only."""
    onnx = require("onnx", "choosing the FP32 post-processing layers", "pip install onnx")
    starts = post_processing_inputs(onnx.load(str(onnx_path), load_external_data=False), NODE_GROUPS["post"])
    layers = network_layers(network)
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    choice = choose_fp32_layers(layers, starts, outputs)
    if not choice.post:
        raise TensorRTBuildError(
            f"no post-processing layer found between the tensors {starts} and the outputs {outputs} of the "
            f"parsed network, so post-processing cannot be kept FP32 in the {plan.precision} engine",
            hint="re-export the bundle with this edgepose (its ONNX post-processing nodes are named /post_*)")
    floats = (trt.float32, trt.float16)
    for i in choice.pin:
        layer = network.get_layer(i)
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in floats:
                layer.set_output_type(j, trt.float32)
        if plan.dla_core is not None:
            config.set_device_type(layer, trt.DeviceType.GPU)
    return choice.to_json(layers)


def _dla_layers(network, config, onnx_path) -> dict:
    """How many layers the DLA can take (``IBuilderConfig.can_run_on_DLA``); none is refused."""
    total = int(network.num_layers)
    on_dla = sum(bool(config.can_run_on_DLA(network.get_layer(i))) for i in range(total))
    if on_dla == 0:
        raise TensorRTBuildError(f"no layer of {onnx_path} can run on the DLA: the engine would run entirely on "
                                 "the GPU under a DLA name", hint="drop --dla-core")
    return {"on_dla": on_dla, "total": total}


def import_tensorrt():
    """``tensorrt`` or ``None`` when it is not installed (callers decide whether that is fatal)."""
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt
