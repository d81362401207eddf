"""A QAT model's fake quantization (torch.ao) and the Q/DQ graph the exporter writes from its
ranges compute the same thing: checked tensor by tensor against ONNX Runtime running the Q/DQ
graph in float (the oracle is torch's own fake-quantize kernels, not our writer)."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgepose.export.graph_lint import lint_model  # noqa: E402
from edgepose.export.onnx_export import export_onnx  # noqa: E402
from edgepose.export.int8.qat import quantize_from_qat  # noqa: E402
from edgepose.train import qat  # noqa: E402
from edgepose.train.model import PoseNet  # noqa: E402


@pytest.fixture(scope="module")
def qat_pair(trained_posenet, calib_frames, val_frames, export_dir):
    model = copy.deepcopy(trained_posenet).eval()
    template = {k: v.clone() for k, v in model.state_dict().items()}
    qat.prepare_qat(model)
    qat.calibrate(model, torch.from_numpy(calib_frames))
    ckpt = {"qat": qat.qat_export_info(model)}
    fl = PoseNet("efficientnet_lite0", "none", input_size=tuple(model.config["input_size"]),
                 hidden=model.config["hidden"], dropout=0.0, position_mean=model.config["position_mean"],
                 position_scale=model.config["position_scale"])
    fl.load_state_dict(qat.float_state_dict(model, template))
    f32 = export_dir / "qat.fp32.onnx"
    export_onnx(fl.eval(), f32)
    info = quantize_from_qat(f32, export_dir / "qat.int8.onnx", ckpt)
    return model, export_dir / "qat.int8.onnx", info


def _intermediates(model, image):
    feats = {}

    class Rec(torch.fx.Interpreter):
        def run_node(self, n):
            feats[n.name] = out = super().run_node(n)
            return out

    with torch.no_grad():
        Rec(model.backbone).run(model.normalize_input(torch.from_numpy(image)))
    return feats


def test_qdq_graph_from_qat_ranges_matches_torch_fake_quant_layer_by_layer(qat_pair, val_frames):
    model, path, info = qat_pair
    assert info["method"] == "qat" and info["frames"] == 0  # no calibration at export
    m = onnx.load(str(path))
    clips = [n.output[0] for n in m.graph.node if n.op_type in ("Clip", "Add") and n.name.startswith("/backbone")]
    for name in clips:
        m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    image = val_frames[0][:1]
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": image})))
    feats = _intermediates(model, image)
    torch_names = [k for k in feats if not k.startswith("qat") and
                   (k.split("_")[-1] == "act" or "_act_" in k or k.endswith("_act") or k.startswith("add"))]
    assert len(torch_names) == len(clips) > 30
    for onnx_name, torch_name in zip(clips, torch_names):
        a, b = outs[onnx_name], feats[torch_name].numpy()
        step = np.abs(b).max() / 127 + 1e-12
        # equal up to a rare rounding flip (BatchNorm folding reorders float products)
        assert np.mean(np.abs(a - b) > 1e-5 * max(1.0, np.abs(b).max())) < 0.01, (onnx_name, torch_name)
        assert np.abs(a - b).max() < 4 * step, (onnx_name, torch_name)


def test_qat_graph_passes_the_tensorrt_lint(qat_pair):
    _, path, _ = qat_pair
    found = lint_model(onnx.load(str(path)))
    assert not found, [str(v) for v in found]
