"""Photometric jitter: float 0..255 out, pure function of the generator state, strengths act."""
import torch

from edgepose.train.augment import photometric_jitter


def images(n=3):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 12, 16, 3), generator=g, dtype=torch.uint8)


def test_output_range_dtype_and_shape():
    x = images()
    y = photometric_jitter(x, torch.Generator().manual_seed(1), 0.8, 0.8, 0.8)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 255.0


def test_same_generator_state_same_result_and_different_seed_differs():
    x = images()
    a = photometric_jitter(x, torch.Generator().manual_seed(5))
    b = photometric_jitter(x, torch.Generator().manual_seed(5))
    c = photometric_jitter(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_zero_strength_is_identity_but_still_advances_the_generator():
    x = images()
    g = torch.Generator().manual_seed(2)
    y = photometric_jitter(x, g, 0.0, 0.0, 0.0)
    assert torch.equal(y, x.float())
    g2 = torch.Generator().manual_seed(2)
    torch.rand(9, generator=g2)
    assert torch.equal(g.get_state(), g2.get_state())


def test_brightness_only_scales_pixels():
    x = torch.full((1, 4, 4, 3), 100, dtype=torch.uint8)
    g = torch.Generator().manual_seed(3)
    y = photometric_jitter(x, g, brightness=0.5, contrast=0.0, saturation=0.0)
    f = float(y[0, 0, 0, 0]) / 100.0
    assert 0.5 <= f <= 1.5 and abs(f - 1.0) > 1e-4
    assert torch.allclose(y, torch.full_like(y, 100.0 * f))


def test_saturation_zero_factor_gives_grey():
    x = torch.tensor([[[[200, 20, 20]]]], dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    y = photometric_jitter(x, g, 0.0, 0.0, saturation=0.0)
    assert torch.equal(y, x.float())  # strength 0: untouched
    # strength 1 can draw a factor near 0: the pixel moves toward its grey value
    y = photometric_jitter(x.expand(64, 1, 1, 3).contiguous(), g, 0.0, 0.0, saturation=1.0)
    spread = (y.max(-1).values - y.min(-1).values).flatten()
    assert float(spread.min()) < 180.0 * 0.2
