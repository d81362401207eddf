"""The streaming pipeline: source -> preprocess -> infer -> postprocess -> consumer, each
stage in its own thread, joined by bounded queues; it knows nothing about CUDA.

* Order is kept: one thread per stage and FIFO queues.
* Policies: ``every`` (recorded: lossless, back-pressure; preprocessing overlaps inference)
  and ``latest`` (live: the source keeps only its newest frame, which the inference thread
  takes and prepares when it is free: one source interval + one inference old at most).
* Preprocessing writes straight into a fixed :class:`~edgepose.runtime.buffers.BufferPool`
  of the runner's input buffers (pinned on TensorRT) with THE rule of
  :func:`edgepose.preprocess.resize_crop`; nothing is allocated per frame. A frame of a
  camera-resolution graph's size goes to that graph (:mod:`edgepose.runtime.camera`): copied
  into its pinned buffers on TensorRT, handed over as it is on ONNX Runtime.
* A frame that cannot be read or inferred becomes a failed :class:`PoseResult` with the
  reason; the stream goes on. Any other exception stops every stage and is re-raised to the
  consumer. End of source, ``close()`` and errors all join every thread before returning.

.. code-block:: python

    with open_runner(bundle, "onnxruntime") as r:
        for result in Pipeline(r, ImageFolderSource("frames/"), policy="every"):
            print(result.index, result.position)
"""
from __future__ import annotations

import queue
import threading
import time
import warnings
from array import array
from typing import Callable, Iterator, List, Optional

import numpy as np

from edgepose.errors import ConfigError, EdgePoseError

from .buffers import PoolClosed
from .camera import InputRoutes, Route
from .preload import preload_stages
from .results import PoseResult
from .sources import Frame, Source
from .spec import write_frame

POLICIES = ("latest", "every")
_END = object()


def resolve_policy(policy: str, source: Source) -> str:
    """``"auto"`` -> ``"latest"`` for a live source, ``"every"`` for a recorded one (lossless);
    ``"latest"`` / ``"every"`` as given."""
    if policy == "auto":
        return "latest" if getattr(source, "live", False) else "every"
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; expected 'auto' or one of {POLICIES}",
                          hint="latest = live camera (drop stale frames), every = recorded (lossless)")
    return policy


class PipelineError(EdgePoseError):
    """A stage failed in a way that is not one frame's fault; the pipeline stopped."""


class _Stopped(Exception):
    pass


class PipelineStats:
    """Counters and latencies, updated by the consumer side (read them any time)."""

    def __init__(self):
        self.read = 0  # frames produced by the source
        self.dropped = 0  # stale frames dropped by the `latest` policy
        self.done = 0  # results handed to the consumer
        self.failed = 0  # of which failed
        self.latencies_ms = array("d")
        self.t_start = time.perf_counter()
        self.t_first: Optional[float] = None
        self.t_last: Optional[float] = None

    def add(self, result: PoseResult) -> None:
        now = time.perf_counter()
        self.t_first, self.t_last = self.t_first or now, now
        self.done += 1
        if not result.ok:
            self.failed += 1
        else:
            self.latencies_ms.append(result.latency_ms)

    @property
    def elapsed_s(self) -> float:
        return (self.t_last or time.perf_counter()) - self.t_start

    @property
    def fps(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def latency_percentiles(self, recent: Optional[int] = None):
        """``(p50, p99)`` end-to-end latency in ms (of the last ``recent`` frames if given)."""
        lat = np.frombuffer(self.latencies_ms, dtype=np.float64) if len(self.latencies_ms) else np.zeros(0)
        if recent:
            lat = lat[-recent:]
        if lat.size == 0:
            return float("nan"), float("nan")
        return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))

    def to_json(self) -> dict:
        p50, p99 = self.latency_percentiles()
        return {"frames_read": self.read, "results": self.done, "failed": self.failed, "dropped": self.dropped,
                "fps": round(self.fps, 3), "latency_p50_ms": round(p50, 3), "latency_p99_ms": round(p99, 3),
                "elapsed_s": round(self.elapsed_s, 3)}


class Pipeline:
    """Stream ``source`` through an ACTIVE ``runner``; iterate it for :class:`PoseResult` s.

    Args:
        runner: an active runner (``with open_runner(...) as r``).
        source: a :class:`~edgepose.runtime.sources.Source`.
        policy: ``"auto"`` (default: ``latest`` for a live source, ``every`` for a recorded
            one), ``"every"`` (lossless) or ``"latest"`` (drop stale frames).
        postprocess: optional callable ``PoseResult -> PoseResult`` run in the postprocess
            thread in frame order (e.g. :class:`~edgepose.runtime.filter.PoseFilter`).
        queue_size: capacity of each queue (default 1 for ``latest``, 4 for ``every``).
        max_frames: stop after this many source frames.
        camera_graphs: use the bundle's camera-resolution graphs for frames of their size
            (default); ``False`` preprocesses every frame on the host.
    """

    def __init__(self, runner, source: Source, policy: str = "auto",
                 postprocess: Optional[Callable[[PoseResult], PoseResult]] = None,
                 queue_size: Optional[int] = None, max_frames: Optional[int] = None,
                 camera_graphs: bool = True):
        policy = resolve_policy(policy, source)
        if not getattr(runner, "is_active", False):
            raise EdgePoseError("the runner must be active", hint="use `with open_runner(...) as runner:`")
        self.runner, self.source, self.policy = runner, source, policy
        self.postprocess = postprocess
        self.max_frames = max_frames
        qs = int(queue_size or (1 if policy == "latest" else 4))
        self._q_src = queue.Queue(qs)
        self._q_pre = queue.Queue(qs)
        self._q_inf = queue.Queue(qs)
        self._q_out = queue.Queue(qs)
        # every buffer that can be in flight: queued before infer, in preprocess, in infer, + 1
        self.routes = InputRoutes(runner, qs + 3, enabled=camera_graphs)
        self.pool = self.routes.host.pool
        self.stats = PipelineStats()
        self._stop = threading.Event()
        self._errors: List[BaseException] = []
        self._threads: List[threading.Thread] = []
        self._started = False
        self._lock = threading.Lock()

    def _put(self, q: queue.Queue, item) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped()
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue):
        while True:
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    raise _Stopped() from None

    def _put_latest(self, q: queue.Queue, item) -> None:
        """Put without waiting; if ``q`` is full, drop the stale item in it (counted)."""
        while True:
            if self._stop.is_set():
                raise _Stopped()
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                try:
                    stale = q.get_nowait()
                except queue.Empty:
                    continue
                if stale is _END:  # never drop the end marker (it is always the last item)
                    q.put_nowait(stale)
                    continue
                with self._lock:
                    self.stats.dropped += 1

    # -- stages -------------------------------------------------------------------------
    def _stage(self, name: str, body: Callable[[], None]) -> threading.Thread:
        def run():
            try:
                body()
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                self._errors.append(exc)
                self._stop.set()

        t = threading.Thread(target=run, name=f"edgepose-{name}", daemon=True)
        self._threads.append(t)
        return t

    def _run_source(self) -> None:
        if self.policy == "latest":
            put = lambda item: self._put_latest(self._q_src, item)  # noqa: E731
        else:
            put = lambda item: self._put(self._q_src, item)  # noqa: E731
        try:
            for n, frame in enumerate(self.source):
                if self._stop.is_set() or (self.max_frames is not None and n >= self.max_frames):
                    break
                with self._lock:
                    self.stats.read += 1
                put(frame)
        finally:
            close = getattr(self.source, "close", None)
            if close:
                close()
        self._put(self._q_src, _END)

    def _route(self, frame: Frame) -> Route:
        try:
            return self.routes.route(frame.image)
        except EdgePoseError as exc:  # a camera graph that cannot load: that size takes the host path
            size = (frame.image.shape[1], frame.image.shape[0])
            self.routes.sizes.discard((size, "rgb"))
            warnings.warn(f"the camera graph for {size[0]}x{size[1]} frames could not be used ({exc.message}); "
                          "those frames are preprocessed on the host instead", stacklevel=2)
            return self.routes.host

    def _prepare(self, frame: Frame, scratch: np.ndarray):
        """``(frame, slot, error, timings, route)``: ``frame`` written into a buffer of its route."""
        t0 = time.perf_counter()
        slot, err, route = None, frame.error, self.routes.host
        if err is None:
            route = self._route(frame)
            if route.direct and frame.image.flags.c_contiguous:  # the frame itself is the batch
                return frame, frame.image[None], None, {"preprocess": (time.perf_counter() - t0) * 1e3}, route
            try:
                slot, buf = route.pool.acquire(self._stop)
            except PoolClosed:
                raise _Stopped() from None
            t0 = time.perf_counter()  # waiting for a buffer is queueing, not preprocessing
            try:
                write_frame(frame.image, route.spec, buf[0], scratch)
            except EdgePoseError as exc:
                route.pool.release(slot)
                slot, err = None, f"preprocess: {exc.message}"
            frame.image = None  # the decoded frame is not needed any more
        return frame, slot, err, {"preprocess": (time.perf_counter() - t0) * 1e3}, route

    def _scratch(self) -> np.ndarray:  # for NCHW / float inputs
        return np.empty((self.runner.input_spec.size[1], self.runner.input_spec.size[0], 3), np.uint8)

    def _run_preprocess(self) -> None:
        """``every``: preprocessing overlaps inference, one frame ahead (lossless, full throughput)."""
        scratch = self._scratch()
        while True:
            frame = self._get(self._q_src)
            if frame is _END:
                self._put(self._q_pre, _END)
                return
            self._put(self._q_pre, self._prepare(frame, scratch))

    def _next_latest(self, scratch: np.ndarray):
        """``latest``: the inference thread takes the newest captured frame when it is free and
        prepares it itself. A frame prepared ahead would wait for the running inference and then
        be older than the camera's newest (the old two-queue path measured 2.5x the runner's
        frame time at p50); taken at the last moment it is at most one source interval old."""
        frame = self._get(self._q_src)
        return frame if frame is _END else self._prepare(frame, scratch)

    def _run_infer(self) -> None:
        scratch = self._scratch() if self.policy == "latest" else None
        while True:
            item = self._next_latest(scratch) if scratch is not None else self._get(self._q_pre)
            if item is _END:
                self._put(self._q_inf, _END)
                return
            frame, slot, err, timings, route = item
            runner = route.runner
            poses = None
            if slot is not None:
                t0 = time.perf_counter()
                pooled = not isinstance(slot, np.ndarray)
                try:
                    poses = runner.infer(route.pool.buffers[slot] if pooled else slot)
                except EdgePoseError as exc:
                    err = f"inference: {exc.message}"
                finally:
                    if pooled:
                        route.pool.release(slot)
                timings["infer"] = (time.perf_counter() - t0) * 1e3
                if "compute" in runner.last_timing:
                    timings["compute"] = runner.last_timing["compute"]
            self._put(self._q_inf, (frame, poses, err, timings))

    def _run_postprocess(self) -> None:
        while True:
            item = self._get(self._q_inf)
            if item is _END:
                self._put(self._q_out, _END)
                return
            frame, poses, err, timings = item
            t0 = time.perf_counter()
            result = make_result(frame, poses, err, timings)
            if self.postprocess is not None and result.ok:
                result = self.postprocess(result)
            now = time.perf_counter()
            result.timings_ms["postprocess"] = (now - t0) * 1e3
            t = result.timings_ms
            t["latency"] = (now - frame.t_capture) * 1e3
            t["wait"] = max(0.0, t["latency"] - sum(t.get(k, 0.0) for k in ("read", "preprocess", "infer", "postprocess")))
            self._put(self._q_out, result)

    # -- running ------------------------------------------------------------------------
    def start(self) -> "Pipeline":
        if not self._started:
            preload_stages(self.source)  # a stage thread never imports: runtime/preload.py says why
            self._started = True
            stages = [("source", self._run_source), ("preprocess", self._run_preprocess),
                      ("infer", self._run_infer), ("postprocess", self._run_postprocess)]
            if self.policy == "latest":  # the inference thread prepares each frame itself
                stages.pop(1)
            for name, body in stages:
                self._stage(name, body).start()
        return self

    def __iter__(self) -> Iterator[PoseResult]:
        self.start()
        try:
            while True:
                try:
                    item = self._get(self._q_out)
                except _Stopped:
                    break
                if item is _END:
                    break
                self.stats.add(item)
                yield item
        finally:
            self.close()
        if self._errors:
            exc = self._errors[0]
            if isinstance(exc, EdgePoseError):
                raise exc
            raise PipelineError(f"the pipeline stopped: {type(exc).__name__}: {exc}",
                                hint="this is a bug or an environment problem; the traceback follows") from exc

    def close(self, timeout: float = 10.0) -> None:
        """Stop every stage and join their threads (idempotent, and complete when called again
        after an interrupt cut ``start()`` or a first ``close()`` short)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            for _ in range(100):  # an interrupt cut Thread.start(): not yet flagged started (never: 1 s)
                try:
                    t.join(max(0.0, deadline - time.monotonic()))
                    break
                except RuntimeError:
                    time.sleep(0.01)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise PipelineError(f"pipeline threads did not stop within {timeout:.0f} s: {alive}",
                                hint="a source or backend call is blocked (e.g. a camera read)")
        self.routes.close()

    @property
    def threads(self) -> List[threading.Thread]:
        return list(self._threads)

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def make_result(frame: Frame, poses, err: Optional[str], timings: dict) -> PoseResult:
    """A :class:`PoseResult` for ``frame`` from one-frame ``poses`` (a PoseBatch) or ``err``."""
    t = {"read": frame.read_ms}
    t.update(timings)
    r = PoseResult(index=frame.index, capture_time=frame.capture_time, timestamp=frame.timestamp,
                   timings_ms=t, source=frame.source, truth_position=frame.truth_position,
                   truth_rotation=frame.truth_rotation,
                   stamp_ns=frame.stamp_ns if frame.stamp_ns is not None else int(round(frame.capture_time * 1e9)))
    if err is not None or poses is None:
        r.ok, r.error = False, err or "no output"
        return r
    if not (np.isfinite(poses.position[0]).all() and np.isfinite(poses.rotation[0]).all()):
        r.ok, r.error = False, ("the model returned a non-finite pose (NaN/inf): the bundle's weights or "
                                "this frame are broken; check the bundle with edgepose-export --verify")
        return r
    r.position = poses.position[0].copy()
    r.rotation = poses.rotation[0].copy()
    r.sigma_position_m = float(poses.sigma[0, 0])
    r.sigma_rotation_deg = float(np.degrees(poses.sigma[0, 1]))
    return r
