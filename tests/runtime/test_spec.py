"""The input contract and the batch builder (runtime/spec.py): specs read from manifests,
batches checked against them, and images written into batches by the preprocessing rule,
checked on hand-worked images."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgepose.errors import BundleError
from edgepose.runtime import InputMismatchError, InputSpec, allocate_batch, preprocess_batch
from edgepose.runtime.spec import write_frame

NHWC = {"input": {"name": "image", "dtype": "uint8", "layout": "NHWC", "shape": [-1, 24, 32, 3],
                  "batch": {"min": 1, "opt": 2, "max": 4}}}
NCHW = {"input": {"name": "image", "dtype": "float32", "layout": "NCHW", "shape": [1, 3, 24, 32]}}


def test_specs_from_manifests():
    a = InputSpec.from_manifest(NHWC)
    assert (a.size, a.batch_min, a.batch_max, a.batch_shape(3)) == ((32, 24), 1, 4, (3, 24, 32, 3))
    b = InputSpec.from_manifest(NCHW)  # a static batch of 1
    assert (b.size, b.batch_min, b.batch_max, b.batch_shape(1)) == ((32, 24), 1, 1, (1, 3, 24, 32))
    for bad, why in (({"shape": [1, 24, 32]}, "layout|shape"), ({**NHWC["input"], "layout": "HWC"}, "layout"),
                     ({**NHWC["input"], "dtype": "int32"}, "dtype"), ({"layout": "NHWC"}, "shape is missing")):
        with pytest.raises(BundleError, match=why):
            InputSpec.from_manifest({"input": bad})


def test_batches_are_checked_against_the_spec():
    spec = InputSpec.from_manifest(NHWC)
    ok = allocate_batch(spec, 2)
    assert ok.shape == (2, 24, 32, 3) and ok.dtype == np.uint8 and not ok.any()
    assert spec.check(ok) is not None
    with pytest.raises(InputMismatchError, match="batch size 5 is outside"):
        spec.check(allocate_batch(spec, 5))
    with pytest.raises(InputMismatchError, match="expected dtype uint8"):
        spec.check(ok.astype(np.float32))


def _halves(h, w):
    """Left half red, right half blue: where a crop lands is visible in the pixels."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2, 0] = 255
    img[:, w // 2 :, 2] = 255
    return img


def test_a_wide_image_is_centre_cropped_at_scale_one():
    # (W, H) = (64, 24) onto (32, 24): the height already fits (scale 1), so the rule keeps
    # columns 16..47, the middle of the image, without resampling
    spec = InputSpec.from_manifest(NHWC)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 64, 3), dtype=np.uint8)
    batch = preprocess_batch([img, Image.fromarray(img)], spec)
    np.testing.assert_array_equal(batch[0], img[:, 16:48])
    np.testing.assert_array_equal(batch[1], img[:, 16:48])  # a PIL image gives the same


def test_a_larger_image_is_scaled_to_cover_then_cropped():
    # (128, 48) onto (32, 24): scale 1/2 -> (64, 24), crop the middle 32 columns: the middle
    # of the original, so half red, half blue, the seam in the middle
    spec = InputSpec.from_manifest(NHWC)
    out = preprocess_batch([_halves(48, 128)], spec)[0]
    assert out.shape == (24, 32, 3)
    assert np.all(out[:, :15, 0] == 255) and np.all(out[:, :15, 2] == 0)
    assert np.all(out[:, 17:, 2] == 255) and np.all(out[:, 17:, 0] == 0)


def test_the_float_nchw_variant_is_the_same_pixels_transposed():
    nhwc, nchw = InputSpec.from_manifest(NHWC), InputSpec.from_manifest(NCHW)
    img = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    a = preprocess_batch([img], nhwc)
    b = preprocess_batch([img], nchw)
    assert b.dtype == np.float32 and b.shape == (1, 3, 24, 32)
    np.testing.assert_array_equal(b[0], a[0].transpose(2, 0, 1).astype(np.float32))
    out = np.full((3, 24, 32), -1, np.float32)
    scratch = np.empty((24, 32, 3), np.uint8)
    write_frame(img, nchw, out, scratch)  # the one-frame writer the pipeline reuses
    np.testing.assert_array_equal(out, b[0])
    with pytest.raises(InputMismatchError, match="expected float32"):
        preprocess_batch([img], nchw, out=np.zeros((1, 24, 32, 3), np.uint8))
