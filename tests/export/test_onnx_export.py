"""ONNX export per the model contract: names, dtypes, layouts, parity, batch modes, simplify fallback."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgepose.errors import ConfigError, EdgePoseError
from edgepose.export.onnx_export import NODE_GROUPS, export_onnx, node_groups
from edgepose.export.parity import evaluate_onnx, make_session, torch_outputs

from conftest import SIZE


def _io(path):
    s = make_session(path)
    return ({i.name: (i.type, i.shape) for i in s.get_inputs()}, {o.name: (o.type, o.shape) for o in s.get_outputs()})


def test_uint8_nhwc_contract_and_parity(tiny_onnx, tiny_posenet, val_frames):
    path, info = tiny_onnx
    ins, outs = _io(path)
    W, H = SIZE
    assert ins == {"image": ("tensor(uint8)", [1, H, W, 3])}
    assert list(outs) == ["position", "rotation", "sigma"]
    assert outs["position"] == ("tensor(float)", [1, 3]) and outs["sigma"][1] == [1, 2]
    assert info["batch"] == 1 and info["dynamic"] is None and info["opset"] == 17
    assert info["parity"]["ok"] and info["parity"]["source"] == "synthetic"
    # parity on frames the export never saw, against PoseNet.predict_world (world units)
    images = val_frames[0][:5]
    out, ref = evaluate_onnx(path, images), torch_outputs(tiny_posenet, images)
    assert np.abs(out["position"] - ref["position"]).max() < 1e-4
    assert np.allclose(out["sigma"], ref["sigma"], rtol=1e-4)
    assert np.allclose(np.linalg.norm(out["rotation"], axis=1), 1, atol=1e-5)
    assert np.all(out["rotation"][:, 0] >= 0)
    assert np.abs(out["position"].mean(0) - np.array([50.0, -20.0, 3.0])).max() < 20  # de-normalised (m)


def test_node_groups_name_the_parts(tiny_onnx):
    groups = node_groups(tiny_onnx[0])
    for g in NODE_GROUPS:
        assert groups[g], f"no nodes named for {g}"
    assert groups["other"] == []
    assert "/fc_position/Gemm" in groups["heads"]
    assert any(n.startswith("/post_position/") for n in groups["post"])


def test_float32_nchw_dynamic_batch(trained_posenet, export_dir, val_frames):
    path = export_dir / "f32_dyn.onnx"
    info = export_onnx(trained_posenet, path, input="float32", dynamic=(1, 2, 4), parity_images=val_frames[0][:3])
    ins, outs = _io(path)
    W, H = SIZE
    assert ins["image"][0] == "tensor(float)" and ins["image"][1][1:] == [3, H, W]
    assert isinstance(ins["image"][1][0], str) and isinstance(outs["position"][1][0], str)
    assert info["dynamic"] == [1, 2, 4] and info["parity"]["source"] == "given"
    sess = make_session(path)
    x = val_frames[0][:3].transpose(0, 3, 1, 2).astype(np.float32)
    pos = sess.run(["position"], {"image": x})[0]
    ref = torch_outputs(trained_posenet, val_frames[0][:3])["position"]
    assert pos.shape == (3, 3) and np.abs(pos - ref).max() < 1e-4


def test_simplify_failure_keeps_unsimplified_graph(tiny_posenet, export_dir, monkeypatch):
    import onnxsim

    def broken(*a, **k):
        raise RuntimeError("simulated onnxsim crash")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    path = export_dir / "nosimp.onnx"
    info = export_onnx(tiny_posenet, path)
    assert info["simplified"] is False and "simulated onnxsim crash" in info["simplify_note"]
    onnx.checker.check_model(onnx.load(str(path)))
    assert info["parity"]["ok"]


def test_rejects_bad_options(tiny_posenet, export_dir):
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(tiny_posenet, export_dir / "x.onnx", opset=21)
    with pytest.raises(ConfigError, match="input"):
        export_onnx(tiny_posenet, export_dir / "x.onnx", input="float16")
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        export_onnx(tiny_posenet, export_dir / "x.onnx", dynamic=(4, 2, 8))
    with pytest.raises(EdgePoseError, match="network resolution"):
        export_onnx(tiny_posenet, export_dir / "x.onnx", parity_images=np.zeros((2, 10, 10, 3), np.uint8))
    assert not (export_dir / "x.onnx").exists()
