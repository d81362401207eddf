"""Plan decisions per TensorRT version for the defects found in the review against NVIDIA's
sources (issue 9): FP32 post-processing, TF32, strongly typed flag, fast precision, DLA,
calibration batch at OPT, stale engines, Orin modules. Pure decisions: no GPU, no TensorRT.

Oracles are NVIDIA's statements quoted in ``export/tensorrt/plan.py`` and deployment-facts.md
section 7, and hand-worked cases; each test says which defect it would have caught.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.bundle import EngineFingerprint, check_engine
from edgepose.errors import ConfigError, EngineMismatchError
from edgepose.export.tensorrt.device_fingerprint import DeviceInfo
from edgepose.export.tensorrt.calibrator import CalibrationBatches, frames_for_calibration_batch
from edgepose.export.tensorrt.plan import TrtCaps, fast_precisions, plan_build, trtexec_command

V = {v: TrtCaps.for_version(v) for v in ("8.5.2.2", "8.6.2", "10.3.0", "10.16.1", "11.0.0", "11.3.0", "11.4.0")}


# ------------------------------------------------------------------ defect 2: FP32 post-processing
@pytest.mark.parametrize("version,pinned", [("8.5.2.2", True), ("8.6.2", True), ("10.3.0", False),
                                            ("10.16.1", False), ("11.0.0", False)])
def test_fp16_pins_by_reachability_on_8_and_is_strongly_typed_from_10(version, pinned):
    """Issue 19: 10.x builds FP16 strongly typed from the FP16 graph, so the ONNX types decide."""
    p = plan_build(V[version], "fp16")
    assert p.pin_fp32 is pinned and ("OBEY_PRECISION_CONSTRAINTS" in p.flags) is pinned
    assert p.strongly_typed is not pinned and p.onnx_precision == "fp16"
    assert ("reachability" in p.fp32_post_processing) is pinned


@pytest.mark.parametrize("version,pinned", [("8.6.2", True), ("10.3.0", False), ("11.0.0", False)])
def test_int8_qdq_pins_only_where_the_network_is_not_strongly_typed(version, pinned):
    p = plan_build(V[version], "int8")
    assert p.pin_fp32 is pinned and ("OBEY_PRECISION_CONSTRAINTS" in p.flags) is pinned
    if not pinned:  # strongly typed: the ONNX types carry it (and the graph lint checks them)
        assert p.strongly_typed and "ONNX types" in p.fp32_post_processing


def test_the_implicit_calibrator_pins_by_reachability_on_10_too():
    p = plan_build(V["10.3.0"], "int8", int8_mode="calibrator")
    assert p.pin_fp32 and not p.strongly_typed and "OBEY_PRECISION_CONSTRAINTS" in p.flags


# ------------------------------------------------------------------ issue 19 defect 4: TF32 in every precision
@pytest.mark.parametrize("version", sorted(V))
def test_tf32_is_cleared_in_every_precision(version):
    """NvInfer.h: kTF32 is enabled by default; the FP32 post-processing must not run in TF32."""
    for precision in ("fp32", "fp16", "int8"):
        assert plan_build(V[version], precision).clear_flags == ("TF32",)
    assert "--noTF32" in trtexec_command("m", plan_build(V[version], "fp16"), "image", ((1, 2, 2, 3),) * 3)


# ------------------------------------------------------------------ issue 19 defect 5: calibration profile on 10
@pytest.mark.parametrize("version", ["8.6.2", "10.3.0"])
def test_the_calibration_profile_is_set_for_a_dynamic_batch_on_8_and_10(version):
    """NvInfer.h release/10.3 still says it must be set; Polygraphy release/10.3 always sets it."""
    assert plan_build(V[version], "int8", int8_mode="calibrator", dynamic=True).calibration_profile
    assert not plan_build(V[version], "int8", int8_mode="calibrator", dynamic=False).calibration_profile


# ------------------------------------------------------------------ issue 19 defect 7: drift from the built graph
@pytest.mark.parametrize("version", sorted(V))
def test_each_engine_is_built_from_the_graph_whose_drift_is_recorded(version):
    """The FP16 drift is measured on model.fp16.onnx, so every FP16 engine is built from it."""
    for precision, graph in (("fp32", "fp32"), ("fp16", "fp16"), ("int8", "int8")):
        p = plan_build(V[version], precision)
        assert p.onnx_precision == graph and p.drift_graph == graph and p.to_json()["drift_graph"] == graph
    if V[version].calibrator:  # no ONNX graph reproduces the implicit calibrator's INT8 choices
        p = plan_build(V[version], "int8", int8_mode="calibrator")
        assert p.onnx_precision == "fp32" and p.drift_graph is None


# ------------------------------------------------------------------ defect 10: STRONGLY_TYPED on 11
@pytest.mark.parametrize("version,flag", [("10.3.0", True), ("11.0.0", False), ("11.4.0", False)])
def test_strongly_typed_flag_is_set_on_10_only(version, flag):
    p = plan_build(V[version], "int8")
    assert p.strongly_typed and p.strongly_typed_flag is flag


# ------------------------------------------------------------------ defect 10: fast precision from sm
@pytest.mark.parametrize("cc,fp16,int8", [
    ("5.3", True, False),   # Jetson Nano / TX1
    ("6.1", False, True),   # GTX 10xx: slow FP16, DP4A INT8
    ("6.2", True, False),   # TX2
    ("7.2", True, True),    # Xavier
    ("8.7", True, True),    # Orin
    ("9.0", True, True),    # H100/H200
])
def test_fast_precision_follows_the_compute_capability(cc, fp16, int8):
    assert fast_precisions(cc) == (fp16, int8)


# ------------------------------------------------------------------ defect 7: DLA
def test_dla_refuses_trt_11_0_to_11_3_naming_the_version_not_the_device():
    for v in ("11.0.0", "11.3.0"):
        with pytest.raises(ConfigError, match="TensorRT 11.0-11.3 dropped it.*not the device"):
            plan_build(V[v], "fp16", dla_core=0, dla_cores=2)


def test_dla_refuses_a_dynamic_batch():
    with pytest.raises(ConfigError, match="static shapes"):
        plan_build(V["8.6.2"], "fp16", dla_core=0, dla_cores=2, dynamic=True)
    assert plan_build(V["8.6.2"], "fp16", dla_core=0, dla_cores=2, dynamic=False).dla_core == 0


def test_dla_refuses_explicit_quantization_on_8_but_not_on_10():
    with pytest.raises(ConfigError, match="explicitly quantized"):
        plan_build(V["8.6.2"], "int8", int8_mode="qdq", dla_core=0, dla_cores=2)
    assert plan_build(V["8.6.2"], "int8", int8_mode="calibrator", dla_core=0, dla_cores=2).calibrator
    assert plan_build(V["10.3.0"], "int8", dla_core=0, dla_cores=2).dla_core == 0


# ------------------------------------------------------------------ defect 5: calibration batch = OPT
def test_calibration_frames_fill_a_batch_of_the_profiles_opt_size():
    frames = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    filled, note = frames_for_calibration_batch(frames, 4)
    assert filled.shape == (4, 2, 2, 3) and "repeated" in note and "OPT" in note
    assert np.array_equal(filled[3], frames[0])  # cycled, not zero-padded
    b = CalibrationBatches(filled, batch_size=4)
    assert b.batch(0).shape == (4, 2, 2, 3) and b.nbytes == 4 * 2 * 2 * 3  # the buffer TensorRT reads at OPT
    same, note = frames_for_calibration_batch(frames, 2)
    assert same is frames and note is None


# ------------------------------------------------------------------ defect 8: stale engines
def test_an_engine_from_another_onnx_or_profile_is_stale():
    dev = DeviceInfo(trt_version="10.3.0", gpu="Orin [Orin Nano]", compute_capability="8.7")
    prof = [[1, 24, 32, 3], [1, 24, 32, 3], [4, 24, 32, 3]]
    entry = {"fingerprint": dev.fingerprint("fp16", onnx_sha256="aa" * 32, profile=prof).to_json()}
    check_engine(entry, dev.fingerprint("fp16", onnx_sha256="aa" * 32, profile=[tuple(s) for s in prof]))
    with pytest.raises(EngineMismatchError, match="ONNX file sha256"):
        check_engine(entry, dev.fingerprint("fp16", onnx_sha256="bb" * 32, profile=prof))
    with pytest.raises(EngineMismatchError, match="optimization profile"):
        check_engine(entry, dev.fingerprint("fp16", onnx_sha256="aa" * 32, profile=prof[:2] + [[8, 24, 32, 3]]))
    old = {"fingerprint": dev.fingerprint("fp16").to_json()}  # built before fingerprints carried the ONNX
    with pytest.raises(EngineMismatchError, match="rebuild it here"):
        check_engine(old, dev.fingerprint("fp16", onnx_sha256="aa" * 32, profile=prof))


def test_orin_modules_get_different_engine_names():
    from edgepose.bundle import engine_filename
    from edgepose.jetson import gpu_label, jetson_module

    nano = gpu_label("Orin", jetson_module("NVIDIA Jetson Orin Nano Developer Kit\x00"))
    agx = gpu_label("Orin", jetson_module("NVIDIA Jetson AGX Orin Developer Kit\x00"))
    nx = gpu_label("Orin", jetson_module("NVIDIA Jetson Orin NX Engineering Reference Developer Kit"))
    names = {engine_filename(DeviceInfo("10.3.0", g, "8.7").fingerprint("fp16")) for g in (nano, agx, nx)}
    assert len(names) == 3 and "model.trt10.3.0.orin-orin-nano.sm87.gpu.fp16.engine" in names
    assert jetson_module("Raspberry Pi 4 Model B") is None
