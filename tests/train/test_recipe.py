"""The recipe: schedule shape, optimiser groups (sp/sq on their own), stage validation."""
import pytest
import torch

from edgepose.errors import ConfigError
from edgepose.train.losses import build_objective
from edgepose.train.recipe import TrainConfig, lr_factor, make_optimizer, make_scheduler, stages, step_budget


def test_lr_factor_warms_up_then_decays_to_the_floor():
    total, warm = 100, 10
    f = [lr_factor(s, total, warm) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(0.01)


def test_warmup_is_capped_for_short_runs():
    assert lr_factor(0, 10, 50) == pytest.approx(0.5)  # warm-up at most total // 5 = 2 steps


def test_learned_weighting_gets_its_own_group_without_decay():
    cfg = TrainConfig(data="d", out="o", weight_decay=1e-4)
    model = torch.nn.Linear(3, 3)
    opt = make_optimizer(model, build_objective("learned"), 1e-3, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["model"]["lr"] == 1e-3 and groups["model"]["weight_decay"] == 1e-4
    # README "Stage 1": sp/sq in their own optimiser group at `--weighting-lr 1e-2`
    assert groups["weighting"]["lr"] == 1e-2 and groups["weighting"]["weight_decay"] == 0.0
    assert len(groups["weighting"]["params"]) == 2
    opt2 = make_optimizer(model, build_objective("reprojection"), 1e-4, cfg)
    assert [g["name"] for g in opt2.param_groups] == ["model"]


def test_scheduler_state_is_plain_data():
    opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    sch = make_scheduler(opt, 20, 4)
    for _ in range(5):
        opt.step()
        sch.step()
    state = sch.state_dict()
    assert state["last_epoch"] == 5 and state["lr_lambdas"] == [None]
    # by hand: 20 steps, 4 of warm-up (20 // 5 = 4 allowed); step 5 is 1 step into the 16-step
    # cosine, t = 1/16: 0.01 + 0.99 * (1 + cos(pi / 16)) / 2 = 0.01 + 0.99 * 0.990393 = 0.990489
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 + 0.99 * (1 + 0.9807852804032304) / 2, rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.990489, abs=1e-6)


def test_stages_and_their_errors():
    s = stages(TrainConfig(data="d", out="o", stage1_epochs=3, stage2_epochs=2, loss="beta", beta=250))
    assert [(x.name, x.loss, x.epochs) for x in s] == [("stage1", "beta", 3), ("stage2", "reprojection", 2)]
    assert s[0].loss_opts["beta"] == 250
    with pytest.raises(ConfigError, match="nothing to train"):
        stages(TrainConfig(data="d", out="o", stage1_epochs=0, stage2_epochs=0))
    with pytest.raises(ConfigError, match="stage 1"):
        stages(TrainConfig(data="d", out="o", loss="reprojection"))


def test_step_budget_trains_small_and_large_sets_without_flags():
    cfg = TrainConfig(data="d", out="o")
    # a 30-image set at batch 32: one step per epoch, so the floor of 600 steps decides
    e1, e2 = step_budget(cfg, steps_per_epoch=1)
    assert (e1, e2) == (540, 60)
    # a 3,000-image set (2,700 after validation): 85 steps per epoch, 40 epochs' worth
    e1, e2 = step_budget(cfg, steps_per_epoch=85)
    assert e1 * 85 + e2 * 85 == pytest.approx(40 * 85, abs=85)
    # beyond the ceiling the epochs shrink, the steps stay at max_steps (rounded up to epochs)
    e1, e2 = step_budget(cfg, steps_per_epoch=1000)
    assert (e1 + e2) * 1000 <= cfg.max_steps + 2 * 1000


def test_step_budget_flags_steps_and_epochs():
    assert step_budget(TrainConfig(data="d", out="o", steps=100), 8) == (12, 2)  # 90 -> 12 epochs, 10 -> 2
    assert step_budget(TrainConfig(data="d", out="o", stage1_epochs=5, stage2_epochs=0), 8) == (5, 0)
    # stage 2 switched off: stage 1 takes the whole budget
    assert step_budget(TrainConfig(data="d", out="o", stage2_epochs=0, steps=100), 10) == (10, 0)
    s = stages(TrainConfig(data="d", out="o", steps=100), 8)
    assert [x.steps for x in s] == [96, 16] and s[0].steps_per_epoch == 8
    with pytest.raises(ConfigError, match="stage2-fraction"):
        step_budget(TrainConfig(data="d", out="o", stage2_fraction=1.0), 1)
    with pytest.raises(ConfigError, match="stage1-epochs"):
        step_budget(TrainConfig(data="d", out="o", stage1_epochs=-1), 1)


def test_a_training_session_gives_the_callers_thread_count_back(tmp_path):
    """``fit`` sets torch's CPU threads for the run (``--threads``, or cores per process); a
    Python caller keeps its own count afterwards, whether the run ends or raises."""
    from edgepose.train.trainer import _session

    before = torch.get_num_threads()
    seen = []

    def body(cfg, device, dist, out):
        seen.append(torch.get_num_threads())
        return {}

    other = 1 if before != 1 else 2
    _session(TrainConfig(data="d", out=str(tmp_path), device="cpu", threads=other), body)
    assert seen == [other] and torch.get_num_threads() == before

    def fails(cfg, device, dist, out):
        raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError):
        _session(TrainConfig(data="d", out=str(tmp_path), device="cpu", threads=other), fails)
    assert torch.get_num_threads() == before
