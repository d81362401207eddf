"""Fold trainings (issue 24): each fold model trains only on the other folds' views, through the
run's own stage loop, and answers every fit frame; the fit on their honest answers fills the
memory (difficulty head, stored errors, blend) from them. A tiny real-PNG scene, a small
backbone without pretrained weights: seconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgepose.train import distributed, fold_train  # noqa: E402
from edgepose.train.fold_fit import fit_memory_on_folds, fold_pool  # noqa: E402
from edgepose.train.metrics_log import MetricsLog  # noqa: E402
from edgepose.train.model import PoseNet  # noqa: E402
from edgepose.train.recipe import TrainConfig, stages  # noqa: E402
from edgepose.train.run import Run  # noqa: E402
from edgepose.train.sampling import EpochBatches  # noqa: E402
from edgepose.train.signals import StopRequest  # noqa: E402
from edgepose.train.trainer import prepare_data  # noqa: E402

from tiny_scene import write_csv_scene  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("folds")
    scene = write_csv_scene(root / "scene", n_train=20, n_test=4, size=(48, 36))
    cfg = TrainConfig(data=str(scene), out=str(root / "run"), backbone="mobilenet_v3_small", pretrained="none",
                      input_size=(32, 24), hidden=16, stage1_epochs=3, stage2_epochs=0, batch_size=4, val_every=6,
                      max_points=0, progress=False, threads=1, checkpoint_minutes=0.0)
    torch.set_num_threads(1)
    fit, val, test, norm, info, counts = prepare_data(cfg, distributed.DistInfo())
    (root / "run").mkdir()
    return Run(cfg, distributed.DistInfo(), torch.device("cpu"), root / "run", fit, val, test, norm, info,
               MetricsLog(root / "run" / "metrics.csv"), StopRequest(), False, 0, counts)


@pytest.fixture(scope="module")
def trained(run):
    """``(FoldAnswers, {fold: positions of the frames its stage trained on})``: ``run_stage`` is
    the real loop, wrapped only to note what each fold model was given."""
    seen = {}
    real = fold_train.run_stage

    def spy(sub, spec, index, init_state, resume):
        seen[index - fold_train.FOLD_STAGE_INDEX] = (sub.fit.position.clone(), spec, sub.val, sub.out)
        return real(sub, spec, index, init_state, resume)

    stage1 = stages(run.cfg, EpochBatches(len(run.fit), run.cfg.batch_size).batches_per_epoch())[0]
    mp = pytest.MonkeyPatch()
    mp.setattr(fold_train, "run_stage", spy)
    try:
        folds = fold_train.train_folds(run, stage1, k=3, fraction=1 / 3)
    finally:
        mp.undo()
    return folds, seen, stage1


def test_each_fold_model_trains_only_on_the_other_folds_views_and_answers_every_view(run, trained):
    folds, seen, stage1 = trained
    n = len(run.fit)
    assert sorted(np.bincount(folds.fold).tolist()) == sorted([len(range(f, n, 3)) for f in range(3)])
    pos = run.fit.position.numpy()
    for f, (given, spec, val, out) in seen.items():
        held = np.flatnonzero(folds.fold == f)
        given = given.numpy()
        # exactly the other folds' frames, and none of the held-out frames' poses
        assert len(given) == n - len(held)
        for i in held:
            assert not np.any(np.all(np.isclose(given, pos[i]), axis=1)), f"fold {f} trained on held-out view {i}"
        kept = np.setdiff1d(np.arange(n), held)
        np.testing.assert_array_equal(np.sort(given, axis=0), np.sort(pos[kept], axis=0))
        assert val is None and out != run.out and not out.exists()  # no validation, files gone afterwards
        assert spec.loss == stage1.loss and spec.lr == stage1.lr
        assert spec.steps >= round(stage1.steps / 3) and spec.steps < round(stage1.steps / 3) + spec.steps_per_epoch
    # views dealt one at a time: a held-out view sits between training views
    assert [int(folds.fold[i]) for i in range(6)] == [0, 1, 2, 0, 1, 2]
    for f in range(3):
        assert folds.features[f].shape == (n, 16) and folds.heads[f]["position"].shape == (n, 3)
        assert folds.heads[f]["log_sigma"].shape == (n, 2)
    # three different networks: their answers differ
    assert not torch.allclose(folds.heads[0]["position"], folds.heads[1]["position"])
    assert not (Path(run.out) / "checkpoints").exists()  # the run's own folder untouched


def _random_folds(n=15, dim=8, seed=0):
    """Fold answers of three made-up fold models (what :func:`fold_pool` reads), and poses."""
    r = np.random.default_rng(seed)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    t = lambda x: torch.from_numpy(np.asarray(x, np.float32))  # noqa: E731
    heads = [{"position": t(r.normal(size=(n, 3))), "rotation": t(unit(r.normal(size=(n, 4)))),
              "log_sigma": t(r.normal(size=(n, 2)))} for _ in range(3)]
    folds = fold_train.FoldAnswers(np.arange(n) % 3, [t(r.normal(size=(n, dim))) for _ in range(3)], heads, 1, 0.0)
    return folds, t(r.normal(size=(n, 3))), t(unit(r.normal(size=(n, 4))))


def test_the_pool_answers_each_view_by_the_model_that_never_saw_it():
    folds, pos, rot = _random_folds()
    rows = np.arange(len(pos))
    got = fold_pool(folds, rows, pos, rot, 1, 0.03, (0.0, 0.0))["errors"]
    # blend 0: the regressor of the fold model that held the view out, against the label (numpy per frame)
    for i in rows:
        f = folds.fold[i]
        p = folds.heads[f]["position"][i].double().numpy()
        q = folds.heads[f]["rotation"][i].double().numpy()
        t = rot[i].double().numpy()
        assert got[i, 0] == pytest.approx(np.linalg.norm(p - pos[i].double().numpy()), rel=1e-5)
        assert got[i, 1] == pytest.approx(2 * np.arccos(min(1.0, abs(q @ t))), abs=2e-3)
    # blend 1, k 1: the pose of the nearest view of another fold, in that fold model's features
    mem = fold_pool(folds, rows, pos, rot, 1, 0.03, (1.0, 1.0))["errors"]
    for i in rows:
        f = folds.fold[i]
        h = folds.features[f].double().numpy()
        h = h / np.linalg.norm(h, axis=1, keepdims=True)
        other = np.flatnonzero(folds.fold != f)
        j = other[np.argmax(h[other] @ h[i])]
        assert mem[i, 0] == pytest.approx(np.linalg.norm(pos[j].double().numpy() - pos[i].double().numpy()), rel=1e-5)
    # a view of its own fold is never its neighbour, even an identical one
    folds.features[0][3] = folds.features[0][0]
    again = fold_pool(folds, rows, pos, rot, 1, 0.03, (1.0, 1.0))["errors"]
    assert again[0, 0] == pytest.approx(mem[0, 0])


def test_the_fit_on_fold_answers_stores_their_errors_and_a_difficulty_head(run, trained):
    folds, _, _ = trained
    torch.manual_seed(0)
    model = PoseNet("mobilenet_v3_small", pretrained="none", input_size=(32, 24), hidden=16,
                    position_mean=run.norm.mean, position_scale=run.norm.scale).eval()
    with torch.no_grad():  # an untrained FC maps every image to ~ReLU(bias): spread the features out
        model.fc[0].bias.zero_()
        model.fc[0].weight.mul_(50.0)
    info, pools = fit_memory_on_folds(model, run.fit, run.val, torch.device("cpu"), folds)
    m = model.memory
    assert m.size == len(run.fit) and info["folds"]["models"] == 3
    assert info["blend"][0] in (0.0, 0.25, 0.5, 0.75, 1.0)
    k, t = info["k"], info["temperature"]
    want = fold_pool(folds, np.arange(len(run.fit)), run.fit.position, run.fit.rotation, k, t, info["blend"])["errors"]
    np.testing.assert_allclose(m.view_error.numpy(), want, rtol=1e-5)
    assert torch.count_nonzero(m.difficulty_coef) > 0
    assert set(info["sigma"]["weights"]) == {"head", "disagreement", "spread", "distance", "neighbour_error", "difficulty"}
    n_val = len(run.val)
    assert len(pools[0][0]) == len(pools[1][0]) == n_val + len(run.fit)  # validation + fold answers
