"""TensorRT builder decisions, engine naming, device parsing, timing cache and calibration batching.

Everything here runs without a GPU: the decisions are pure functions of the TensorRT
capabilities (:class:`TrtCaps`), and the calibrator's batching/caching is numpy. The real
builds are in ``test_tensorrt_build.py`` (``@pytest.mark.tensorrt``).
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.bundle import EngineFingerprint, engine_filename
from edgepose.errors import ConfigError, EdgePoseError
from edgepose.export.tensorrt.device_fingerprint import DeviceInfo, parse_nvidia_smi, parse_tegra_release, trt_major
from edgepose.bundle import profile_shapes
from edgepose.export.tensorrt.builder import SlowPrecisionError, TrtCaps, plan_build, trtexec_command
from edgepose.export.tensorrt.calibrator import (CalibrationBatches, cache_matches, parse_cache_header,
                                                 read_usable_cache, trt_version_code)
from edgepose.export.tensorrt.timing_cache import locked, read_cache_bytes, timing_cache_path, write_cache_bytes

TRT8, TRT10, TRT11 = TrtCaps.for_version("8.5.2.2"), TrtCaps.for_version("10.3.0"), TrtCaps.for_version("11.0.0")


# --------------------------------------------------------------------------- plans
def test_fp16_uses_the_fp16_onnx_with_the_flag_on_8_then_strongly_typed():
    p = plan_build(TRT8, "fp16")
    assert (p.onnx_precision, p.flags, p.strongly_typed) == ("fp16", ("FP16", "OBEY_PRECISION_CONSTRAINTS"), False)
    for caps in (TRT10, TRT11):
        p = plan_build(caps, "fp16")
        assert (p.onnx_precision, p.flags, p.strongly_typed) == ("fp16", (), True)


def test_int8_qdq_sets_int8_and_fp16_on_trt8_and_is_strongly_typed_from_10():
    p = plan_build(TRT8, "int8")
    assert p.onnx_precision == "int8" and set(p.flags) == {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"}
    assert not p.strongly_typed
    assert p.explicit_batch and not p.calibrator
    for caps in (TRT10, TRT11):
        p = plan_build(caps, "int8")
        assert p.onnx_precision == "int8" and p.flags == () and p.strongly_typed and not p.explicit_batch


def test_implicit_calibration_exists_on_trt8_only_and_needs_a_calibration_profile_when_dynamic():
    p = plan_build(TRT8, "int8", int8_mode="calibrator", dynamic=True)
    assert any("EntropyCalibration2" in n and "qdq" in n for n in p.notes)  # the user learns what it costs
    assert not any("EntropyCalibration2" in n for n in plan_build(TRT8, "int8", int8_mode="qdq").notes)
    assert p.calibrator and p.onnx_precision == "fp32" and set(p.flags) == {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"}
    assert p.calibration_profile
    assert not plan_build(TRT8, "int8", int8_mode="calibrator", dynamic=False).calibration_profile
    p10 = plan_build(TRT10, "int8", int8_mode="calibrator", dynamic=True)
    assert p10.calibration_profile and any("deprecated" in n for n in p10.notes)
    with pytest.raises(ConfigError, match="--int8-engine qdq"):
        plan_build(TRT11, "int8", int8_mode="calibrator")


def test_no_silent_downgrade_when_the_platform_says_a_precision_is_slow():
    with pytest.raises(SlowPrecisionError, match="--allow-slow-precision"):
        plan_build(TRT8, "fp16", fast_fp16=False)
    with pytest.raises(SlowPrecisionError):
        plan_build(TRT8, "int8", fast_int8=False)
    p = plan_build(TRT8, "fp16", fast_fp16=False, allow_slow=True)
    assert p.flags[0] == "FP16" and any("not fast" in n for n in p.notes)
    assert plan_build(TRT8, "fp32", fast_fp16=False, fast_int8=False).flags == ()  # fp32 never refused
    assert any("unknown" in n for n in plan_build(TRT11, "fp16").notes)


def test_dla_needs_reduced_precision_and_an_existing_core():
    p = plan_build(TRT8, "fp16", dla_core=1, dla_cores=2)
    assert p.dla_core == 1 and "GPU_FALLBACK" in p.flags
    with pytest.raises(ConfigError, match="FP16 or INT8"):
        plan_build(TRT8, "fp32", dla_core=0, dla_cores=2)
    with pytest.raises(ConfigError, match="0 DLA core"):
        plan_build(TRT8, "fp16", dla_core=0, dla_cores=0)
    with pytest.raises(ConfigError, match=r"0\.\.1"):
        plan_build(TRT8, "int8", dla_core=2, dla_cores=2)


def test_unknown_precision_or_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="fp32, fp16, int8"):
        plan_build(TRT8, "bf16")
    with pytest.raises(ConfigError):
        plan_build(TRT8, "int8", int8_mode="magic")


def test_profile_shapes_follow_layout_and_reject_bad_ranges():
    nchw = {"layout": "NCHW", "shape": [-1, 3, 24, 32], "batch": {"min": 2, "opt": 4, "max": 8}}
    assert profile_shapes(nchw) == ((2, 3, 24, 32), (4, 3, 24, 32), (8, 3, 24, 32))
    fixed = {"layout": "NHWC", "shape": [1, 24, 32, 3], "batch": {"min": 1, "opt": 1, "max": 1}}
    lo, opt, hi = profile_shapes(fixed)
    assert lo == opt == hi == (1, 24, 32, 3)
    with pytest.raises(EdgePoseError, match="min <= opt <= max"):
        profile_shapes({"layout": "NHWC", "shape": [-1, 24, 32, 3], "batch": {"min": 4, "opt": 2, "max": 8}})


def test_trtexec_equivalent_carries_flags_shapes_and_dla():
    shapes = profile_shapes({"layout": "NHWC", "shape": [-1, 24, 32, 3], "batch": {"min": 1, "opt": 4, "max": 8}})
    cmd = trtexec_command("b/model.onnx", plan_build(TRT8, "int8", "calibrator", dla_core=0, dla_cores=1), "image",
                          shapes[:1] * 3)
    assert "--int8" in cmd and "--fp16" in cmd and "--useDLACore=0" in cmd and "--allowGPUFallback" in cmd
    cmd = trtexec_command("b/model.int8.onnx", plan_build(TRT8, "int8"), "image", shapes)
    assert "--minShapes=image:1x24x32x3" in cmd and "--maxShapes=image:8x24x32x3" in cmd
    cmd10 = trtexec_command("b/model.int8.onnx", plan_build(TRT10, "int8"), "image", shapes[:1] * 3)
    assert "--stronglyTyped" in cmd10 and "--int8" not in cmd10 and "minShapes" not in cmd10
    assert "--stronglyTyped" not in trtexec_command("m", plan_build(TRT11, "fp16"), "image", shapes)  # ignored on 11
    assert "--noTF32" in trtexec_command("m", plan_build(TRT8, "fp32"), "image", shapes)


# --------------------------------------------------------------------------- naming
def test_engine_name_carries_trt_version_gpu_sm_dla_and_precision():
    dev = DeviceInfo(trt_version="8.5.2.2", gpu="Orin", compute_capability="8.7", dla_cores=2)
    gpu = engine_filename(dev.fingerprint("fp16"))
    dla = engine_filename(dev.fingerprint("int8", dla_core=1))
    assert gpu == "model.trt8.5.2.2.orin.sm87.gpu.fp16.engine"
    assert dla == "model.trt8.5.2.2.orin.sm87.dla1.int8.engine"
    other = DeviceInfo(trt_version="10.3.0", gpu="Orin", compute_capability="8.7").fingerprint("fp16")
    assert engine_filename(other) != gpu
    assert EngineFingerprint.from_json(dev.fingerprint("fp16").to_json()) == dev.fingerprint("fp16")
    diffs = dev.fingerprint("fp16").differences(other)
    assert diffs == ["trt_version: engine has '8.5.2.2', this device has '10.3.0'"]


def test_device_text_parsers():
    assert parse_tegra_release("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic") == ("36.4.3", "6.2")
    assert parse_tegra_release("# R35 (release), REVISION: 9.9, GCID: 1") == ("35.9.9", None)  # unknown: no guess
    assert parse_tegra_release("") == (None, None)
    assert parse_nvidia_smi("NVIDIA GeForce RTX 3090, 8.6\nTesla T4, 7.5\n", 1) == ("Tesla T4", "7.5")
    assert parse_nvidia_smi("No devices were found") is None
    assert trt_major("10.3.0.26") == 10
    with pytest.raises(EdgePoseError):
        trt_major("abc")


# --------------------------------------------------------------------------- timing cache
def test_timing_cache_file_is_keyed_by_trt_version_gpu_and_compute_capability(tmp_path):
    """NvInfer.h 10.3: a cache from another device "may lead to functional/performance bugs"."""
    a = timing_cache_path("8.5.2.2", "Orin", "8.7", tmp_path)
    assert a.name == "tensorrt.8.5.2.2.Orin.sm87.timingcache" and a.parent == tmp_path
    others = {timing_cache_path("10.3.0", "Orin", "8.7", tmp_path), timing_cache_path("8.5.2.2", "Xavier", "7.2", tmp_path),
              timing_cache_path("8.5.2.2", "Orin", "8.6", tmp_path)}
    assert a not in others and len(others) == 3
    assert read_cache_bytes(a) == b""  # missing -> a fresh cache
    assert write_cache_bytes(a, b"") is None and not a.exists()  # nothing to write
    write_cache_bytes(a, b"\x01\x02tactics")
    assert read_cache_bytes(a) == b"\x01\x02tactics"


def test_timing_cache_lock_excludes_a_second_holder(tmp_path):
    """Two builds saving at once: the second waits until the first has merged and written."""
    import threading
    import time

    path = tmp_path / "c.timingcache"
    order = []
    with locked(path):
        t = threading.Thread(target=lambda: (locked(path).__enter__(), order.append("second")))
        t.start()
        time.sleep(0.3)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


# --------------------------------------------------------------------------- calibration
def frames(n, h=6, w=8):
    return (np.arange(n * h * w * 3) % 251).astype(np.uint8).reshape(n, h, w, 3)


def test_calibration_batches_are_fixed_size_and_drop_the_short_tail():
    imgs = frames(10)
    cb = CalibrationBatches(imgs, batch_size=4)
    got = list(cb)
    assert len(cb) == 2 and cb.frames_used == 8 and [b.shape for b in got] == [(4, 6, 8, 3)] * 2
    np.testing.assert_array_equal(np.concatenate(got), imgs[:8])
    assert cb.nbytes == 4 * 6 * 8 * 3 and all(b.flags.c_contiguous for b in got)


def test_calibration_batches_match_a_float_nchw_input():
    imgs = frames(3)
    cb = CalibrationBatches(imgs, batch_size=3, dtype="float32", layout="NCHW")
    (b,) = list(cb)
    assert b.dtype == np.float32 and b.shape == (3, 3, 6, 8) and b.flags.c_contiguous
    np.testing.assert_array_equal(b[1, 2], imgs[1, :, :, 2].astype(np.float32))  # 0..255, not normalised
    assert cb.nbytes == b.nbytes


def test_calibration_batches_refuse_what_cannot_calibrate():
    with pytest.raises(EdgePoseError, match="cannot fill one batch"):
        CalibrationBatches(frames(2), batch_size=4)
    with pytest.raises(EdgePoseError, match="uint8"):
        CalibrationBatches(frames(2).astype(np.float32))
    with pytest.raises(EdgePoseError):
        CalibrationBatches(frames(2), batch_size=0)


def test_calibration_cache_is_reused_only_for_the_same_trt_version_and_algorithm(tmp_path):
    assert trt_version_code("8.5.2.2") == 8502 and trt_version_code("8.6.1") == 8601
    assert parse_cache_header(b"TRT-8601-EntropyCalibration2\nimage: 3c010a14\n") == (8601, "EntropyCalibration2")
    assert parse_cache_header(b"\x00garbage") is None
    ok, _ = cache_matches(b"TRT-8502-EntropyCalibration2\n", "8.5.2.2")
    assert ok
    ok, why = cache_matches(b"TRT-8601-EntropyCalibration2\n", "8.5.2.2")
    assert not ok and "8601" in why
    ok, why = cache_matches(b"TRT-8502-MinMaxCalibration\n", "8.5.2.2")
    assert not ok and "MinMax" in why
    path = tmp_path / "calibration.cache"
    assert read_usable_cache(path, "8.5.2.2") is None  # no file
    path.write_bytes(b"TRT-8601-EntropyCalibration2\nx: 1\n")
    logs = []
    assert read_usable_cache(path, "8.5.2.2", log=logs.append) is None and "recalibrating" in logs[0]
    assert read_usable_cache(path, "8.6.1.6", log=logs.append) == path.read_bytes()


def test_calibration_cache_headers_of_trt10_and_11_use_the_five_digit_major():
    """NV_TENSORRT_VERSION_INT is major*10000+minor*100+patch from 10.0: a real 10.3 cache begins
    TRT-100300-EntropyCalibration2 (deployment-facts.md section 7). The 8.x formula gave 13300,
    so no 10.x cache was ever reused."""
    assert trt_version_code("10.3.0.26") == 100300 and trt_version_code("11.1.0") == 110100
    ok, why = cache_matches(b"TRT-100300-EntropyCalibration2\nimage: 3c010a14\n", "10.3.0.26")
    assert ok, why
    ok, why = cache_matches(b"TRT-100300-EntropyCalibration2\n", "8.6.1.6")
    assert not ok and "TensorRT 10.3.0" in why and "8.6.1.6" in why
    ok, why = cache_matches(b"TRT-8601-EntropyCalibration2\n", "10.3.0")
    assert not ok and "TensorRT 8.6.1" in why


class RecordingConfig:
    """Records the timing-cache calls our code makes on an IBuilderConfig (argument lists only;
    what TensorRT does with them is checked on a device)."""

    class Cache:
        def __init__(self, data, calls):
            self.data, self.calls = bytes(data), calls

        def combine(self, other, ignore_mismatch):
            self.calls.append(("combine", other.data, ignore_mismatch))
            self.data = self.data + b"+" + other.data
            return True

        def serialize(self):
            return self.data

    def __init__(self, built=b"new tactics"):
        self.calls, self.built = [], built

    def create_timing_cache(self, data):
        self.calls.append(("create_timing_cache", bytes(data)))
        return self.Cache(data, self.calls)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.calls.append(("set_timing_cache", ignore_mismatch))

    def get_timing_cache(self):
        return self.Cache(self.built, self.calls)


def test_timing_cache_is_set_without_ignoring_mismatches_and_merged_on_save(tmp_path):
    """Polygraphy's habit (backend/trt/config.py): ignore_mismatch=False; what another build saved
    meanwhile is combined, not overwritten (the samples pass ignore_mismatch=True)."""
    from edgepose.export.tensorrt.timing_cache import attach_timing_cache, save_timing_cache

    path = tmp_path / "c.timingcache"
    cfg = RecordingConfig()
    attach_timing_cache(cfg, path)
    assert cfg.calls == [("create_timing_cache", b""), ("set_timing_cache", False)]
    path.write_bytes(b"saved by another build")  # written while this build ran
    save_timing_cache(cfg, path)
    assert ("combine", b"saved by another build", False) in cfg.calls
    assert path.read_bytes() == b"new tactics+saved by another build"


def test_a_rejected_timing_cache_is_reported_and_replaced_by_an_empty_one(tmp_path):
    """Issue 19 defect 6: NvInfer.h 10.3, setTimingCache returns false when it rejects the cache."""
    from edgepose.export.tensorrt.timing_cache import attach_timing_cache, save_timing_cache

    class Rejecting(RecordingConfig):
        def set_timing_cache(self, cache, ignore_mismatch):
            super().set_timing_cache(cache, ignore_mismatch)
            return cache.data == b""  # what another device wrote is refused

    path = tmp_path / "c.timingcache"
    path.write_bytes(b"made on another device")
    cfg, said = Rejecting(), []
    cache = attach_timing_cache(cfg, path, log=said.append)
    assert cfg.calls == [("create_timing_cache", b"made on another device"), ("set_timing_cache", False),
                         ("create_timing_cache", b""), ("set_timing_cache", False)]
    assert cache is not None and cache.data == b"" and "rejected" in said[0]
    save_timing_cache(cfg, path, log=said.append)
    assert path.read_bytes().startswith(b"new tactics")  # the build's own tactics are saved
