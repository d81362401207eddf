"""One driver of the streaming pipeline for ``edgepose-run``, :class:`PoseEstimator` and the ROS 2 node.

:class:`StreamConfig` says what to run (bundle, backend, precision, runner settings) and how
(frame policy, filter, camera-to-base transform, frame limit, camera graphs). Three steps, each
used by every front end:

* :func:`open_configured_runner`: ``backend="auto"`` resolved first, then ``threads`` and
  ``cuda_graph`` given to the backend that honours them; a flag it ignores is named in a
  ``RuntimeWarning`` (the runner is returned inactive);
* :func:`open_pipeline`: the postprocess chain (filter, then the camera-to-base transform) and
  the :class:`~edgepose.runtime.pipeline.Pipeline` over an ACTIVE runner;
* :func:`drive`: the loop. Each result goes to ``on_result`` (inside ``signals.protect()``, so
  one result reaches every sink or none does), ``on_progress(stats)`` follows it. Ctrl-C /
  SIGTERM and a full disk end the loop and are returned in :class:`Outcome` ``.stop`` (the
  caller closes its sinks first); every other error (an
  :class:`~edgepose.errors.EdgePoseError` from the pipeline included) propagates after the
  pipeline's threads are joined. :func:`stopped_exit` turns ``stop`` into the exit code
  (``128 + N`` after signal N, with a message: :func:`interrupted_exit`; a front end wraps its
  run in :func:`late_interrupt_exit` for a signal that escapes after its results were out) or
  re-raises a disk-full error for ``edgepose.cli.guard.guarded`` to print.

:meth:`PoseEstimator.stream <edgepose.runtime.estimator.PoseEstimator.stream>` iterates the
pipeline of :func:`open_pipeline` itself (the caller's loop is the driver there).
"""
from __future__ import annotations

import signal
import sys
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from edgepose.interrupts import is_disk_full

from .bundles import open_bundle
from .filter import make_filter
from .pipeline import Pipeline, PipelineStats, resolve_policy
from .results import PoseResult
from .ros.frames import CameraToBase, chain
from .runners import BACKENDS, open_runner, resolve_backend, runner_class
from .runners.base import Runner
from .sources import Source


@dataclass
class StreamConfig:
    """What to stream through and how.

    Attributes:
        bundle: bundle folder (with ``edgepose.json``).
        backend: ``"auto"`` or a registered backend name.
        precision: ``fp32`` / ``fp16`` / ``int8``; ``None`` = the backend's default.
        strict: refuse a precision fallback instead of warning.
        threads: intra-op CPU threads (ONNX Runtime, torch); 0 = the library's default.
        cuda_graph: TensorRT: replay the inference as a CUDA graph.
        policy: ``auto`` / ``latest`` / ``every`` (see :func:`~edgepose.runtime.pipeline.resolve_policy`).
        filter: ``None`` / ``"none"`` / ``"kalman"``.
        camera_to_base: ``'X Y Z QX QY QZ QW'`` or ``optical``: publish the base frame's pose; ``None``/``""``: the camera's.
        max_frames: stop after this many source frames (``None``: the whole source).
        camera_graphs: frames of a camera-resolution graph's size go to that graph.
    """

    bundle: str = ""
    backend: str = "auto"
    precision: Optional[str] = None
    strict: bool = False
    threads: int = 0
    cuda_graph: bool = False
    policy: str = "auto"
    filter: Optional[str] = None
    camera_to_base: Optional[str] = None
    max_frames: Optional[int] = None
    camera_graphs: bool = True


@dataclass
class Outcome:
    """How a :func:`drive` loop ended: ``written`` results handed on (``failed`` of them not ok);
    ``stop``: the ``KeyboardInterrupt`` (``signum`` set for SIGTERM) or disk-full ``OSError``
    that ended it early, else ``None``."""

    runner: Runner
    options: dict
    policy: str
    stats: PipelineStats
    written: int = 0
    failed: int = 0
    stop: Optional[BaseException] = None


def open_configured_runner(config: StreamConfig) -> Tuple[Runner, dict]:
    """``(inactive runner, the runner options used)`` for ``config`` (see the module docstring)."""
    view = open_bundle(config.bundle)
    backend, _ = resolve_backend(view, config.backend, config.precision)
    options, ignored = runner_class(backend).options_for(threads=config.threads, cuda_graph=config.cuda_graph)
    for key in ignored:
        users = [b for b, c in BACKENDS.items() if key in c.settings]
        warnings.warn(f"--{key.replace('_', '-')} has no effect on the {backend} backend (it applies to "
                      f"{', '.join(users)})", RuntimeWarning)
    return open_runner(view, backend, config.precision, strict=config.strict, **options), options


def postprocess_chain(config: StreamConfig) -> Optional[Callable[[PoseResult], PoseResult]]:
    """The filter (if any) followed by the camera-to-base transform (if any); ``None`` for neither."""
    return chain(make_filter(config.filter), CameraToBase.from_option(config.camera_to_base or None))


def open_pipeline(runner: Runner, source: Source, config: StreamConfig) -> Pipeline:
    """The (not yet started) pipeline of ``source`` through the ACTIVE ``runner`` as ``config`` says."""
    return Pipeline(runner, source, policy=resolve_policy(config.policy, source), postprocess=postprocess_chain(config),
                    max_frames=config.max_frames, camera_graphs=config.camera_graphs)


def drive(config: StreamConfig, source: Source, on_result: Callable[[PoseResult], None],
          runner: Optional[Runner] = None, options: Optional[dict] = None, signals=None,
          on_progress: Optional[Callable[[PipelineStats], None]] = None) -> Outcome:
    """Stream ``source`` as ``config`` says, handing every result to ``on_result``.

    ``runner``/``options``: from :func:`open_configured_runner` when the caller opened it
    before its outputs (so a bad backend leaves no output file); else opened here. The runner
    is activated for the loop and released after it. ``signals``: an
    :class:`edgepose.interrupts.Signals` whose ``protect()`` guards each ``on_result`` call and
    the pipeline's start (its imports: a signal landing inside importlib could leave the import
    lock held and a stage thread waiting for it forever).
    """
    if runner is None:
        runner, options = open_configured_runner(config)
    guard = signals.protect if signals is not None else nullcontext
    with runner:
        pipe = open_pipeline(runner, source, config)
        out = Outcome(runner, dict(options or {}), pipe.policy, pipe.stats)
        try:
            with guard():  # the stages' imports (runtime/preload.py) and thread starts: a signal waits
                pipe.start()
            with pipe:  # joins every stage thread however the loop ends
                for r in pipe:
                    with guard():
                        on_result(r)
                        out.written, out.failed = out.written + 1, out.failed + (not r.ok)
                    if on_progress is not None:
                        on_progress(pipe.stats)
        except KeyboardInterrupt as exc:
            out.stop = exc
            with guard():  # a second signal waits until the stage threads have ended: a thread
                pipe.close()  # left inside the runner when it is released aborts through C++
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            out.stop = exc
    return out


def stopped_exit(prog: str, outcome: Outcome, done: str = "written") -> Optional[int]:
    """``128 + N`` after signal N (see :func:`interrupted_exit`); re-raises a disk-full
    ``stop``; ``None`` when the loop ran to its end."""
    stop = outcome.stop
    if isinstance(stop, KeyboardInterrupt):
        return interrupted_exit(prog, stop, outcome.written, done)
    if stop is not None:
        raise stop
    return None


def late_interrupt_exit(prog: str, body: Callable[[], int], written: List[int], done: str = "written") -> int:
    """``body()``; a signal that escapes it once a result was out (``written[0]`` > 0, counted by
    ``body``: in the runner's release, the summary or the outputs' close, after the loop returned
    its own stop) is reported like a stop mid-run (:func:`interrupted_exit`), not as a start-up
    stop; with no result yet it is raised on (the caller's start-up message is the true one)."""
    try:
        return body()
    except KeyboardInterrupt as exc:
        if not written[0]:
            raise
        return interrupted_exit(prog, exc, written[0], done)


def interrupted_exit(prog: str, stop: KeyboardInterrupt, written: int, done: str = "written") -> int:
    """``128 + N`` for ``stop`` (signal N: ``signum``, SIGINT when it has none), printing
    ``PROG: interrupted (Ctrl-C|SIGTERM); the WRITTEN results so far are DONE``."""
    signum = int(getattr(stop, "signum", signal.SIGINT))
    print(f"{prog}: interrupted ({'SIGTERM' if signum == signal.SIGTERM else 'Ctrl-C'}); the {written} "
          f"results so far are {done}", file=sys.stderr)
    return 128 + signum
