"""PoseEstimator, the Python entry point, on a real bundle and real PNG frames: its defaults
(precision, frame policy) and that its answers are the runner's."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgepose.preprocess import resize_crop
from edgepose.runtime import ArraySource, PoseEstimator, open_runner

SIZE = (32, 24)


def test_defaults_are_fp16_and_a_lossless_policy_for_recorded_frames(bundle, frames, clean_threads):
    with PoseEstimator.from_bundle(bundle[0]) as est:
        assert est.precision == "fp16" and est.name == "onnxruntime:CPUExecutionProvider"
        results = list(est.stream(frames))  # a folder is recorded data: every frame, none dropped
        assert est.last_pipeline.policy == "every"
        assert est.last_pipeline.stats.dropped == 0
        assert [r.index for r in results] == list(range(12))
        assert sum(not r.ok for r in results) == 1  # frame5.png is corrupt
        live = ArraySource([np.zeros((24, 32, 3), np.uint8)] * 3, live=True)
        list(est.stream(live))
        assert est.last_pipeline.policy == "latest"  # a live source keeps latency bounded


def test_predict_gives_the_runners_pose_for_the_trainers_preprocessing(bundle, frames):
    path = frames / "frame3.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    with open_runner(bundle[0], "onnxruntime", "fp32") as r:
        want = r.infer(resize_crop(image, SIZE)[None])
    with PoseEstimator.from_bundle(bundle[0], "onnxruntime", "fp32") as est:
        for item in (path, str(path), image):
            got = est.predict(item)
            assert got.ok, got.error
            np.testing.assert_allclose(got.position, want.position[0], atol=1e-6)
            np.testing.assert_allclose(got.rotation, want.rotation[0], atol=1e-6)
        assert [est.predict(path).index for _ in range(2)] == [3, 4]  # counts its calls
        bad = est.predict(frames / "frame5.png")
        assert not bad.ok and "frame5.png" in bad.error and bad.position is None


def test_the_runner_is_released_on_close(bundle):
    est = PoseEstimator.from_bundle(bundle[0], "onnxruntime", "fp32")
    assert est.runner.is_active
    est.close()
    assert not est.runner.is_active
    with pytest.raises(Exception, match="not active"):
        est.runner.infer(np.zeros((1, 24, 32, 3), np.uint8))
