"""The resize as matrices (edgepose.resample) against Pillow itself, the trainer's resize."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgepose.errors import ConfigError
from edgepose.preprocess import crop_box, resize_crop
from edgepose.resample import pool_weights, pooled_resample, resample_matrix, separable

NET = (128, 96)
#: landscape, portrait, odd, upscaled, same size, and one needing a fractional crop
SIZES = [(1920, 1080), (1280, 720), (640, 480), (480, 640), (333, 250), (100, 70), (128, 96), (1001, 997)]


def _frame(size, seed=0):
    """A natural-ish frame: smooth shapes plus sensor noise, uint8 (h, w, 3)."""
    w, h = size
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 12 + 2, w // 12 + 2, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float64)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", SIZES)
def test_the_full_matrices_are_pillows_bilinear_resize(size):
    img = _frame(size)
    ref = resize_crop(img, NET).astype(np.float64)  # Pillow, the rule the trainer used
    _, x0, y0, x1, y1 = crop_box(size, NET)
    a_y, a_x = resample_matrix(size[1], NET[1], (y0, y1)), resample_matrix(size[0], NET[0], (x0, x1))
    out = separable(a_y, img.astype(np.float64), a_x)
    # Pillow rounds to uint8 between its two passes and uses fixed-point weights: within 1 level
    assert np.abs(out - ref).max() <= 1.0


@pytest.mark.parametrize("size", SIZES)
def test_the_pooled_resample_stays_within_a_few_grey_levels_of_pillow(size):
    img = _frame(size, seed=1)
    ref = resize_crop(img, NET).astype(np.float64)
    p = pooled_resample(size, NET, k=pooled_resample(size, NET, k=0).x.k if size[0] < 1920 else 3)
    diff = np.abs(p.apply(img) - ref)
    assert diff.mean() <= 1.0 and diff.max() <= 4.0, (p.x.k, diff.mean(), diff.max())


def test_large_downscales_pool_and_every_size_reads_only_the_crop():
    p = pooled_resample((3840, 2160), NET)
    assert p.x.k == p.y.k == 2  # 22.5 source pixels per output pixel, a 45-pixel triangle
    p = pooled_resample((1920, 1080), NET)
    assert p.x.k == p.y.k == 1  # 11.25x: Pillow's exact weights
    # the rule crops 1440x1080 from the centre; the filter reads at most half a triangle beyond it
    assert 240 - 12 <= p.x.start <= 240 and 1680 <= p.x.stop <= 1680 + 12
    assert p.y.start == 0 and p.y.stop <= 1080
    assert pooled_resample((640, 480), NET).x.k == 1  # 5x: no pooling


def test_rows_of_weights_sum_to_one_and_pooling_keeps_the_sums():
    m = resample_matrix(1000, 37, (12.5, 987.25))
    assert np.allclose(m.sum(axis=1), 1.0) and (m >= 0).all()
    pooled = pool_weights(m, 0, 4, 250)
    assert pooled.shape == (37, 250) and np.allclose(pooled.sum(axis=1), 1.0)


def test_a_constant_frame_stays_constant():
    img = np.full((720, 1280, 3), 77, np.uint8)
    assert np.allclose(pooled_resample((1280, 720), NET).apply(img), 77.0)


@pytest.mark.parametrize("bad", [(0, 10), (10, 0), (-5, 5)])
def test_empty_sizes_are_refused(bad):
    with pytest.raises(ConfigError):
        pooled_resample(bad, NET)


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (1920, 1080), (480, 640), (333, 250)])
def test_without_the_block_mean_the_twin_is_pillows_resize_to_the_grey_level(size):
    # Pillow's order (columns first) and its rounding between the passes: the network sees the
    # trainer's bytes on all but a few pixels whose weighted sum sits at a half grey level
    img = _frame(size, seed=2)
    ref = resize_crop(img, NET).astype(np.float64)
    diff = np.abs(pooled_resample(size, NET, k=1).apply(img) - ref)
    assert diff.max() <= 1.0 and (diff > 0).mean() < 0.005, ((diff > 0).mean(), diff.max())
