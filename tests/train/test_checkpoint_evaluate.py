"""Checkpoint files (atomic, weights_only-loadable, RNG round trip) and the evaluation helpers."""
import numpy as np
import pytest
import torch

from edgepose.geometry import quat_canonical, rotation_error_deg
from edgepose.train.checkpoint import capture_rng, checkpoint_path, latest_resume_point, restore_rng, save_checkpoint
from edgepose.train.data import FrameCache
from edgepose.train.evaluate import mean_pose_baseline, mean_quaternion, selection_score


def test_checkpoint_is_atomic_and_loads_with_weights_only(tmp_path):
    path = checkpoint_path(tmp_path, "stage1", "last")
    opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "optimizer": opt.state_dict(), "epoch": 3, "step": 0,
                           "stage": "stage1", "rng": capture_rng(torch.Generator())})
    assert path.name == "stage1_last.pt" and path.parent.name == "checkpoints"
    assert [p.name for p in path.parent.iterdir()] == ["stage1_last.pt"]  # no temporary left behind
    ck = torch.load(path, weights_only=True)
    # the on-disk format id every saved checkpoint carries (and read_checkpoint demands): pinned as
    # text, since changing it would orphan the checkpoints users already have
    assert ck["format"] == "edgepose.checkpoint/1" and ck["epoch"] == 3
    assert latest_resume_point(tmp_path)["stage"] == "stage1"


def test_resume_point_prefers_stage2_and_is_none_on_a_fresh_folder(tmp_path):
    assert latest_resume_point(tmp_path) is None
    for st in ("stage1", "stage2"):
        save_checkpoint(checkpoint_path(tmp_path, st, "last"),
                        {"model": {}, "optimizer": {}, "epoch": 1, "stage": st})
    assert latest_resume_point(tmp_path)["stage"] == "stage2"


def test_rng_round_trip_replays_the_same_numbers():
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(11)
    state = capture_rng(g)
    a = (torch.rand(3), torch.rand(3, generator=g))
    restore_rng(state, g)
    b = (torch.rand(3), torch.rand(3, generator=g))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_mean_quaternion_ignores_signs_and_finds_the_centre():
    rng = np.random.default_rng(0)
    centre = quat_canonical(np.array([0.9, 0.1, -0.3, 0.2]))
    small = quat_canonical(np.c_[np.ones(200), rng.normal(0, 0.02, (200, 3))])
    from edgepose.geometry import quat_multiply

    qs = quat_multiply(centre[None], small) * rng.choice([-1, 1], (200, 1))
    m = mean_quaternion(qs)
    assert m[0] >= 0
    assert float(rotation_error_deg(m, centre)) < 1.0
    assert np.allclose(m, mean_quaternion(quat_canonical(qs)))


def _cache(pos, rot):
    n = len(pos)
    return FrameCache(images=torch.zeros(n, 8, 8, 3, dtype=torch.uint8), position=torch.zeros(n, 3),
                      rotation=torch.zeros(n, 4), K=torch.zeros(n, 3, 3), points=torch.zeros(n, 0, 3),
                      points_mask=torch.zeros(n, 0, dtype=torch.bool), position_m=np.asarray(pos, float),
                      rotation_q=np.asarray(rot, float))


def test_mean_pose_baseline_measures_distance_to_the_training_mean():
    ident = [1.0, 0, 0, 0]
    train = _cache([[0, 0, 0], [2, 0, 0]], [ident, ident])
    test = _cache([[1, 3, 0], [1, 0, 4]], [ident, [0.0, 1, 0, 0]])
    m = mean_pose_baseline(train, test)
    assert m["median_position_m"] == pytest.approx(3.5) and m["n_frames"] == 2
    assert m["mean_rotation_deg"] == pytest.approx(90.0)


def test_selection_score_combines_scene_units_and_radians():
    s = selection_score({"median_position_m": 2.0, "median_rotation_deg": 180.0 / np.pi}, position_scale=4.0)
    assert s == pytest.approx(1.5)
