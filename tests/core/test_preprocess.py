"""The resize-to-cover + centre-crop rule and its intrinsics."""
import numpy as np
import pytest
from PIL import Image

from edgepose import geometry as G
from edgepose.errors import EdgePoseError
from edgepose.preprocess import adjust_intrinsics, crop_box, load_and_preprocess, load_image, resize_crop


def test_crop_box_covers_and_centres():
    scale, x0, y0, x1, y1 = crop_box((640, 480), (128, 96))
    assert scale == pytest.approx(0.2) and (x0, y0, x1, y1) == pytest.approx((0, 0, 640, 480))
    scale, x0, y0, x1, y1 = crop_box((1920, 1080), (128, 96))  # wider: crop the sides
    assert scale == pytest.approx(96 / 1080)
    assert y0 == pytest.approx(0) and x0 == pytest.approx((1920 - 128 / scale) / 2)


def test_resize_crop_shape_dtype_and_out_buffer():
    img = np.random.default_rng(0).integers(0, 255, (100, 300, 3), dtype=np.uint8)
    out = np.zeros((24, 32, 3), np.uint8)
    res = resize_crop(img, (32, 24), out=out)
    assert res is out and out.any()
    np.testing.assert_array_equal(resize_crop(img, (32, 24)), out)
    with pytest.raises(EdgePoseError):
        resize_crop(img, (32, 24), out=np.zeros((24, 32, 3), np.float32))


def test_intrinsics_follow_the_rule():
    """A world point projects to the same content after the rule: check with a marker pixel."""
    K = np.array([[400.0, 0, 330], [0, 400, 235], [0, 0, 1]])
    src, dst = (640, 480), (160, 100)
    K2 = adjust_intrinsics(K, src, dst)
    X = np.array([[0.3, -0.2, 2.0]])
    uv, _, _ = G.project_points(X, np.zeros(3), np.array([1.0, 0, 0, 0]), K)
    uv2, _, _ = G.project_points(X, np.zeros(3), np.array([1.0, 0, 0, 0]), K2)
    img = np.zeros((480, 640, 3), np.uint8)
    u, v = np.round(uv[0]).astype(int)
    img[v - 6:v + 7, u - 6:u + 7] = 255
    small = resize_crop(img, dst)[..., 0].astype(float)
    ys, xs = np.nonzero(small > 40)
    centre = np.array([np.average(xs + 0.5, weights=small[ys, xs]), np.average(ys + 0.5, weights=small[ys, xs])])
    np.testing.assert_allclose(centre, uv2[0] + 0.0, atol=0.75)


def test_load_image_errors(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(EdgePoseError, match="cannot decode"):
        load_image(bad)
    with pytest.raises(EdgePoseError, match="not found"):
        load_image(tmp_path / "missing.png")
    ok = tmp_path / "ok.png"
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(ok)  # greyscale becomes RGB
    assert load_image(ok).shape == (8, 8, 3)
    assert load_and_preprocess(ok, (4, 4)).shape == (4, 4, 3)
