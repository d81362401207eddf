"""Rotation heads without the quaternion's sign seam (6-D, log quaternion) against scipy.

Oracles: scipy's ``Rotation`` (matrices, rotation vectors, quaternions) and hand-worked
cases; the model and its ONNX graph (ONNX Runtime) must agree, and a gradient step through a
6-D head shortens the angle to a target 180 degrees away (where a quaternion head's output
crosses ``w = 0``).
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Rotation = pytest.importorskip("scipy.spatial.transform").Rotation

from edgepose.geometry import rotation_error_deg  # noqa: E402
from edgepose.train.model import PoseNet, load_model  # noqa: E402
from edgepose.train.checkpoint import save_checkpoint  # noqa: E402
from edgepose.train.rotation_head import (decode_rotation, log_to_quaternion, matrix_to_quaternion,  # noqa: E402
                                          sixd_to_matrix)

D = torch.float64


def _wxyz(r: Rotation) -> np.ndarray:
    return r.as_quat()[:, [3, 0, 1, 2]]


def _angle_deg(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    return np.degrees((Rotation.from_quat(q1[:, [1, 2, 3, 0]]).inv() * Rotation.from_quat(q2[:, [1, 2, 3, 0]])).magnitude())


def _hard_rotations(n=500, seed=0) -> Rotation:
    """Random rotations plus the cases that break naive conversions: identity, 180 degrees
    about each axis and about oblique axes (w = 0), and near them."""
    rng = np.random.default_rng(seed)
    axes = np.vstack([np.eye(3), rng.normal(size=(20, 3))])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    special = np.vstack([np.zeros((1, 3)), axes * np.pi, axes * (np.pi - 1e-4), axes * 1e-7])
    return Rotation.concatenate([Rotation.random(n, random_state=seed), Rotation.from_rotvec(special)])


def test_matrix_to_quaternion_matches_scipy_everywhere_including_180_degrees():
    rots = _hard_rotations()
    q = matrix_to_quaternion(torch.tensor(rots.as_matrix(), dtype=D)).numpy()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    assert _angle_deg(q, _wxyz(rots)).max() < 1e-6


def test_six_d_gram_schmidt_recovers_the_matrix_from_its_two_columns_even_scaled_and_skewed():
    rots = _hard_rotations(seed=1)
    R = rots.as_matrix()
    rng = np.random.default_rng(2)
    a = R[:, :, 0] * rng.uniform(0.1, 10, (len(R), 1))                   # any length
    b = R[:, :, 1] * rng.uniform(0.1, 10, (len(R), 1)) + a * rng.normal(size=(len(R), 1))  # plus some of a
    got = sixd_to_matrix(torch.tensor(np.hstack([a, b]), dtype=D)).numpy()
    np.testing.assert_allclose(got, R, atol=1e-9)
    q = decode_rotation(torch.tensor(np.hstack([a, b]), dtype=D), "6d").numpy()
    assert _angle_deg(q, _wxyz(rots)).max() < 1e-6


def test_log_quaternion_is_half_the_rotation_vector_and_finite_at_zero():
    rots = _hard_rotations(seed=3)
    u = rots.as_rotvec() / 2.0
    q = log_to_quaternion(torch.tensor(u, dtype=D)).numpy()
    assert _angle_deg(q, _wxyz(rots)).max() < 1e-6
    # hand-worked: 90 degrees about z is u = (0, 0, pi/4) -> (cos pi/4, 0, 0, sin pi/4)
    q90 = log_to_quaternion(torch.tensor([[0.0, 0.0, np.pi / 4]], dtype=D)).numpy()
    np.testing.assert_allclose(q90, [[np.sqrt(0.5), 0, 0, np.sqrt(0.5)]], atol=1e-12)
    u0 = torch.zeros(2, 3, dtype=D, requires_grad=True)
    q0 = log_to_quaternion(u0)
    (g,) = torch.autograd.grad((q0 * torch.tensor([[0.3, 1.0, -2.0, 0.5]], dtype=D)).sum(), u0)
    np.testing.assert_allclose(q0.detach().numpy(), [[1, 0, 0, 0]] * 2, atol=1e-12)
    np.testing.assert_allclose(g.numpy(), [[1.0, -2.0, 0.5]] * 2, atol=1e-9)  # dq_xyz/du = I at 0


@pytest.mark.parametrize("kind", ["6d", "log"])
def test_a_gradient_step_through_the_head_shortens_the_angle_across_the_old_seam(kind):
    """A target near 180 degrees from the prediction about random axes (the quaternion head's
    hemisphere boundary): the model's rotation angle to it falls after one SGD step."""
    from edgepose.train import losses as L

    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    model = PoseNet(pretrained="none", input_size=(32, 32), hidden=16, rotation_head=kind).double().eval()
    model.requires_grad_(False)  # the step moves the head's bias alone: no backward through the backbone
    model.fc_rotation.bias.requires_grad_(True)
    # the L2 chord |q^ -+ q| is a monotonic function of the angle (2 sin(angle / 4)), so a small
    # step that lowers it must lower the angle; the L1 default lowers the L1 distance instead
    loss_fn = L.build_loss("learned", norm="l2").double()
    image = torch.zeros(1, 32, 32, 3, dtype=D)
    worse = 0
    for _ in range(20):
        start = Rotation.from_rotvec(rng.normal(size=3))
        target = start * Rotation.from_rotvec(_unit(rng.normal(size=3)) * np.radians(rng.uniform(150, 175)))
        with torch.no_grad():
            model.fc_rotation.weight.zero_()
            raw = (np.hstack([start.as_matrix()[:, 0], start.as_matrix()[:, 1]]) if kind == "6d"
                   else start.as_rotvec() / 2.0)
            model.fc_rotation.bias.copy_(torch.tensor(raw, dtype=D))
        q_true = _wxyz(Rotation.concatenate([target]))

        def angle():
            with torch.no_grad():
                _, q, _ = model.to_world(model(image))
            assert q[0, 0] >= 0
            return float(_angle_deg(q.numpy(), q_true)[0])

        before = angle()
        model.zero_grad()
        loss, _ = loss_fn(model(image), {"position": torch.zeros(1, 3, dtype=D), "rotation": torch.tensor(q_true)})
        loss.backward()
        with torch.no_grad():
            g = model.fc_rotation.bias.grad
            model.fc_rotation.bias -= 1e-3 * g / g.norm()
        worse += angle() >= before
    assert worse == 0


def _unit(v):
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("kind", ["6d", "log"])
def test_model_checkpoint_and_onnx_graph_agree_for_each_head(tmp_path, kind):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from edgepose.export.onnx_export import export_onnx, node_groups

    torch.manual_seed(0)
    model = PoseNet(pretrained="none", input_size=(48, 32), hidden=32, rotation_head=kind,
                    position_mean=(5.0, -2.0, 1.0), position_scale=2.0).eval()
    with torch.no_grad():
        model.fc_rotation.weight.mul_(30.0)  # spread the outputs over many rotations
    save_checkpoint(tmp_path / "m.pt", {"config": model.config, "model": model.state_dict()})
    back = load_model(tmp_path / "m.pt")
    assert back.rotation_head == kind and back.fc_rotation.out_features == {"6d": 6, "log": 3}[kind]
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 32, 48, 3), dtype=np.uint8))
    p, q, s = back.predict_world(x)
    assert (q[:, 0] >= 0).all()
    info = export_onnx(back, tmp_path / "m.onnx", batch=6)
    groups = node_groups(str(tmp_path / "m.onnx"))
    assert any(n.startswith("/post_decode/") for n in groups["post"]), groups["post"][:5]
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    op, oq, os_ = sess.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(op, p.numpy(), atol=1e-4)
    assert rotation_error_deg(oq.astype(np.float64), q.numpy().astype(np.float64)).max() < 1e-3
    assert (oq[:, 0] >= 0).all()
    np.testing.assert_allclose(os_, s.numpy(), rtol=1e-5)
    assert info is not None
