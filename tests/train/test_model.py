"""PoseNet: the input contract, world units from hand-set heads, the output contract, and
checkpoints that load back into the same function."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgepose.errors import EdgePoseError  # noqa: E402
from edgepose.train.checkpoint import save_checkpoint  # noqa: E402
from edgepose.train.model import PoseNet, load_model, model_from_config  # noqa: E402

SIZE = (32, 24)


def _model(**kw):
    torch.manual_seed(0)
    args = dict(pretrained="none", input_size=SIZE, hidden=16, position_mean=(1.0, -2.0, 0.5), position_scale=2.0)
    args.update(kw)
    return PoseNet("mobilenet_v3_small", **args).eval()


def _images(n=2, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, SIZE[1], SIZE[0], 3), dtype=np.uint8))


def test_uint8_and_float_0_255_inputs_are_the_same_and_other_shapes_are_refused():
    m = _model()
    x = _images()
    a, b = m(x), m(x.float())
    for k in ("position", "rotation", "log_sigma"):
        torch.testing.assert_close(a[k], b[k])
    assert a["position"].shape == (2, 3) and a["rotation"].shape == (2, 4) and a["log_sigma"].shape == (2, 2)
    with pytest.raises(EdgePoseError, match=r"expects images \(N, H, W, 3\); got \(2, 3, 24, 32\)"):
        m(x.permute(0, 3, 1, 2))


def test_world_units_from_hand_set_heads():
    # zero weights make every head output its bias: the world values follow by hand
    m = _model()
    with torch.no_grad():
        for head in (m.fc_position, m.fc_rotation, m.fc_log_sigma):
            head.weight.zero_()
        m.fc_position.bias.copy_(torch.tensor([0.5, -1.0, 0.25]))
        m.fc_rotation.bias.copy_(torch.tensor([-1.0, 1.0, 1.0, 1.0]))  # unit: (-.5,.5,.5,.5), w < 0
        m.fc_log_sigma.bias.copy_(torch.tensor([math.log(0.1), math.log(0.05)]))
    pos, rot, sig = m.predict_world(_images(3))
    # position = mean + scale * normalised = (1, -2, .5) + 2 * (.5, -1, .25)
    np.testing.assert_allclose(pos.numpy(), [[2.0, -4.0, 1.0]] * 3, atol=1e-6)
    # the same rotation as (-.5,.5,.5,.5), on the w >= 0 hemisphere, in wxyz order
    np.testing.assert_allclose(rot.numpy(), [[0.5, -0.5, -0.5, -0.5]] * 3, atol=1e-6)
    # sigma = [exp(log s_p) * scale m, exp(log s_r) rad]
    np.testing.assert_allclose(sig.numpy(), [[0.2, 0.05]] * 3, rtol=1e-6)
    assert m.training is False


def test_to_world_puts_any_rotation_on_the_w_nonnegative_hemisphere():
    Rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    m = _model()
    q = np.random.default_rng(4).standard_normal((64, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    assert (q[:, 0] < 0).sum() > 10  # both hemispheres
    out = {"position": torch.zeros(64, 3), "rotation": torch.from_numpy(q).float(), "log_sigma": torch.zeros(64, 2)}
    _, rot, sig = m.to_world(out)
    r = rot.numpy().astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, atol=1e-6)
    assert np.all(r[:, 0] >= 0)
    # the same rotations (scipy takes xyzw): the flip changed the sign only, not the rotation
    np.testing.assert_allclose(Rotation.from_quat(r[:, [1, 2, 3, 0]]).as_matrix(),
                               Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix(), atol=1e-5)
    np.testing.assert_allclose(sig.numpy(), [[2.0, 1.0]] * 64, rtol=1e-6)  # exp(0) * [scale, 1]


def test_a_checkpoint_loads_back_into_the_same_function(tmp_path):
    m = _model()
    path = save_checkpoint(tmp_path / "model.pt", {"config": m.config, "model": m.state_dict()})
    back = load_model(path)
    assert back.training is False and back.config == m.config
    x = _images(3, seed=2)
    for a, b in zip(m.predict_world(x), back.predict_world(x)):
        torch.testing.assert_close(a, b)
    with pytest.raises(EdgePoseError, match="lacks"):
        model_from_config({"backbone": "resnet18"})
    with pytest.raises(EdgePoseError, match="unknown to this edgepose"):
        model_from_config({**m.config, "backbone": "vgg16"})
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EdgePoseError):
        load_model(tmp_path / "broken.pt")
