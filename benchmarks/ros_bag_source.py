"""Bag source vs folder source on the same frames: throughput as ratios taken in one run.
Writes benchmarks/results/ros_bag_source.md.

    .venv/bin/python benchmarks/ros_bag_source.py [--frames 200] [--size 320x240] [--rounds 3]

The same N frames are stored three ways: a folder of PNG files (compress_level 1, as in
runtime_pipeline.py), an MCAP of sensor_msgs/Image rgb8, and an MCAP of
sensor_msgs/CompressedImage holding the very same PNG bytes. Two measures, each repeated in
interleaved rounds (folder, raw bag, png bag, folder, ...), the best round reported, in wall
time and in CPU time of the process (which other jobs on a shared machine disturb less):

1. source: frames/s of iterating the source alone (read + decode to RGB);
2. pipeline: frames/s of the `every` pipeline (read, decode, resize/crop, ONNX Runtime
   inference of a synthetic contract bundle, postprocess) as edgepose-run runs it.

The issue's target: the bag source within 10 % of the folder source (ratio >= 0.9).
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test-data makers (tests/synthetic_bundles.py, ...)
TOPIC = "/camera/image_raw"


def make_data(root: Path, n: int, size):
    from edgepose.runtime.ros.messages import get_typestore
    from ros_image_bags import compressed_message, frame_stamps, image_message
    from rosbags.rosbag2 import StoragePlugin, Writer

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    folder = root / "frames"
    folder.mkdir()
    ts, stamps = get_typestore(), frame_stamps(n)
    pngs = []
    for i in range(n):
        img = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy + i) % 256], -1).astype(np.uint8)
        Image.fromarray(img).save(folder / f"frame{i:05d}.png", compress_level=1)
        pngs.append((img, (folder / f"frame{i:05d}.png").read_bytes()))
    bags = {}
    for kind in ("raw", "png"):
        with Writer(root / kind, version=9, storage_plugin=StoragePlugin.MCAP) as wr:
            ty = "sensor_msgs/msg/Image" if kind == "raw" else "sensor_msgs/msg/CompressedImage"
            conn = wr.add_connection(TOPIC, ty, typestore=ts)
            for i, (img, png) in enumerate(pngs):
                if kind == "raw":
                    m = image_message(ts, img, stamps[i])
                else:
                    m = compressed_message(ts, img, stamps[i])
                    m.data = np.frombuffer(png, np.uint8)
                wr.write(conn, stamps[i], ts.serialize_cdr(m, ty))
        bags[kind] = root / kind / f"{kind}.mcap"
    return folder, bags


def source_fps(spec, **options) -> float:
    from edgepose.runtime.endpoints import open_source

    src = open_source(spec, **options)
    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(1 for f in src if f.image is not None)
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def pipeline_fps(runner, spec, **options) -> float:
    from edgepose.runtime import Pipeline
    from edgepose.runtime.endpoints import open_source

    src = open_source(spec, **options)
    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(1 for r in Pipeline(runner, src, policy="every") if r.ok)
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ros_bag_source.md"))
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    from edgepose.runtime import open_runner
    from synthetic_bundles import make_synthetic_bundle

    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, bags = make_data(root, args.frames, size)
        make_synthetic_bundle(root / "bundle", size=(160, 120), precisions=("fp32",), channels=16, depth=2)
        specs = {"folder (PNG files)": (folder, {}), "bag, Image rgb8": (bags["raw"], {"topic": TOPIC}),
                 "bag, CompressedImage png": (bags["png"], {"topic": TOPIC})}
        src = {k: [] for k in specs}
        pipe = {k: [] for k in specs}
        with open_runner(root / "bundle", "onnxruntime", "fp32") as runner:
            for k, (spec, opt) in specs.items():  # warm-up: file cache, ORT session
                source_fps(spec, **opt)
            for _ in range(args.rounds):
                for k, (spec, opt) in specs.items():
                    src[k].append(source_fps(spec, **opt))
                for k, (spec, opt) in specs.items():
                    pipe[k].append(pipeline_fps(runner, spec, **opt))
        bag_mb = {k: v.stat().st_size / 2**20 for k, v in bags.items()}
    wall = time.time() - t_start
    base = "folder (PNG files)"

    def cells(runs, ref):
        """best wall frames/s of the rounds, its ratio, frames per CPU-second (best), its ratio"""
        wall, cpu = max(r[0] for r in runs), max(r[1] for r in runs)
        bw, bc = max(r[0] for r in ref), max(r[1] for r in ref)
        return f"{wall:.0f} | {wall / bw:.2f} | {cpu:.0f} | {cpu / bc:.2f}"

    rows = []
    for k in specs:
        rows.append(f"| {k} | {cells(src[k], src[base])} | {cells(pipe[k], pipe[base])} | "
                    f"{', '.join(f'{v[0]:.0f}' for v in pipe[k])} |")
    cmd = "python benchmarks/ros_bag_source.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    text = f"""# Bag source vs folder source (same frames)

Command: `{cmd.strip()}`
Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.machine()}, {os.cpu_count()} cores,
Python {platform.python_version()}; load average at the end {os.getloadavg()[0]:.2f} (1 min) — the machine
is shared: compare rows of this run only. Wall time {wall:.0f} s.

{args.frames} frames of {size[0]}x{size[1]}, the same pixels three ways; bags: raw {bag_mb['raw']:.1f} MiB,
png {bag_mb['png']:.1f} MiB (MCAP written by rosbags). {args.rounds} interleaved rounds; each cell is the
best round (the one least disturbed by other jobs on this shared machine). "CPU" = frames per
CPU-second of this process (all its threads), which other jobs disturb much less than wall time.
Pipeline = `every` policy, ONNX Runtime CPU, synthetic contract bundle at 160x120 (16 channels, 2 convs).

| source | alone: frames/s | ratio | alone: frames/CPU-s | ratio | pipeline: frames/s | ratio | pipeline: frames/CPU-s | ratio | pipeline rounds (frames/s) |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Target (issue 12): the bag source within 10 % of the folder source, i.e. ratio >= 0.90.
"""
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
