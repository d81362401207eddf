"""Calibration frames: training split only, deterministic, hashed, batched; image loading."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from edgepose.errors import EdgePoseError
from edgepose.export.int8.calibration import (CalibrationWarning, calibration_info, check_calibration_count,
                                         frame_list_sha256, frame_names, iter_batches,
                                         load_calibration_images, select_calibration_frames)
from edgepose.records import FrameRecord


def _rec(i, split="train", root="/data"):
    return FrameRecord(image=f"{root}/seq/frame{i:04d}.png", position=np.zeros(3), rotation=np.array([1.0, 0, 0, 0]),
                       K=np.eye(3), width=64, height=48, split=split)


def test_refuses_test_split_frames():
    recs = [_rec(i) for i in range(10)] + [_rec(99, "test")]
    with pytest.raises(EdgePoseError, match="training split"):
        select_calibration_frames(recs, 5)


def test_selection_is_deterministic_spread_and_ordered():
    recs = [_rec(i) for i in range(1000)]
    a = select_calibration_frames(recs, 100, seed=0)
    b = select_calibration_frames(recs, 100, seed=0)
    idx = [int(str(r.image)[-8:-4]) for r in a]
    assert a == b and len(a) == 100
    assert idx == sorted(idx) and len(set(idx)) == 100
    assert max(np.diff(idx)) < 20  # spread over the whole split, not the first 100
    assert select_calibration_frames(recs[:7], 100) == recs[:7]


def test_hash_names_order_and_root(tmp_path):
    recs = [_rec(i) for i in range(3)]
    names = frame_names(recs, root="/data")
    assert names == ["seq/frame0000.png", "seq/frame0001.png", "seq/frame0002.png"]
    h = frame_list_sha256(names)
    # oracle: what `sha256sum` prints for a text file of the names, one per line (the definition
    # in frame_list_sha256's docstring), hashed here with hashlib from a file the test wrote
    listing = tmp_path / "frames.txt"
    listing.write_bytes(b"seq/frame0000.png\nseq/frame0001.png\nseq/frame0002.png\n")
    assert h == hashlib.sha256(listing.read_bytes()).hexdigest()
    assert h != frame_list_sha256(names[::-1]) and h != frame_list_sha256(names[:2])
    info = calibration_info(names, "minmax", 4)
    assert info == {"frames": 3, "method": "minmax", "batch": 4, "frames_sha256": h, "source": "train"}


def test_count_rules():
    with pytest.raises(EdgePoseError, match="full batch of 8"):
        check_calibration_count(5, 8)
    with pytest.warns(CalibrationWarning):
        check_calibration_count(64, 8)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_calibration_count(300, 8)


def test_batches_drop_short_last():
    x = np.arange(10)
    assert [len(b) for b in iter_batches(x, 4)] == [4, 4]
    assert [len(b) for b in iter_batches(x, 4, drop_last=False)] == [4, 4, 2]


def test_load_images_follow_the_shared_rule(tmp_path):
    from edgepose.preprocess import load_and_preprocess

    img = (np.random.default_rng(0).uniform(0, 255, (60, 100, 3))).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    rec = FrameRecord(image=tmp_path / "a.png", position=np.zeros(3), rotation=np.array([1.0, 0, 0, 0]),
                      K=np.eye(3), width=100, height=60)
    out = load_calibration_images([rec], (32, 24))
    assert out.shape == (1, 24, 32, 3) and out.dtype == np.uint8
    assert np.array_equal(out[0], load_and_preprocess(tmp_path / "a.png", (32, 24)))
