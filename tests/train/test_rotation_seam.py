"""The rotation loss near the w = 0 seam: sign-invariant value, gradients that shorten the angle.

Oracles: scipy's ``Rotation`` for the angle between two rotations, and the hand formula
``min(|q^ - q|, |q^ + q|)`` for the distance. The cases straddle ``w = 0`` (prediction and truth
on either side of the hemisphere boundary), where a loss that flips the prediction onto
``w >= 0`` before comparing pushes the rotation the long way round.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Rotation = pytest.importorskip("scipy.spatial.transform").Rotation

from edgepose.train import losses as L  # noqa: E402
from edgepose.train.model import PoseNet  # noqa: E402

D = torch.float64


def scipy_angle(q1, q2) -> np.ndarray:
    """Angle (rad) between wxyz quaternions, by scipy (xyzw order)."""
    r1 = Rotation.from_quat(np.asarray(q1)[..., [1, 2, 3, 0]])
    r2 = Rotation.from_quat(np.asarray(q2)[..., [1, 2, 3, 0]])
    return (r1.inv() * r2).magnitude()


def seam_cases(n=200, seed=0):
    """Truth with small positive w, prediction with small negative w, 5-60 degrees apart."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    w = rng.uniform(0.02, 0.3, size=n)
    q_true = np.concatenate([w[:, None], axis * np.sqrt(1 - w**2)[:, None]], 1)
    delta = Rotation.from_rotvec(rng.normal(size=(n, 3)) * np.radians(rng.uniform(5, 60, n))[:, None] / np.sqrt(3))
    q_pred = (Rotation.from_quat(q_true[:, [1, 2, 3, 0]]) * delta).as_quat()[:, [3, 0, 1, 2]]
    q_pred *= np.where(q_pred[:, :1] > 0, -1.0, 1.0)  # the prediction on w <= 0
    keep = (q_pred[:, 0] < -1e-3)
    return q_true[keep], q_pred[keep]


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_rotation_term_is_the_sign_invariant_distance(norm):
    q_true, q_pred = seam_cases()
    pred = {"position": torch.zeros(len(q_true), 3, dtype=D), "rotation": torch.tensor(q_pred, dtype=D)}
    batch = {"position": torch.zeros(len(q_true), 3, dtype=D), "rotation": torch.tensor(q_true, dtype=D)}
    _, lq = L.pose_terms(pred, batch, norm)
    ordn = 1 if norm == "l1" else 2
    expect = np.minimum(np.linalg.norm(q_pred - q_true, ord=ordn, axis=1),
                        np.linalg.norm(q_pred + q_true, ord=ordn, axis=1))
    np.testing.assert_allclose(lq.numpy(), expect, rtol=1e-12)
    # and flipping either quaternion changes nothing
    _, lq_flip = L.pose_terms({**pred, "rotation": -pred["rotation"]}, batch, norm)
    np.testing.assert_allclose(lq_flip.numpy(), expect, rtol=1e-12)


@pytest.mark.parametrize("loss_name", ["beta", "learned"])
def test_gradient_step_shortens_the_rotation_angle_on_the_seam(loss_name):
    q_true, q_pred = seam_cases()
    before = scipy_angle(q_pred, q_true)
    q = torch.tensor(q_pred, dtype=D, requires_grad=True)
    loss_fn = L.build_loss(loss_name, norm="l1").double()
    batch = {"position": torch.zeros(len(q_true), 3, dtype=D), "rotation": torch.tensor(q_true, dtype=D)}
    loss, _ = loss_fn({"position": torch.zeros(len(q_true), 3, dtype=D), "rotation": q}, batch)
    (g,) = torch.autograd.grad(loss, q)
    step = q.detach() - 1e-3 * g / g.norm(dim=1, keepdim=True)
    after = scipy_angle(step.numpy(), q_true)
    assert np.all(after < before), f"{np.sum(after >= before)} of {len(before)} steps turned the long way"


def test_posenet_training_step_shortens_the_angle_through_the_model():
    """End to end through PoseNet.forward: one SGD step on the rotation head's bias brings a
    prediction that sits across the seam from the truth closer to it."""
    torch.manual_seed(0)
    model = PoseNet(pretrained="none", input_size=(32, 32), hidden=16).double().eval()
    q_true = np.array([[0.06, 0.74, 0.538, -0.399]])  # 13 degrees apart, across w = 0
    q_true /= np.linalg.norm(q_true)
    start = np.array([-0.01, 0.737, 0.59, -0.329])
    with torch.no_grad():
        model.fc_rotation.weight.zero_()
        model.fc_rotation.bias.copy_(torch.tensor(start, dtype=D))
    image = torch.zeros(1, 32, 32, 3, dtype=D)
    batch = {"position": torch.zeros(1, 3, dtype=D), "rotation": torch.tensor(q_true, dtype=D)}
    loss_fn = L.build_loss("learned").double()

    def angle():
        with torch.no_grad():
            _, q, _ = model.to_world(model(image))
        assert q[0, 0] >= 0  # outputs stay canonical
        return float(scipy_angle(q.numpy(), q_true)[0])

    before = angle()
    loss, _ = loss_fn(model(image), batch)
    loss.backward()
    with torch.no_grad():
        g = model.fc_rotation.bias.grad
        model.fc_rotation.bias -= 1e-3 * g / g.norm()
    assert angle() < before
