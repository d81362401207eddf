"""The recipe: schedule shape, optimiser groups (sp/sq on their own), stage validation."""
import pytest
import torch

from edgepose.errors import ConfigError
from edgepose.train.losses import RECOMMENDED_WEIGHTING_LR, build_objective
from edgepose.train.recipe import TrainConfig, lr_factor, make_optimizer, make_scheduler, stages


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
    assert groups["weighting"]["lr"] == RECOMMENDED_WEIGHTING_LR and groups["weighting"]["weight_decay"] == 0.0
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
    assert opt.param_groups[0]["lr"] == pytest.approx(lr_factor(5, 20, 4))


def test_stages_and_their_errors():
    s = stages(TrainConfig(data="d", out="o", stage1_epochs=3, stage2_epochs=2, loss="beta", beta=250))
    assert [(x.name, x.loss, x.epochs) for x in s] == [("stage1", "beta", 3), ("stage2", "reprojection", 2)]
    assert s[0].loss_opts["beta"] == 250
    with pytest.raises(ConfigError, match="nothing to train"):
        stages(TrainConfig(data="d", out="o", stage1_epochs=0, stage2_epochs=0))
    with pytest.raises(ConfigError, match="stage 1"):
        stages(TrainConfig(data="d", out="o", loss="reprojection"))
