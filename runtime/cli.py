"""``edgepose-run``: stream frames through a bundle and write one pose per frame."""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import List, Optional

from edgepose.argtypes import frame_rate
from edgepose.bundle import PRECISIONS
from edgepose.cli.arg_groups import (add_backend, add_bundle, add_max_frames, add_precision, add_runner_settings,
                                     add_split, add_stream_options, add_threads)
from edgepose.cli.guard import Signals, guarded
from edgepose.metrics import summarize_errors
from edgepose.outputs import check_outputs

from .driver import StreamConfig, drive, late_interrupt_exit, open_configured_runner, stopped_exit
from .endpoints import check_bag_file, open_sinks, open_source
from .pipeline import resolve_policy
from .ros import options as ros_options
from .ros.options import next_command
from .runners.base import DEFAULT_PRECISION
from .runners.factory import DESCRIPTIONS

#: the exit code of a run whose source ended before the end it declares (see EXIT CODES)
EXIT_INCOMPLETE = 1

DESCRIPTION = """\
Stream frames through an exported bundle: read -> preprocess (the trainer's resize/crop rule)
-> infer -> (filter) -> write, each stage in its own thread. Writes one JSON object per frame
(position m, rotation wxyz, sigma, timings, ok/error) and prints a live status line
(FPS, latency p50/p99, dropped frames) on stderr, then a summary.
"""

EPILOG = """\
SOURCES (--source)
  frames/                 a folder of images, natural order (recorded: policy every)
  clip.mp4                a video file, decoded by OpenCV (recorded)
  0 | /dev/video0         a camera index or V4L2 device (live: policy latest)
  "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv !
   video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink"
                          a GStreamer pipeline (Jetson CSI camera; needs OpenCV with GStreamer)
  dataset:ROOT            a dataset split with ground truth (--split), errors in the summary
%s
BACKENDS (--backend)
  auto                    TensorRT engine matching this device, else ONNX Runtime, else torch
%s
CAMERA-RESOLUTION GRAPHS (--camera-graph)
  A bundle exported with --camera-size 1920x1080 holds graphs that take the camera frame
  itself: for frames of that size the host only copies the frame into the input buffer
  (timings_ms.preprocess) and the crop and resize run inside the graph (timings_ms.infer).

POLICIES (--policy)
  auto                    latest for live sources, every for recorded ones
  latest                  live: stale frames are dropped (and counted), latency stays bounded
  every                   recorded: every frame is processed (back-pressure, lossless)

EXIT CODES
  0 done (a frame that cannot be read or inferred is a failed line, counted in the summary);
  1 the source ended before the end it declares (a video that decodes fewer frames than its
  container says, a bag cut mid-message or without its MCAP footer / metadata.yaml: the summary
  says why); 2 bad arguments, bundle or source; 128+N signal N

EXAMPLES
  edgepose-run runs/demo/bundle --source frames/ --out poses.jsonl
  edgepose-run bundle --source 0 --backend tensorrt --precision int8 --filter kalman
  edgepose-run bundle --source dataset:data/dino --split test --policy every --plot traj.png
  edgepose-run bundle --source flight.mcap --topic /camera/image_raw --out poses.mcap --frame-id map
"""


def build_parser() -> argparse.ArgumentParser:
    backends = "".join(f"  {k:<24}{v}\n" for k, v in DESCRIPTIONS.items())
    epilog = EPILOG % (ros_options.EPILOG_SOURCES, backends)
    p = argparse.ArgumentParser(prog="edgepose-run", description=DESCRIPTION, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle(p)
    p.add_argument("--source", required=True, help="frames folder, video, camera, GStreamer pipeline or dataset:ROOT")
    add_backend(p, DESCRIPTIONS)
    add_precision(p, PRECISIONS, f"model precision (default {DEFAULT_PRECISION}; fp32 on torch); a missing one falls "
                                 "back to the nearest, with a warning")
    add_runner_settings(p)
    p.add_argument("--policy", default="auto", choices=("auto", "latest", "every"), help="frame policy (default auto)")
    add_stream_options(p)
    p.add_argument("--out", default="poses.jsonl", help="JSON lines output, '-' for stdout (default poses.jsonl); "
                   "poses.mcap or DIR/ writes a ROS bag of PoseWithCovarianceStamped")
    p.add_argument("--csv", default=None, help="also write a CSV file")
    p.add_argument("--plot", default=None, help="also write a top-down trajectory PNG with sigma circles")
    add_split(p, "dataset split for dataset:ROOT")
    p.add_argument("--fps", type=frame_rate, default=30.0, help="frame rate of an image folder, for timestamps (default 30)")
    add_max_frames(p, "stop after N frames")
    add_threads(p)
    p.add_argument("--quiet", action="store_true", help="no live status line")
    ros_options.add_ros_arguments(p)
    return p


def stream_config(args) -> StreamConfig:
    """The driver's :class:`StreamConfig` of edgepose-run's parsed arguments."""
    return StreamConfig(bundle=args.bundle, backend=args.backend, precision=args.precision, strict=args.strict,
                        threads=args.threads, cuda_graph=args.cuda_graph, policy=args.policy, filter=args.filter,
                        camera_to_base=args.camera_to_base, max_frames=args.max_frames,
                        camera_graphs=args.camera_graph == "auto")


class StatusLine:
    """A throttled one-line status on stderr (rewritten in place on a terminal)."""

    def __init__(self, stream=sys.stderr, every_s: float = 0.5, enabled: bool = True):
        self.stream, self.every, self.enabled = stream, every_s, enabled
        self.last = 0.0
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.shown = False

    def update(self, stats, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < self.every):
            return
        self.last = now
        p50, p99 = stats.latency_percentiles(recent=300)
        line = (f"frames {stats.done} ({stats.failed} failed, {stats.dropped} dropped) | {stats.fps:6.1f} FPS | "
                f"latency p50 {p50:6.1f} ms p99 {p99:6.1f} ms")
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.enabled and self.shown and self.tty:
            self.stream.write("\n")


def _summary(stats, written: int, failed: int, runner, errors: List[tuple], args, options: dict,
             incomplete: Optional[str] = None) -> str:
    """The closing lines; ``written``/``failed`` count the results every sink received;
    ``incomplete``: why the source ended before its declared end (a truncated video), if it did."""
    p50, p99 = stats.latency_percentiles()
    opts = "".join(f", {k}={v}" for k, v in options.items())
    lines = [f"edgepose-run: {written} frames through {runner.name} ({runner.precision}{opts}) in "
             f"{stats.elapsed_s:.2f} s: {stats.fps:.1f} FPS, end-to-end latency p50 {p50:.2f} ms p99 {p99:.2f} ms",
             f"  ok {written - failed}, failed {failed}, dropped {stats.dropped} (policy {args.policy})"]
    if incomplete:
        lines.append(f"  incomplete source (exit {EXIT_INCOMPLETE}): {incomplete}")
    if errors:
        s = summarize_errors([e[0] for e in errors], [e[1] for e in errors])
        lines.append(f"  vs ground truth ({s['n_frames']} frames): median {s['median_position_m']:.3f} m, "
                     f"{s['median_rotation_deg']:.2f} deg; p90 {s['p90_position_m']:.3f} m, {s['p90_rotation_deg']:.2f} deg")
    if args.out and args.out != "-":
        lines.append(f"  poses: {args.out}" + (f", {args.csv}" if args.csv else "") + (f", {args.plot}" if args.plot else ""))
        lines.append(next_command(args) or f"next: look at one frame with `head -n 1 {args.out}`, or compare "
                     f"backends and precisions with `edgepose-bench {args.bundle}`")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    with Signals() as signals:  # Ctrl-C and SIGTERM alike, from start-up on
        return guarded("edgepose-run", lambda: _run(build_parser().parse_args(argv), signals),
                       on_interrupt="stopped during start-up: no frame was processed")


def _close_all(sinks) -> Optional[BaseException]:
    """Close every sink (the plot is drawn here); returns the first failure instead of stopping."""
    first = None
    for s in sinks:
        try:
            s.close()
        except Exception as exc:  # noqa: BLE001 - every sink gets its chance to flush
            first = first or exc
    return first


def _run(args, signals) -> int:
    """:func:`_stream`; a signal that escapes it once a result was written (in the runner's
    release, the summary or the sinks' close: the loop returns its own stop instead of raising
    it) is reported like a stop mid-run, with the results written, not as a start-up stop."""
    written = [0]  # results every sink received, counted by _stream
    return late_interrupt_exit("edgepose-run", lambda: _stream(args, signals, written), written)


def _stream(args, signals, written: List[int]) -> int:
    """The run itself; ``written[0]`` counts the results handed to every sink."""
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"edgepose-run: warning: {msg}\n"
    status = StatusLine(enabled=not args.quiet)
    check_bag_file(args.source)  # a FIFO named like a bag would block the listing and the reader
    listing = ros_options.topic_listing(args)  # a bag --source without --topic: list, exit 0
    if listing is not None:
        print(listing)
        return 0
    source_path = args.source[len("dataset:"):] if args.source.startswith("dataset:") else args.source
    # an output is never an input: --out B/edgepose.json, --out SRC/0000.png, --csv DATA/poses.csv
    check_outputs({"--out": args.out, "--csv": args.csv, "--plot": args.plot},
                  {"BUNDLE": args.bundle, "--source": source_path})
    source = open_source(args.source, fps=args.fps, split=args.split, **ros_options.source_options(args))
    args.policy = resolve_policy(args.policy, source)
    config = stream_config(args)
    runner, options = open_configured_runner(config)  # before the outputs: a bad backend writes nothing
    sinks = open_sinks(args.out, args.csv, args.plot, bag=ros_options.bag_sink_options(args, source))
    truth_errors = []

    def write(r) -> None:  # one result to every sink (the driver holds signals meanwhile)
        for s in sinks:
            s.write(r)
        e = r.errors()
        if e is not None:
            truth_errors.append((e["position_m"], e["rotation_deg"]))
        written[0] += 1

    try:
        outcome = drive(config, source, write, runner=runner, options=options, signals=signals,
                        on_progress=status.update)
        with signals.protect():  # a second signal does not cut the summary short
            status.update(outcome.stats, force=True)
            status.end()
            closing = _close_all(sinks)
            sinks = []
            print(_summary(outcome.stats, outcome.written, outcome.failed, runner, truth_errors, args, options,
                           source.incomplete), file=sys.stderr)
    finally:
        _close_all(sinks)
    code = stopped_exit("edgepose-run", outcome)
    if code is not None:
        return code
    if closing is not None:
        raise closing
    return EXIT_INCOMPLETE if source.incomplete else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
