"""The pose memory (retrieval of training views inside the model) against a numpy oracle,
hand-worked cases, checkpoints, the fit on validation frames, and the exported ONNX graph
(real ONNX Runtime sessions, FP32 and FP16)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgepose.geometry import quat_canonical, rotation_error_deg  # noqa: E402
from edgepose.train.checkpoint import save_checkpoint  # noqa: E402
from edgepose.train.data import FrameCache  # noqa: E402
from edgepose.train.memory_fit import extend_memory, fc_features, fit_memory  # noqa: E402
from edgepose.train.model import PoseNet, load_model  # noqa: E402
from edgepose.train.pose_memory import PoseMemory  # noqa: E402

SIZE = (32, 32)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def oracle_lookup(feats, pos, rot, query, k, t):
    """Brute force, one query at a time, in float64."""
    f, qf = _unit(feats.astype(np.float64)), _unit(query.astype(np.float64))
    out_p, out_q = [], []
    for v in qf:
        sim = f @ v
        order = np.argsort(-sim, kind="stable")[:k]
        w = np.exp((sim[order] - sim[order[0]]) / t)
        w /= w.sum()
        qs = rot[order].astype(np.float64)
        qs = qs * np.where(qs @ qs[0] < 0, -1.0, 1.0)[:, None]
        out_p.append(w @ pos[order])
        out_q.append(_unit(w @ qs))
    return np.array(out_p), np.array(out_q)


def _memory(n=12, dim=6, k=3, t=0.05, seed=0):
    r = _rng(seed)
    feats = r.normal(size=(n, dim)).astype(np.float32)
    pos = r.normal(size=(n, 3)).astype(np.float32)
    rot = _unit(r.normal(size=(n, 4))).astype(np.float32)
    m = PoseMemory(0, dim)
    m.store(torch.from_numpy(feats), torch.from_numpy(pos), torch.from_numpy(rot), k)
    m.temperature.fill_(t)
    return m.eval(), feats, pos, rot


@pytest.mark.parametrize("k,t", [(1, 0.01), (3, 0.05), (5, 1e3)])
def test_lookup_matches_a_brute_force_oracle(k, t):
    m, feats, pos, rot = _memory(k=k, t=t)
    query = _rng(1).normal(size=(7, feats.shape[1])).astype(np.float32)
    p, q, _ = m.lookup(torch.from_numpy(query))
    op, oq = oracle_lookup(feats, pos, rot, query, k, t)
    np.testing.assert_allclose(p.numpy(), op, atol=1e-5)
    np.testing.assert_allclose(np.abs((q.numpy() * oq).sum(1)), 1.0, atol=1e-6)  # same rotation (q ~ -q)


def test_hand_worked_two_views_average_on_one_hemisphere():
    # two views at x = 0 and x = 2 whose stored quaternions are the same rotation with opposite signs
    m = PoseMemory(0, 2)
    q = np.array([0.9, 0.1, 0.3, 0.3]) / np.linalg.norm([0.9, 0.1, 0.3, 0.3])
    m.store(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 0, 0], [2.0, 0, 0]]),
            torch.tensor(np.stack([q, -q]), dtype=torch.float32), k=2)
    p, rot, best = m.eval().lookup(torch.tensor([[3.0, 0.0]]))
    np.testing.assert_allclose(p.numpy(), [[1.0, 0.0, 0.0]], atol=1e-6)  # equal similarity: the midpoint
    assert abs(abs(float(rot[0] @ torch.tensor(q, dtype=torch.float32))) - 1.0) < 1e-6  # not a cancelled zero
    assert abs(float(best[0]) - 1.0) < 1e-6


def _model(**kw):
    torch.manual_seed(0)
    model = PoseNet("mobilenet_v3_small", pretrained="none", input_size=SIZE, hidden=16, position_scale=2.0, **kw)
    with torch.no_grad():  # an untrained FC maps every image to ~ReLU(bias): spread the features out
        model.fc[0].bias.zero_()
        model.fc[0].weight.mul_(50.0)
    return model.eval()


def _images(n, seed=0):
    return torch.from_numpy(_rng(seed).integers(0, 256, (n, SIZE[1], SIZE[0], 3), dtype=np.uint8))


def _filled(model, n=10, blend=(1.0, 1.0), disagreement=(0.0, 0.0)):
    x = _images(n, seed=5)
    r = _rng(2)
    model.memory.store(fc_features(model, x, torch.device("cpu")), torch.from_numpy(r.normal(size=(n, 3))).float(),
                       torch.from_numpy(_unit(r.normal(size=(n, 4)))).float(), k=1)
    model.memory.blend.copy_(torch.tensor(blend))
    model.memory.disagreement.copy_(torch.tensor(disagreement))
    model.config.update(memory_size=model.memory.size, memory_k=model.memory.k)
    return x


def test_blend_one_answers_the_stored_pose_of_the_same_image_and_training_mode_ignores_the_memory():
    model = _model()
    x = _filled(model)
    p, q, _ = model.predict_world(x)
    want_p = model.memory.position.double() * 2.0  # normalised -> metres (scale 2, mean 0)
    np.testing.assert_allclose(p.double().numpy(), want_p.numpy(), atol=1e-5)
    err = rotation_error_deg(q.double().numpy(), model.memory.rotation.double().numpy())
    assert err.max() < 1e-3
    model.train()
    torch.manual_seed(1)
    out = model(x[:4])
    torch.manual_seed(1)
    bare = model.heads(model.forward_features(model.normalize_input(x[:4])))  # the regressor alone
    model.eval()
    np.testing.assert_allclose(out["position"].detach().numpy(), bare["position"].detach().numpy(), atol=1e-6)


def test_blend_zero_is_the_regressor_and_sigma_grows_with_disagreement():
    model = _model()
    x = _images(4, seed=9)
    p0, q0, s0 = model.predict_world(x)
    _filled(model, blend=(0.0, 0.0))
    p1, q1, s1 = model.predict_world(x)
    np.testing.assert_allclose(p1.numpy(), p0.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.abs((q1.numpy() * q0.numpy()).sum(1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(s1.numpy(), s0.numpy(), rtol=1e-5)
    model.memory.disagreement.fill_(1.0)
    with torch.no_grad():
        p_mem, _, _ = model.memory.lookup(model.forward_features(model.normalize_input(x)))
    d = np.linalg.norm(p_mem.numpy() * 2.0 - p0.numpy(), axis=1)  # metres
    _, _, s2 = model.predict_world(x)
    np.testing.assert_allclose(s2[:, 0].numpy(), np.hypot(s0[:, 0].numpy(), d), rtol=1e-4)


def test_a_model_with_a_memory_loads_back_and_old_checkpoints_load_without_one(tmp_path):
    model = _model()
    x = _filled(model, blend=(0.5, 0.25), disagreement=(1.0, 2.0))
    save_checkpoint(tmp_path / "m.pt", {"config": model.config, "model": model.state_dict()})
    back = load_model(tmp_path / "m.pt")
    for a, b in zip(model.predict_world(x), back.predict_world(x)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    old = _model()
    state = {k: v for k, v in old.state_dict().items() if not k.startswith("memory.")}
    config = {k: v for k, v in old.config.items() if not k.startswith("memory_")}
    save_checkpoint(tmp_path / "old.pt", {"config": config, "model": state})
    assert load_model(tmp_path / "old.pt").memory.size == 0


def _cache(images, position, rotation, sequence=None):
    n = len(images)
    return FrameCache(images=images, position=torch.from_numpy(position / 2.0).float(),
                      rotation=torch.from_numpy(rotation).float(), K=torch.eye(3).repeat(n, 1, 1),
                      points=torch.zeros(n, 1, 3), points_mask=torch.zeros(n, 1, dtype=torch.bool),
                      position_m=position, rotation_q=rotation,
                      sequence=None if sequence is None else np.array(sequence, dtype=object))


def test_fit_chooses_the_memory_when_validation_views_are_training_views_and_keeps_val_out_until_extended(monkeypatch):
    # validation frames are exact copies of training frames: a one-neighbour memory answers them
    # exactly, the untrained regressor does not, so the fit must choose blend 1 for both outputs
    from edgepose.train import memory_fit

    monkeypatch.setattr(memory_fit, "K_GRID", (1,))
    model = _model()
    r = _rng(3)
    imgs = _images(16, seed=11)
    pos = r.normal(scale=2.0, size=(16, 3))
    rot = quat_canonical(_unit(r.normal(size=(16, 4))))
    fit = _cache(imgs[:12], pos[:12], rot[:12])
    val = _cache(imgs[[1, 4, 7, 9, 10, 2, 3, 5]], pos[[1, 4, 7, 9, 10, 2, 3, 5]], rot[[1, 4, 7, 9, 10, 2, 3, 5]])
    info, answers = fit_memory(model, fit, val, torch.device("cpu"), size=4096)
    assert info["blend"] == [1.0, 1.0] and info["k"] >= 1
    assert model.memory.blend.tolist() == info["blend"] and model.memory.disagreement.tolist() == info["disagreement"]
    assert info["val"]["memory_median_position_m"] < 1e-4 < info["val"]["regressor_median_position_m"]
    assert model.memory.size == 12
    assert extend_memory(model, [fit, val], torch.device("cpu")) == 20
    assert model.config["memory_size"] == 20
    model.memory.blend.zero_()
    # the calibration's frames: the 8 validation frames (answered exactly), then, since the memory
    # answers alone, each of the 12 fit frames answered by the other 11 (all views differ: not exact)
    (e_p, s_p), (e_q, s_q) = answers
    assert len(e_p) == len(s_p) == len(e_q) == len(s_q) == 8 + 12
    assert np.max(e_p[:8]) < 1e-4 < np.min(e_p[8:]) and np.max(e_q[:8]) < 1e-3 < np.min(e_q[8:])
    assert np.all(s_p > 0) and np.all(s_q > 0)
    assert fit_memory(model, fit, None, torch.device("cpu"))[0]["size"] == 0 and model.memory.size == 0
    assert fit_memory(model, fit, val, torch.device("cpu"), size=0) == ({"size": 0, "method": "off (--memory-size 0)"}, None)


def test_when_test_is_other_sequences_the_validation_choice_is_raised_to_the_floor(monkeypatch):
    # a grid of only 0 makes the choice "regressor alone": with the test split on other
    # sequences that choice is a lower bound and becomes 0.5 per output, whether made on 8
    # validation frames or (on 7) on the out-of-fold answers; on a split like validation's it stays
    from edgepose.train import memory_fit

    monkeypatch.setattr(memory_fit, "BLEND_GRID", (0.0,))
    monkeypatch.setattr(memory_fit, "K_GRID", (1,))
    r = _rng(3)
    imgs = _images(16, seed=11)
    pos = r.normal(scale=2.0, size=(16, 3))
    rot = quat_canonical(_unit(r.normal(size=(16, 4))))
    fit = _cache(imgs[:12], pos[:12], rot[:12])
    rows = [1, 4, 7, 9, 10, 2, 3, 5]
    for n_val, same, want in ((8, True, 0.5), (8, False, 0.0), (7, True, 0.5), (7, False, 0.0)):
        model = _model()
        val = _cache(imgs[rows[:n_val]], pos[rows[:n_val]], rot[rows[:n_val]])
        info, _ = fit_memory(model, fit, val, torch.device("cpu"), same_sequence_out=same)
        assert info["blend"] == [want, want] and model.memory.blend.tolist() == [want, want], (n_val, same)
        assert ("at least 0.5" in info["method"]) == (want == 0.5)


def test_validation_frames_are_not_answered_from_their_own_sequence_when_test_is_other_sequences(monkeypatch):
    # validation frames copy fit frames of sequence "a": answered from "a" they are exact, which
    # test frames of another sequence never are; with own-sequence exclusion only "b" may answer
    from edgepose.train import memory_fit

    monkeypatch.setattr(memory_fit, "K_GRID", (1,))
    model = _model()
    r = _rng(6)
    imgs = _images(12, seed=13)
    pos, rot = r.normal(scale=2.0, size=(12, 3)), quat_canonical(_unit(r.normal(size=(12, 4))))
    seq = ["a"] * 6 + ["b"] * 6
    fit = _cache(imgs, pos, rot, seq)
    idx = [0, 1, 2, 3]
    val = _cache(imgs[idx], pos[idx], rot[idx], ["a"] * 4)
    test = _cache(imgs[:2], pos[:2], rot[:2], ["c", "c"])
    assert memory_fit.sequence_disjoint(fit, test)
    assert not memory_fit.sequence_disjoint(fit, _cache(imgs[:2], pos[:2], rot[:2], ["a", "c"]))
    assert not memory_fit.sequence_disjoint(_cache(imgs, pos, rot, [""] * 12), _cache(imgs[:2], pos[:2], rot[:2], ["", ""]))
    info, _ = fit_memory(model, fit, val, torch.device("cpu"))
    assert info["val"]["memory_median_position_m"] < 1e-4 and not info["validation_excludes_own_sequence"]
    info, _ = fit_memory(model, fit, val, torch.device("cpu"), same_sequence_out=True)
    assert info["val"]["memory_median_position_m"] > 0.1 and info["validation_excludes_own_sequence"]


def test_fit_caps_the_memory_by_evenly_spread_views():
    model = _model()
    r = _rng(4)
    imgs = _images(20, seed=12)
    pos, rot = r.normal(size=(20, 3)), quat_canonical(_unit(r.normal(size=(20, 4))))
    fit, val = _cache(imgs[:16], pos[:16], rot[:16]), _cache(imgs[16:], pos[16:], rot[16:])
    fit_memory(model, fit, val, torch.device("cpu"), size=5)
    assert model.memory.size == 5
    np.testing.assert_allclose(model.memory.position.numpy(), pos[[0, 4, 8, 11, 15]] / 2.0, atol=1e-6)


@pytest.mark.parametrize("dynamic", [None, (1, 4, 8)])
def test_exported_graph_with_a_memory_matches_pytorch_in_fp32_and_fp16(tmp_path, dynamic):
    # batch 1: onnxsim folds the top-k reductions into Squeeze nodes named outside every group,
    # which FP16 would have converted (export_onnx.adopt_orphan_nodes gives them their scope)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from export.fp16 import to_fp16
    from export.graph_lint import lint_model
    from export.onnx_export import export_onnx

    model = _model()
    _filled(model, n=10, blend=(0.5, 0.75), disagreement=(1.0, 1.0))
    model.memory.k = 3
    model.memory.temperature.fill_(0.05)
    model.memory.spread_weight.copy_(torch.tensor([0.5, 2.0]))  # every sigma signal inside the graph
    model.memory.distance_weight.copy_(torch.tensor([3.0, 1.0]))
    model.memory.view_error = torch.from_numpy(_rng(8).uniform(0.1, 1.0, size=(10, 2)).astype(np.float32))
    model.memory.neighbour_error_weight.copy_(torch.tensor([2.0, 0.5]))
    x = _images(5, seed=5)  # stored views: exact matches, so the top-k order has margins
    path = tmp_path / "m.onnx"
    export_onnx(model, path, dynamic=dynamic, parity_images=x.numpy())
    want = [t.numpy() for t in model.predict_world(x)]
    to_fp16(path, tmp_path / "m16.onnx")
    for graph in (path, tmp_path / "m16.onnx"):
        sess = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        outs = [sess.run(None, {"image": x.numpy()[i : i + 1]}) for i in range(len(x))]
        p, q, s = (np.concatenate([o[j] for o in outs]) for j in range(3))
        tol = 1e-4 if graph == path else 2e-2
        np.testing.assert_allclose(p, want[0], atol=tol)
        assert rotation_error_deg(q.astype(np.float64), want[1].astype(np.float64)).max() < (1e-3 if graph == path else 1.0)
        np.testing.assert_allclose(s, want[2], rtol=10 * tol)
    import onnx

    m16 = onnx.load(str(tmp_path / "m16.onnx"))
    assert any(n.name.startswith("/post_memory/") for n in m16.graph.node)
    assert not lint_model(m16)
    assert not [n.name for n in m16.graph.node if not n.name.startswith("/")]  # every node in a scope


def test_tied_views_are_taken_in_index_order_as_onnx_topk_does():
    # a degenerate model whose features all point one way: every view ties; ONNX's TopK takes
    # equal values in index order (the spec), so PyTorch must too or the export's parity fails
    m = PoseMemory(0, 3)
    pos = torch.arange(18, dtype=torch.float32).view(6, 3)
    m.store(torch.ones(6, 3), pos, torch.tensor([[1.0, 0, 0, 0]]).repeat(6, 1), k=2)
    p, _, _ = m.eval().lookup(torch.ones(4, 3))
    np.testing.assert_allclose(p.numpy(), np.repeat(((pos[0] + pos[1]) / 2).numpy()[None], 4, 0), atol=1e-6)


def test_the_memory_keeps_the_blend_the_fit_chose(monkeypatch):
    # the fit scores the regressor alone and the memory alone too; what it leaves in the model
    # must be its choice (a regression: it once left blend 1 after choosing 0)
    from edgepose.train import memory_fit

    monkeypatch.setattr(memory_fit, "BLEND_GRID", (0.0,))
    model = _model()
    r = _rng(7)
    imgs = _images(18, seed=14)
    pos, rot = r.normal(size=(18, 3)), quat_canonical(_unit(r.normal(size=(18, 4))))
    info, _ = fit_memory(model, _cache(imgs[:10], pos[:10], rot[:10]), _cache(imgs[10:], pos[10:], rot[10:]),
                         torch.device("cpu"))  # 8 validation frames: enough to choose on
    assert info["blend"] == [0.0, 0.0] and model.memory.blend.tolist() == [0.0, 0.0]
    assert model.memory.disagreement.tolist() == info["disagreement"]


def test_sigma_signals_match_a_brute_force_oracle():
    # spread: mean distance of the SPREAD_K nearest views to their mean (rotation: 2 x chord on
    # the nearest view's hemisphere); distance: 1 - cosine of the nearest view
    from edgepose.train.pose_memory import SPREAD_K

    m, feats, pos, rot = _memory(k=2, t=0.05, seed=3)
    query = _rng(4).normal(size=(5, feats.shape[1])).astype(np.float32)
    got = m.lookup_signals(torch.from_numpy(query))
    f, qf = _unit(feats.astype(np.float64)), _unit(query.astype(np.float64))
    for i, v in enumerate(qf):
        sim = f @ v
        near = np.argsort(-sim, kind="stable")[:SPREAD_K]
        p = pos[near].astype(np.float64)
        q = rot[near].astype(np.float64)
        q = q * np.where(q @ q[0] < 0, -1.0, 1.0)[:, None]
        want_sp = np.linalg.norm(p - p.mean(0), axis=1).mean()
        want_sq = 2.0 * np.linalg.norm(q - _unit(q.mean(0)), axis=1).mean()
        np.testing.assert_allclose(got["spread"][i].numpy(), [want_sp, want_sq], rtol=1e-5, atol=1e-6)
        assert float(got["distance"][i]) == pytest.approx(1.0 - sim[near[0]], abs=1e-6)


def test_sigma_is_the_root_sum_of_squares_of_the_weighted_signals():
    from edgepose.train.pose_memory import blend_with_memory, sigma_signals

    model = _model()
    x = _filled(model, n=10, blend=(0.5, 0.5))
    model.memory.k = 3
    w = {"head_weight": (0.5, 2.0), "disagreement": (1.0, 0.0), "spread_weight": (3.0, 1.0), "distance_weight": (0.0, 4.0)}
    for buf, v in w.items():
        getattr(model.memory, buf).copy_(torch.tensor(v))
    q = _images(6, seed=21)
    with torch.no_grad():
        h = model.forward_features(model.normalize_input(q))
        out = model.heads(h)
        s = {k: v.double().numpy() for k, v in sigma_signals(model.memory, h, out).items() if v.shape[-1] == 2}
        got = torch.exp(blend_with_memory(model.memory, h, out)["log_sigma"]).double().numpy()
    want = np.sqrt((np.array(w["head_weight"]) * s["head"]) ** 2 + (np.array(w["disagreement"]) * s["disagreement"]) ** 2
                   + (np.array(w["spread_weight"]) * s["spread"]) ** 2 + (np.array(w["distance_weight"]) * s["distance"]) ** 2)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(s["head"], np.exp(out["log_sigma"].double().numpy()), rtol=1e-6)


def onnx_sigma_of_one_signal(model, buf, weight, x, tmp_path):
    """``(sigma (N, 2) from a real ONNX Runtime session of the exported model, FC features (N,
    dim) float64, graph path)`` with every sigma weight 0 but the memory buffer ``buf``
    (``weight``) and ``sigma_scale`` [2, 3], on images ``x``."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from export.onnx_export import export_onnx

    from edgepose.train.pose_memory import SIGNAL_WEIGHTS

    for _, name in SIGNAL_WEIGHTS:
        getattr(model.memory, name).zero_()
    getattr(model.memory, buf).copy_(torch.tensor(weight))
    model.sigma_scale.copy_(torch.tensor([2.0, 3.0]))
    path = tmp_path / "m.onnx"
    export_onnx(model, path, parity_images=x.numpy())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"image": x.numpy()[i : i + 1]})[2] for i in range(len(x))])
    return got, fc_features(model, x, torch.device("cpu")).double().numpy(), path


def test_the_neighbour_error_signal_in_the_exported_graph_equals_numpy_on_the_same_memory(tmp_path):
    # sigma = sigma_scale * [position scale, 1] * e * (softmax-weighted mean of the k nearest
    # views' stored errors), every other weight 0: ONNX Runtime against numpy on the same buffers
    model = _model()
    _filled(model, n=10, blend=(0.25, 0.5))
    m = model.memory
    m.k = 3
    m.temperature.fill_(0.05)
    m.view_error = torch.from_numpy(_rng(9).uniform(0.1, 2.0, size=(10, 2)).astype(np.float32))
    got, h, _ = onnx_sigma_of_one_signal(model, "neighbour_error_weight", [1.5, 0.25], _images(4, seed=21), tmp_path)
    f = _unit(m.features.double().numpy())
    want = []
    for v in _unit(h):
        sim = f @ v
        near = np.argsort(-sim, kind="stable")[:3]
        w = np.exp((sim[near] - sim[near[0]]) / 0.05)
        w /= w.sum()
        want.append(w @ m.view_error.double().numpy()[near] * np.array([1.5, 0.25]) * np.array([2.0 * 2.0, 3.0]))
    np.testing.assert_allclose(got, np.array(want), rtol=1e-4)
    assert np.ptp(got[:, 0]) > 0.01  # the frames find different views: the signal varies
