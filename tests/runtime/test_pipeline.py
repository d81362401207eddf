"""The streaming pipeline on real ONNX Runtime sessions and real PNG files."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgepose.errors import ConfigError
from edgepose.preprocess import load_image, resize_crop
from edgepose.runtime import ArraySource, ImageFolderSource, Pipeline, PipelineError, PoseEstimator, open_runner
from edgepose.runtime.runners.onnxruntime_runner import OnnxRuntimeRunner

SIZE = (32, 24)


class RecordingRunner(OnnxRuntimeRunner):
    """The real ORT runner, also keeping what it was fed (and optionally slower, or failing)."""

    def __init__(self, *a, delay=0.0, fail_at=None, **k):
        super().__init__(*a, **k)
        self.delay, self.fail_at, self.fed, self.calls = delay, fail_at, [], 0

    def _infer(self, batch):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("backend crashed")
        self.fed.append((batch.ctypes.data, batch.copy()))
        if self.delay:
            time.sleep(self.delay)
        return super()._infer(batch)


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_every_is_lossless_ordered_and_uses_pooled_buffers(bundle, frames, clean_threads):
    with RecordingRunner(bundle[0], "fp32") as r:
        pipe = Pipeline(r, ImageFolderSource(frames), policy="every", queue_size=2)
        pool_ptrs = {b.ctypes.data for b in pipe.pool.buffers}
        results = list(pipe)
    assert [x.index for x in results] == list(range(12))
    assert pipe.stats.dropped == 0 and pipe.stats.done == 12 and pipe.stats.read == 12
    # every frame was preprocessed into one of the few preallocated buffers
    fed_ptrs = {p for p, _ in r.fed}
    assert fed_ptrs <= pool_ptrs and len(pool_ptrs) == 5 < 11
    # ... with the trainer's rule, byte for byte
    ok_files = [f for f in sorted(frames.iterdir(), key=lambda p: int(p.stem[5:])) if f.name != "frame5.png"]
    for (_, fed), path in zip(r.fed, ok_files):
        np.testing.assert_array_equal(fed[0], resize_crop(load_image(path), SIZE))
    for x in results:
        if x.ok:
            assert set(x.timings_ms) >= {"read", "preprocess", "infer", "compute", "postprocess", "latency", "wait"}
            assert x.latency_ms >= x.timings_ms["infer"] > 0
            assert x.capture_time > 1e9 and x.timestamp == pytest.approx(x.index / 30.0)


def test_a_corrupt_frame_gives_one_failed_result_and_the_stream_goes_on(bundle, frames, clean_threads):
    with open_runner(bundle[0], "onnxruntime", "fp32") as r:
        results = list(Pipeline(r, ImageFolderSource(frames), policy="every"))
    failed = [x for x in results if not x.ok]
    assert len(failed) == 1 and failed[0].index == 5
    assert "frame5.png" in failed[0].error and failed[0].position is None
    assert all(x.ok and x.position is not None for x in results if x.index != 5)
    assert results[-1].index == 11


def test_pipeline_results_equal_single_image_predictions(bundle, frames):
    with PoseEstimator.from_bundle(bundle[0], backend="onnxruntime", precision="fp32") as est:
        streamed = {x.index: x for x in est.stream(frames, policy="every")}
        one = est.predict(frames / "frame3.png")
        bad = est.predict(frames / "frame5.png")
    np.testing.assert_allclose(one.position, streamed[3].position, atol=1e-9)
    assert one.ok and not bad.ok and "cannot decode" in bad.error


def test_latest_drops_stale_frames_and_counts_every_drop(bundle, clean_threads):
    src = ArraySource(_images(4), repeat=15, live=True)  # 60 frames, produced far faster than inference
    with RecordingRunner(bundle[0], "fp32", delay=0.01) as r:
        pipe = Pipeline(r, src, policy="latest")
        results = list(pipe)
    idx = [x.index for x in results]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)  # order kept, no duplicates
    assert pipe.stats.dropped > 0
    assert len(results) + pipe.stats.dropped == 60 == pipe.stats.read  # every frame accounted for
    assert idx[-1] == 59  # the newest frame is never the one dropped


def test_latest_keeps_latency_bounded_with_a_fast_source(bundle):
    src = ArraySource(_images(4), repeat=20, rate=400.0, live=True)
    with RecordingRunner(bundle[0], "fp32", delay=0.01) as r:
        pipe = Pipeline(r, src, policy="latest")
        results = list(pipe)
    p50, p99 = pipe.stats.latency_percentiles()
    # depth of the pipeline (a few frames of ~10 ms), not the length of the backlog (80 frames)
    assert p99 < 250 and pipe.stats.dropped > 0


def test_breaking_out_early_stops_and_joins_every_thread(bundle, frames, clean_threads):
    with open_runner(bundle[0], "onnxruntime", "fp32") as r:
        pipe = Pipeline(r, ImageFolderSource(frames, repeat=50), policy="every")
        for i, _ in enumerate(pipe):
            if i == 3:
                break
    assert pipe.threads and not any(t.is_alive() for t in pipe.threads)


def test_ctrl_c_in_the_consumer_stops_everything(bundle, frames, clean_threads):
    with open_runner(bundle[0], "onnxruntime", "fp32") as r:
        with pytest.raises(KeyboardInterrupt):
            with Pipeline(r, ImageFolderSource(frames, repeat=50), policy="every") as pipe:
                for i, _ in enumerate(pipe):
                    if i == 2:
                        raise KeyboardInterrupt
    assert not any(t.is_alive() for t in pipe.threads)


def test_a_stage_error_stops_the_pipeline_and_reaches_the_consumer(bundle, frames, clean_threads):
    with RecordingRunner(bundle[0], "fp32", fail_at=4) as r:
        pipe = Pipeline(r, ImageFolderSource(frames, repeat=50), policy="every")
        got = []
        with pytest.raises(PipelineError, match="RuntimeError: backend crashed"):
            for x in pipe:
                got.append(x.index)
    assert got == list(range(len(got))) and len(got) < 10
    assert not any(t.is_alive() for t in pipe.threads)


def test_max_frames_and_bad_policy(bundle, frames, clean_threads):
    with open_runner(bundle[0], "onnxruntime", "fp32") as r:
        assert len(list(Pipeline(r, ImageFolderSource(frames), max_frames=4))) == 4
        with pytest.raises(ConfigError, match="unknown policy 'fastest'"):
            Pipeline(r, ImageFolderSource(frames), policy="fastest")
