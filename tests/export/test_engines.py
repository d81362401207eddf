"""``export/tensorrt/engines.py`` where TensorRT is absent: what ``--engine`` auto/yes/no do, and the
commands printed for the Jetson (ours and trtexec's). Building engines needs TensorRT and a
GPU (``tests/export/test_tensorrt_build.py``); nothing here pretends to have them."""
from __future__ import annotations

import shlex

import pytest

from edgepose.bundle import InputSpec
from edgepose.export.tensorrt.engines import TensorRTUnavailableError, jetson_instructions, require_tensorrt


def no_tensorrt():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return
    pytest.skip("TensorRT is installed here: these tests cover its absence")


def test_engine_modes_without_tensorrt():
    no_tensorrt()
    assert require_tensorrt("no", "b", ["fp16"]) is None
    assert require_tensorrt("auto", "b", ["fp16"]) is None
    with pytest.raises(TensorRTUnavailableError) as e:
        require_tensorrt("yes", "bundles/my b", ["fp16", "int8"])
    text = str(e.value)
    assert "'tensorrt' is not importable" in text
    assert "edgepose-export bundles/my b --precision fp16,int8 --engine yes" in text and "--engine auto" in text


def test_jetson_commands_name_the_bundle_precisions_and_options():
    spec = InputSpec.for_model("uint8", (32, 24), (1, 4, 8), dynamic=True).to_manifest()
    text = jetson_instructions("bundles/my b", ["fp16", "int8"], spec, int8_mode="calibrator", dla_core=1,
                               workspace_gb=2.0)
    q = shlex.quote("bundles/my b")
    ours = next(line.strip() for line in text.splitlines() if line.strip().startswith("edgepose-export"))
    assert ours == f"edgepose-export {q} --precision fp16,int8 --engine yes --dla-core 1 --int8-engine calibrator"
    trtexec = [line.strip() for line in text.splitlines() if line.strip().startswith("trtexec")]
    assert len(trtexec) == 2  # one per precision
    fp16, int8 = trtexec
    # TensorRT 8.x: FP16 from the FP16 graph (whose drift the manifest records) with the flag; INT8 from Q/DQ
    assert f"--onnx={q}/model.fp16.onnx" in fp16 and "--fp16" in fp16 and f"--saveEngine={q}/model.fp16.engine" in fp16
    assert f"--onnx={q}/model.int8.onnx" in int8 and "--int8" in int8
    for line in trtexec:
        assert "--minShapes=image:1x24x32x3" in line and "--optShapes=image:4x24x32x3" in line
        assert "--maxShapes=image:8x24x32x3" in line and "--memPoolSize=workspace:2048M" in line


def test_fixed_batch_commands_carry_no_shape_flags():
    spec = InputSpec.for_model("float32", (32, 24)).to_manifest()
    text = jetson_instructions("b", ["fp32"], spec)
    line = next(line for line in text.splitlines() if "trtexec --onnx" in line)
    assert "Shapes" not in line and "--fp16" not in line and "--int8" not in line
    assert "--int8-engine" not in text and "--dla-core" not in text
