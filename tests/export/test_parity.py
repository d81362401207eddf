"""``export/parity.py``: running graphs in ONNX Runtime and comparing outputs.

The graphs are the runtime's synthetic network (real ONNX, real ORT sessions); the oracle for
their outputs is that network written from its description with scipy
(``tests/synthetic_oracle.py``), and the comparisons are checked on hand-worked poses.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from edgepose.errors import ConfigError, EdgePoseError  # noqa: E402
from edgepose.export.parity import (check_parity, compare_outputs, evaluate_onnx, evaluate_onnx_model,  # noqa: E402
                                    make_session)
from synthetic_bundles import build_graph, make_params  # noqa: E402
from synthetic_oracle import synthetic_forward  # noqa: E402  (tests/ is on sys.path: its conftest.py)

SIZE = (20, 16)  # (W, H)


def frames(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE[1], SIZE[0], 3), dtype=np.uint8)


def fixed_batch(model, n):
    """The same graph with its batch axis fixed to ``n``."""
    for v in list(model.graph.input) + list(model.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = n
    return model


@pytest.mark.parametrize("layout,batch", [("NHWC", None), ("NHWC", 1), ("NHWC", 2), ("NCHW", 1)])
def test_outputs_match_the_numpy_network_whatever_the_batching(tmp_path, layout, batch):
    """5 frames through a dynamic graph in chunks of 2, fixed batch-1 and batch-2 graphs (the
    last chunk padded, the padding dropped), and a float32 NCHW graph (frames transposed and
    cast by run_session)."""
    params = make_params(channels=4, seed=1)
    path = tmp_path / "m.onnx"
    model = build_graph(params, SIZE, layout, dynamic_batch=batch is None)
    onnx.save(fixed_batch(model, batch) if batch else model, str(path))
    images = frames(5)
    out = evaluate_onnx(path, images, optimization="disable", batch_size=2)
    pos, rot, sig = synthetic_forward(params, images)
    assert out["position"].shape == (5, 3) and out["position"].dtype == np.float64
    np.testing.assert_allclose(out["position"], pos, atol=1e-4)
    np.testing.assert_allclose(out["rotation"], rot, atol=1e-5)
    np.testing.assert_allclose(out["sigma"], sig, rtol=1e-4)


def test_model_proto_bytes_and_path_give_the_same_outputs(tmp_path):
    model = build_graph(make_params(channels=4), SIZE)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    images = frames(3, seed=2)
    a = evaluate_onnx(path, images)
    for src in (model, model.SerializeToString()):
        b = evaluate_onnx_model(src, images)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_compare_outputs_hand_worked():
    s45 = np.sqrt(0.5)
    a = {"position": np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),
         "rotation": np.array([[1.0, 0.0, 0.0, 0.0], [s45, 0.0, 0.0, s45]]),
         "sigma": np.array([[1.0, 0.1], [2.0, 0.2]])}
    b = {"position": np.array([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]]),
         "rotation": np.array([[1.0, 0.0, 0.0, 0.0], [-s45, 0.0, 0.0, -s45]]),  # -q: the same rotation
         "sigma": np.array([[1.0, 0.1], [1.0, 0.2]])}
    d = compare_outputs(a, b)
    assert d["max_position_m"] == pytest.approx(5.0)
    assert d["max_rotation_deg"] == pytest.approx(0.0, abs=1e-6)
    assert d["max_sigma_rel"] == pytest.approx(1.0)  # |2 - 1| / 1
    b["rotation"][0] = [s45, 0.0, 0.0, s45]  # 90 degrees about z
    assert compare_outputs(a, b)["max_rotation_deg"] == pytest.approx(90.0)
    with pytest.raises(EdgePoseError, match=r"position differ|differ: position 5"):
        check_parity(a, b, position_m=1.0, rotation_deg=180.0, what="test graphs")
    assert check_parity(a, a)["max_position_m"] == 0.0


def test_compare_outputs_refuses_mismatched_outputs():
    a = {"position": np.zeros((2, 3)), "rotation": np.tile([1.0, 0, 0, 0], (2, 1)), "sigma": np.ones((2, 2))}
    with pytest.raises(EdgePoseError, match="lack 'sigma'"):
        compare_outputs(a, {k: v for k, v in a.items() if k != "sigma"})
    with pytest.raises(EdgePoseError, match="shapes differ"):
        compare_outputs(a, dict(a, position=np.zeros((3, 3))))


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(EdgePoseError, match="ONNX file not found") as e:
        make_session(tmp_path / "missing.onnx")
    assert "edgepose-export" in str(e.value)
    with pytest.raises(ConfigError, match="optimization"):
        make_session(build_graph(make_params(channels=4), SIZE), optimization="fast")
    path = tmp_path / "m.onnx"
    onnx.save(build_graph(make_params(channels=4), SIZE), str(path))
    with pytest.raises(EdgePoseError, match=r"uint8 \(N, H, W, 3\)"):
        evaluate_onnx(path, np.zeros((2, 3, SIZE[1], SIZE[0]), np.uint8))
